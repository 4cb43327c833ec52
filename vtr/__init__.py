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


def create_model(name, pretrained=None, **overrides):
    """Build a registered model; see :func:`vtr.models.registry.create_model`."""
    from vtr.models.registry import create_model as _create_model

    return _create_model(name, pretrained=pretrained, **overrides)


def list_models(pretrained_only=False):
    """Names of registered architectures and weights; see :func:`vtr.models.registry.list_models`."""
    from vtr.models.registry import list_models as _list_models

    return _list_models(pretrained_only=pretrained_only)


__all__ = ["__version__", "create_model", "list_models"]
