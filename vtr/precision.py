"""Inference precision: ``fp32`` or ``bf16`` (autocast), and ``auto``, which picks bf16 where it is fast.

bf16 is fast where the hardware multiplies bf16 natively: CUDA GPUs, and x86 CPUs with AVX512-BF16 or AMX-BF16
(oneDNN then runs bf16 GEMMs at about twice the fp32 rate). Elsewhere oneDNN emulates bf16 through fp32 and
it is slower than fp32, so ``auto`` means fp32 there.

Only the matmuls run in bf16 under autocast; the VideoMamba residual stream, norms, scan and pooling stay fp32
(see :mod:`vtr.models.mamba`), which keeps embeddings within cosine 0.999 of fp32 (tests/test_precision.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16; read from /proc/cpuinfo).

    ``torch.backends.cpu.get_cpu_capability()`` only says "AVX512", which Skylake-era CPUs without bf16 also
    report, so the flags are read directly. Non-Linux systems answer False (fp32 is the safe default).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _NATIVE_BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(precision: str | None, device) -> str:
    """``auto`` (or None, or env ``VTR_PRECISION``) -> ``bf16`` on CUDA or a native-bf16 CPU, else ``fp32``.

    device: a torch.device, a device string ("cpu", "cuda:0") or None (= cpu). An explicit ``fp32``/``bf16`` is
    returned as is; anything else raises VtrError (a user's flag or setting).
    """
    from vtr.errors import VtrError

    precision = (precision or os.environ.get("VTR_PRECISION") or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise VtrError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device_type = str(getattr(device, "type", device) or "cpu").split(":")[0]
    if device_type == "cuda":
        return "bf16"
    return "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device):
    """The context to run a forward in: bf16 autocast on ``device``'s type, or nothing for fp32.

    precision: ``fp32`` or ``bf16`` (resolve ``auto`` first with :func:`resolve_precision`).
    """
    import torch

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be resolved to fp32 or bf16, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = str(getattr(device, "type", device) or "cpu").split(":")[0]
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
