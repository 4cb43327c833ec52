"""vtr: video-text retrieval with VideoMamba.

The front door is the model registry::

    import vtr
    model = vtr.create_model("videomamba_m16_25M", pretrained=True)
    vtr.list_models()

Heavy or optional dependencies (faiss, gradio, decord, mamba_ssm) are imported only where used,
so ``import vtr`` stays fast and works without them.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# torch's OpenMP threads spin for a while after each op; while they spin, the numba scan's threads get no core
# (measured: VideoMamba-M 8x224^2 fp32 on 2 cores, 11-14 s/clip spinning vs 5.7 s passive). The setting is read
# when torch loads, so it only takes effect when vtr is imported first (the `vtr` command, pretrain, index and
# app all do); an explicit OMP_WAIT_POLICY is respected.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a process frees for its next allocations (``mallopt``: no ``mmap`` for
    large blocks, no trimming of the heap). By default every tensor above glibc's threshold (a mixer's activations are
    7-58 MB) is a fresh ``mmap`` whose pages the kernel faults in and zeroes on first touch, and is unmapped when
    freed: VideoMamba-M took 70,000-330,000 page faults a forward, 0-600 with this, and ran 1.3x faster for it in
    bf16 on 2 cores (``bench/README.md``, eleventh round). The peak memory is the same; the process just does not
    hand it back between forwards. Not done where the C library is not glibc, under ``VTR_MALLOC_TUNE=0``, or when the
    user tunes malloc already (``GLIBC_TUNABLES`` / ``MALLOC_*_`` variables). Returns whether the settings were made."""
    if _os.environ.get("VTR_MALLOC_TUNE", "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    if "malloc" in _os.environ.get("GLIBC_TUNABLES", "") or any(
            k.startswith("MALLOC_") and k.endswith("_") for k in _os.environ):
        return False
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


MALLOC_TUNED = _keep_freed_memory()


def create_model(name, pretrained=None, **overrides):
    """Build a registered model; see :func:`vtr.models.registry.create_model`."""
    from vtr.models.registry import create_model as _create_model

    return _create_model(name, pretrained=pretrained, **overrides)


def list_models(pretrained_only=False):
    """Names of registered architectures and weights; see :func:`vtr.models.registry.list_models`."""
    from vtr.models.registry import list_models as _list_models

    return _list_models(pretrained_only=pretrained_only)


__all__ = ["__version__", "create_model", "list_models"]
