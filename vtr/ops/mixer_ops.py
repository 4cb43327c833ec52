"""Fused CPU inference kernel for the memory-bound mixer step before the scan, beside its readable PyTorch twin.

:func:`causal_conv1d_silu_ref` / :func:`causal_conv1d_silu_rows` (numba ``conv1d_silu_rows``): SiLU(causal
depthwise conv1d + bias) of channels-last rows ``x: [B, L, C]`` (e.g. the x half of the mixer's ``xz``, read in
place), optionally causal in reversed time (the backward direction's conv, without a flipped copy), from fp32 or
bf16 input to fp32 or bf16 output in natural time order.

:func:`rmsnorm_rows`, :func:`add_rows`: the block's RMSNorm (written in the dtype ``in_proj`` reads) and residual
add (a bf16 mixer output read as it is), one pass over memory each (numba ``rmsnorm_rows`` / ``add_rows``).

:func:`linear_rows`: the mixer's inference GEMMs. The fp32 ones go through oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the op torch's own CPU compiler emits for a frozen linear) where this torch
build has it: on the mixer's shapes it runs faster than MKL's sgemm, which ``F.linear`` calls (``bench/README.md``,
eleventh round). Everything else is ``F.linear``.

:func:`fused_available` says whether the fused kernel runs for a tensor: CPU, grad mode off (the kernel has no
backward), numba importable, not a forked child of a process that already launched numba's OpenMP pool, and
the switch on (env ``VTR_FUSED``, default ``1``; ``0`` runs the readable torch path of the mixer everywhere, for
A/B benchmarks and as the fallback).
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


# ------------------------------------------------------------------------------------- GEMMs
def _onednn_linear():
    """``torch.ops.mkldnn._linear_pointwise`` when this torch build has oneDNN and the op, else None."""
    if "onednn" not in _state:
        op = None
        try:
            if torch.backends.mkldnn.is_available():
                op = torch.ops.mkldnn._linear_pointwise
        except (AttributeError, RuntimeError):
            op = None
        _state["onednn"] = op
    return _state["onednn"]


def linear_rows(x, weight):
    """``F.linear(x, weight)`` (no bias) for CPU inference: x [..., K] and weight [N, K] of one dtype -> [..., N].
    In fp32 through oneDNN when :func:`_onednn_linear` has it (another summation order than MKL's: the same
    accuracy, not the same bits), else ``F.linear``."""
    op = _onednn_linear() if x.dtype == torch.float32 and weight.dtype == torch.float32 else None
    if op is None or x.device.type != "cpu" or torch.is_grad_enabled():
        return F.linear(x, weight)
    try:
        return op(x, weight, None, "none", [], "")
    except RuntimeError as e:  # a build whose oneDNN cannot run it here: F.linear from now on
        log.warning("oneDNN linear failed (%s); the mixer's GEMMs use F.linear", str(e).splitlines()[0][:200])
        _state["onednn"] = None
        return F.linear(x, weight)


# ------------------------------------------------------------------------------------- the block's norm and add
def rmsnorm_rows(x, weight, eps, out_dtype=torch.float32):
    """:class:`~vtr.models.mamba.RMSNorm` of x: [..., C] fp32 (contiguous) in one pass over memory -> [..., C] in
    ``out_dtype`` (fp32, or bf16 rounded once from the fp32 result: what the mixer's bf16 ``in_proj`` reads)."""
    from vtr.ops.selective_scan import _launch, numba_view

    if x.dtype != torch.float32 or out_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"rmsnorm_rows takes fp32 x to fp32 or bf16, got {x.dtype} to {out_dtype}")
    x = x.detach().contiguous()
    out = torch.empty(x.shape, dtype=out_dtype)
    _launch(_load().rmsnorm_rows, x.view(-1, x.shape[-1]).numpy(), weight.detach().float().contiguous().numpy(),
            float(eps), numba_view(out).reshape(-1, x.shape[-1]))
    return out


def add_rows(a, b):
    """``a + b`` for a: [..., C] fp32 and b of a's shape in fp32 or bf16 -> fp32: the block's residual add, in one
    pass (torch first copies a bf16 b to fp32)."""
    from vtr.ops.selective_scan import _launch, numba_view

    if a.dtype != torch.float32 or b.dtype not in (torch.float32, torch.bfloat16) or a.shape != b.shape:
        raise ValueError(f"add_rows takes fp32 a and a same-shape fp32 or bf16 b, got {a.dtype} {tuple(a.shape)}, "
                         f"{b.dtype} {tuple(b.shape)}")
    a, b = a.detach().contiguous(), b.detach().contiguous()
    out = torch.empty(a.shape, dtype=torch.float32)
    width = a.shape[-1]
    _launch(_load().add_rows, a.view(-1, width).numpy(), numba_view(b).reshape(-1, width),
            out.view(-1, width).numpy())
    return out


# ------------------------------------------------------------------------------------- conv1d + SiLU
def causal_conv1d_silu_ref(x, weight, bias, reverse=False):
    """x: [B, L, C]; weight: [C, K] or [C, 1, K]; bias: [C] or None -> SiLU(causal depthwise conv) [B, L, C] in fp32.

    ``reverse``: the conv is causal in reversed time (run on ``x.flip(1)``, its result flipped back to natural order).
    """
    x = x.float().mT  # [B, C, L]
    if reverse:
        x = x.flip(-1)
    k = weight.shape[-1]
    y = F.silu(F.conv1d(F.pad(x, (k - 1, 0)), weight.float().reshape(weight.shape[0], 1, k),
                        None if bias is None else bias.float(), groups=x.shape[1]))
    return (y.flip(-1) if reverse else y).mT


def causal_conv1d_silu_rows(x, weight, bias, reverse=False, out_dtype=torch.float32):
    """The numba kernel: the same result as :func:`causal_conv1d_silu_ref`. x: [B, L, C] fp32 or bf16, read in place
    when it is a column slice of a contiguous tensor (``xz[..., :d_inner]``) -> [B, L, C] in ``out_dtype`` (fp32, or
    bf16: computed in fp32 and rounded once as it is written, the reference's result ``.to(torch.bfloat16)``)."""
    from vtr.ops.selective_scan import _cols_of, _launch, numba_view

    mod = _load()
    src, c0 = _cols_of(x)
    b, length, channels = x.shape
    wt = weight.detach().reshape(channels, -1).float().T.contiguous()  # [K, C]: one tap of every channel a row
    bias = torch.zeros(channels) if bias is None else bias.detach().float().contiguous()
    if out_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"out_dtype must be torch.float32 or torch.bfloat16, got {out_dtype}")
    out = torch.empty(b, length, channels, dtype=out_dtype)
    _launch(mod.conv1d_silu_rows, numba_view(src.detach()), int(c0), wt.numpy(), bias.numpy(), bool(reverse),
            numba_view(out))
    return out
