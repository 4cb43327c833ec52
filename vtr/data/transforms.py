"""Frame transforms for evaluation and training (evaluation.md §2), with torch ops only (no torchvision).

Both take a clip ``uint8 [T, 3, H, W]`` and return ``float32 [T, 3, size, size]`` normalised with the
ImageNet mean/std (configurable, so a weights entry in the registry can carry its own preprocessing).

Resizing mimics torchvision's ``Resize(size, InterpolationMode.BICUBIC, antialias=True)`` applied to a uint8
tensor: cast to float32, ``F.interpolate(mode="bicubic", align_corners=False, antialias=True)``, clamp to
[0, 255], round, back to uint8 (torchvision.transforms.functional_tensor.resize). The uint8 rounding is kept on
purpose: the reference resizes uint8 frames before dividing by 255. ``antialias`` is always passed explicitly
because torchvision changed its default for tensors in 0.17 (False before, True after).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_uint8(frames: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bicubic resize of ``uint8 [..., C, H, W]`` to ``size = (h, w)``, torchvision tensor semantics."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).to(torch.float32)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=antialias)
    x = x.clamp_(0, 255).round_().to(torch.uint8)
    return x.reshape(*lead, *x.shape[-3:])


def normalize(frames_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8 [..., 3, H, W]`` (any device) -> ``float32 (x / 255 - mean) / std``."""
    x = frames_uint8.to(torch.float32).div_(255.0)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return x.sub_(mean_t).div_(std_t)


def _check_clip(frames: torch.Tensor):
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames [T, 3, H, W], got {tuple(frames.shape)}")


class EvalTransform:
    """Squash to ``size x size`` (no aspect-ratio keeping, no crop), bicubic + antialias, /255, normalise.

    ``__call__(frames uint8 [T, 3, H, W]) -> float32 [T, 3, size, size]``.
    """

    def __init__(self, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 antialias: bool = True):
        self.size, self.mean, self.std, self.antialias = int(size), tuple(mean), tuple(std), antialias

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_clip(frames)
        return normalize(resize_uint8(frames, (self.size, self.size), self.antialias), self.mean, self.std)

    def __repr__(self):
        return f"EvalTransform(size={self.size}, mean={self.mean}, std={self.std}, antialias={self.antialias})"


def random_resized_crop_params(height: int, width: int, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3),
                               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params``: ``(top, left, h, w)``; 10 tries, then a centre crop.

    Draws from ``generator`` in the same order as torchvision draws from the global generator, so with the same
    seed the crops match torchvision's.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = math.exp(torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item(),
                                                        generator=generator).item())
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return top, left, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """RandomResizedCrop(size, scale, ratio, bicubic) + horizontal flip (p), the same for every frame of a clip,
    then /255 and normalise. ``scale=(1, 1)`` turns the crop off: the whole frame is resized, as in evaluation
    (torchvision would centre-crop frames wider than ``ratio`` allows).

    ``__call__(frames uint8 [T, 3, H, W], generator=None) -> float32 [T, 3, size, size]``; the generator (given
    here or at construction) makes the crop and flip reproducible.
    """

    def __init__(self, size: int = 224, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, antialias: bool = True,
                 generator: torch.Generator | None = None):
        self.size, self.scale, self.ratio, self.flip_p = int(size), tuple(scale), tuple(ratio), float(flip_p)
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {self.flip_p}")
        self.mean, self.std, self.antialias, self.generator = tuple(mean), tuple(std), antialias, generator

    def sample_params(self, height: int, width: int, generator: torch.Generator | None = None):
        """``(top, left, h, w, flip)`` for one clip."""
        g = generator if generator is not None else self.generator
        if self.scale[0] >= 1.0:  # no crop
            top, left, h, w = 0, 0, height, width
        else:
            top, left, h, w = random_resized_crop_params(height, width, self.scale, self.ratio, generator=g)
        flip = bool(torch.rand(1, generator=g).item() < self.flip_p)
        return top, left, h, w, flip

    def __call__(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_clip(frames)
        top, left, h, w, flip = self.sample_params(frames.shape[-2], frames.shape[-1], generator)
        clip = resize_uint8(frames[..., top:top + h, left:left + w], (self.size, self.size), self.antialias)
        if flip:
            clip = clip.flip(-1)
        return normalize(clip, self.mean, self.std)

    def __repr__(self):
        return (f"TrainTransform(size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p}, "
                f"mean={self.mean}, std={self.std})")
