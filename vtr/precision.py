"""Inference precision: ``fp32`` or ``bf16`` (autocast), and ``auto``, which picks bf16 where it is fast.

bf16 can only be fast where the hardware multiplies bf16 natively: CUDA GPUs, and x86 CPUs with AVX512-BF16 or
AMX-BF16. Elsewhere oneDNN emulates bf16 through fp32 and it is slower than fp32, so ``auto`` means fp32 there.
Native is not enough on the CPU: on one AVX512-BF16 machine oneDNN ran bf16 GEMMs at twice the fp32 rate, on
another (2 vCPUs, the same instructions) at 0.6×. So on a native-bf16 CPU, ``auto`` times one encoder-sized GEMM
in both dtypes once (about 0.2 s) and picks bf16 only when it is clearly faster; the verdict is kept in
``~/.cache/vtr/cpu_bf16.json`` (``$VTR_CACHE``) per CPU (model name and bf16 instructions), thread count and torch
version, so one machine always answers the same (delete the file to measure again).

Only the matmuls run in bf16 under autocast; the VideoMamba residual stream, norms, scan and pooling stay fp32
(see :mod:`vtr.models.mamba`), which keeps embeddings within cosine 0.999 of fp32 (tests/test_precision.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from pathlib import Path

from vtr.device import device_type

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def native_bf16_flags() -> tuple[str, ...]:
    """The bf16 dot-product instructions this CPU has (``avx512_bf16``, ``amx_bf16``; read from /proc/cpuinfo).

    ``torch.backends.cpu.get_cpu_capability()`` only says "AVX512", which Skylake-era CPUs without bf16 also
    report, so the flags are read directly. Non-Linux systems answer none (fp32 is the safe default).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in _NATIVE_BF16_CPU_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16)."""
    return bool(native_bf16_flags())


#: bf16 must beat fp32 by this factor in the probe GEMM to be chosen (below it, its rounding is not worth it)
BF16_MIN_SPEEDUP = 1.2


def _cache_file() -> Path:
    return Path(os.environ.get("VTR_CACHE", Path.home() / ".cache" / "vtr")).expanduser() / "cpu_bf16.json"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def gemm_seconds(dtype, m: int = 1569, k: int = 576, n: int = 2304, repeats: int = 3) -> float:
    """Best time of ``repeats`` [m, k] × [k, n] matmuls in ``dtype`` (default: VideoMamba-M's in_proj on one clip)."""
    import torch

    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    torch.mm(a, b)  # oneDNN builds its kernel on the first call
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return best


def _probe() -> dict:
    import torch

    fp32, bf16 = [], []
    for _ in range(3):  # alternated, so that a change of load hits both
        fp32.append(gemm_seconds(torch.float32))
        bf16.append(gemm_seconds(torch.bfloat16))
    return {"fp32_s": min(fp32), "bf16_s": min(bf16)}


def _valid_probe(m) -> bool:
    return isinstance(m, dict) and all(isinstance(m.get(k), (int, float)) and m[k] > 0 for k in ("fp32_s", "bf16_s"))


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_faster() -> bool:
    """True on a native-bf16 CPU where a bf16 GEMM is at least ``BF16_MIN_SPEEDUP``× faster than fp32 (measured
    once per CPU model, bf16 instructions, thread count and torch version; kept in :func:`_cache_file`)."""
    if not cpu_has_native_bf16():
        return False
    import torch

    # The flags are part of the key: cloud VMs often report a generic model name ("Intel(R) Xeon(R) Processor")
    # for CPUs with and without AMX, whose bf16 GEMMs differ by 5x, and a home directory can move between them.
    key = (f"{_cpu_model()} | {'+'.join(native_bf16_flags())} | {torch.get_num_threads()} threads"
           f" | torch {torch.__version__}")
    path = _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if not _valid_probe(known.get(key)):  # never measured here, or a damaged entry: measure
        known[key] = _probe()
        try:
            from vtr.atomic import write_json_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, known)
        except OSError as e:  # a read-only home: measure again next time
            logger.info("cannot keep the bf16 probe in %s: %s", path, e)
    m = known[key]
    faster = m["bf16_s"] * BF16_MIN_SPEEDUP <= m["fp32_s"]
    logger.info("bf16 GEMM %.1f ms vs fp32 %.1f ms on this CPU: --precision auto is %s", m["bf16_s"] * 1e3,
                m["fp32_s"] * 1e3, "bf16" if faster else "fp32")
    return faster


def check_precision(precision: str | None) -> str:
    """``precision`` (or env ``VTR_PRECISION``, or ``auto``) lower-cased; VtrError when it is not one of PRECISIONS.
    Cheap (no probe): programs call it where a user's flag comes in, long before anything is encoded."""
    from vtr.errors import VtrError

    precision = (precision or os.environ.get("VTR_PRECISION") or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise VtrError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def resolve_precision(precision: str | None, device, model=None) -> str:
    """``auto`` (or None, or env ``VTR_PRECISION``) -> ``bf16`` on CUDA or on a native-bf16 CPU where bf16 GEMMs
    measure faster (:func:`cpu_bf16_is_faster`), else ``fp32``; ``fp32`` whatever the hardware for a ``model``
    whose config says so (``ModelConfig.precision``: vtr's own models trained in fp32).

    device: a torch.device, a device string ("cpu", "cuda:0") or None (= cpu). An explicit ``fp32``/``bf16`` is
    returned as is; anything else raises VtrError (a user's flag or setting).
    """
    precision = check_precision(precision)
    if precision != "auto":
        return precision
    if getattr(getattr(model, "cfg", None), "precision", "auto") == "fp32":
        return "fp32"
    kind = device_type(device)
    if kind == "cuda":
        return "bf16"
    return "bf16" if kind == "cpu" and cpu_bf16_is_faster() else "fp32"


def autocast(precision: str, device):
    """The context to run a forward in: bf16 autocast on ``device``'s type, or nothing for fp32.

    precision: ``fp32`` or ``bf16`` (resolve ``auto`` first with :func:`resolve_precision`).
    """
    import torch

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be resolved to fp32 or bf16, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)
