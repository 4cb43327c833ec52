"""Fused CPU inference kernel for the memory-bound mixer step before the scan, beside its readable PyTorch twin.

:func:`causal_conv1d_silu_ref` / :func:`causal_conv1d_silu_fused` (numba ``conv1d_silu``): SiLU(causal depthwise
conv1d + bias) of the x half of ``xz``, optionally on the time-reversed input (the backward direction reads
``xz`` back to front instead of flipping a copy), from fp32 or bf16 input to fp32 output.

:func:`fused_available` says whether the fused kernel runs for a tensor: CPU, grad mode off (the kernel has no
backward), numba importable, not a forked child of a process that already launched numba's OpenMP pool, and
the switch on (env ``VTR_FUSED``, default ``1``; ``0`` runs the torch code everywhere, for A/B benchmarks).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_state = {"module": None, "failed": False}


def _load():
    from vtr.ops.selective_scan import load_numba_module

    return load_numba_module("_mixer_numba", _state, "the mixer runs its PyTorch conv")


def fused_enabled() -> bool:
    """The switch: env ``VTR_FUSED`` (default on)."""
    return os.environ.get("VTR_FUSED", "1").strip().lower() not in ("0", "false", "off", "no")


def fused_available(x: torch.Tensor) -> bool:
    """True when the fused kernel can run on ``x`` (see the module docstring)."""
    if x.device.type != "cpu" or torch.is_grad_enabled() or not fused_enabled():
        return False
    if x.dtype not in (torch.float32, torch.bfloat16):
        return False
    from vtr.ops import selective_scan as ss

    # numba's OpenMP layer is not fork safe: the scan keeps serial kernels for forked children; these steps just
    # use torch there.
    if ss._numba_state["pid"] not in (None, os.getpid()):
        return False
    return _load() is not None


# ------------------------------------------------------------------------------------- conv1d + SiLU
def causal_conv1d_silu_ref(x, weight, bias, reverse=False):
    """x: [B, C, L]; weight: [C, K]; bias: [C] or None -> SiLU(causal depthwise conv) [B, C, L] in fp32.

    ``reverse``: the conv runs on ``x.flip(-1)`` (the result stays in that reversed order).
    """
    x = x.float()
    if reverse:
        x = x.flip(-1)
    k = weight.shape[-1]
    y = F.conv1d(F.pad(x, (k - 1, 0)), weight.float().reshape(weight.shape[0], 1, k),
                 None if bias is None else bias.float(), groups=x.shape[1])
    return F.silu(y)


def causal_conv1d_silu_fused(xz, channel_offset, channels, weight, bias, reverse=False):
    """The numba kernel on channels ``[offset, offset + channels)`` of ``xz`` [B, C', L] (fp32 or bf16, no copy)
    -> fp32 [B, channels, L]; same result as ``causal_conv1d_silu_ref(xz[:, offset:offset + channels], ...)``."""
    from vtr.ops.selective_scan import _launch, numba_view

    mod = _load()
    xz = xz.contiguous()
    b, _, length = xz.shape
    w = weight.detach().reshape(channels, -1).float().contiguous()
    bias = torch.zeros(channels) if bias is None else bias.detach().float().contiguous()
    out = torch.empty(b, channels, length, dtype=torch.float32)
    _launch(mod.conv1d_silu, numba_view(xz), int(channel_offset), w.numpy(), bias.numpy(), bool(reverse),
            out.numpy())
    return out
