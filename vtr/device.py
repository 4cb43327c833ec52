"""Which torch device a command runs on: ``auto`` (a CUDA GPU when there is one, else the CPU), ``cpu``, ``cuda`` or
``cuda:N``. Every command resolves its ``--device`` here before it loads anything, so a device this machine lacks is
a one-line error that says what to use instead, not a traceback from inside torch after the weights were loaded.
:func:`device_type` names a device's kind for the choices that depend on it (precision, the index's batch).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vtr.errors import VtrError

if TYPE_CHECKING:
    import torch

AUTO = "auto"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def device_type(device) -> str:
    """``"cpu"``, ``"cuda"``, ...: the type of a torch.device, of a device string ("cuda:0") or of None (= cpu)."""
    return str(getattr(device, "type", device) or "cpu").split(":")[0]


def resolve_device(device: str | torch.device | None = AUTO) -> torch.device:
    """``device`` as a :class:`torch.device` this machine has (None or ``auto``: CUDA when available, else CPU).

    Raises :class:`VtrError` for a name torch does not know (``gpu``), CUDA on a CPU-only torch or a machine with
    no visible GPU, a GPU number past the last one, and other device types torch cannot allocate on here.
    """
    import torch

    if isinstance(device, torch.device):
        resolved, name = device, str(device)
    else:
        name = AUTO if device is None else str(device).strip()
        if name.lower() in ("", AUTO):
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            resolved = torch.device(name.lower())
        except (RuntimeError, ValueError):
            raise VtrError(f"unknown device {name!r}: use auto (a CUDA GPU when there is one), cpu, cuda or "
                           "cuda:N") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
                   else "no CUDA GPU is visible (is the driver loaded, is CUDA_VISIBLE_DEVICES empty?)")
            raise VtrError(f"device {name!r}: {why}. Use --device cpu, or auto to take a GPU only when there is one")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise VtrError(f"device {name!r}: this machine has {count} CUDA GPU{'s' if count > 1 else ''} "
                           f"(cuda:0 to cuda:{count - 1})")
        return resolved
    try:  # mps, xpu, ...: vtr's reference ops run there; whether torch can use the device is for torch to say
        torch.empty(1, device=resolved)
    except (RuntimeError, AssertionError, AttributeError) as e:
        raise VtrError(f"device {name!r} is not available here ({e}); use --device cpu or cuda") from None
    return resolved
