"""Token masks for the masked video student (UMT stage 2, pretraining.md §1 "UTA").

Every generator returns a bool ``keep`` mask [B, T*P]: True = visible (the student sees it), frame-major
token order (token ``t*P + p`` is patch p of frame t, as VideoMamba flattens), and the same number of visible
tokens in every sample so ``apply_keep`` can stack them. Note the polarity is the opposite of upstream UMT
(OpenGVLab/unmasked_teacher ``multi_modality/models/mask.py`` and ``umt.py: encode_teacher``), whose masks are
True = masked.

Counts follow upstream: ``num_masked = int(ratio * n)`` (floor), ``num_visible = n - num_masked``; at ratio
0.8 and 196 patches per frame that keeps 40 per frame.

Randomness comes only from ``generator`` (drawn on the generator's device, CPU by default), so masks are
reproducible; pass ``device`` to place the result.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["random_mask", "tube_mask", "row_mask", "attention_mask_from_teacher", "apply_keep"]


def _rng_device(generator: Optional[torch.Generator]) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _keep_lowest(scores: torch.Tensor, num_keep: int) -> torch.Tensor:
    """Bool mask of the same shape as ``scores`` [..., n], True at the ``num_keep`` lowest scores per row."""
    idx = scores.argsort(dim=-1)[..., :num_keep]
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep.scatter_(-1, idx, True)
    return keep


def _num_visible(n: int, ratio: float) -> int:
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return n - int(ratio * n)


def random_mask(B: int, T: int, P: int, ratio: float, generator: Optional[torch.Generator] = None,
                device=None) -> torch.Tensor:
    """Mask ``int(ratio*T*P)`` tokens uniformly at random over the whole clip (UMT
    ``RandomMaskingGenerator``). Returns keep [B, T*P]; per-frame counts vary."""
    n = T * P
    scores = torch.rand(B, n, generator=generator, device=_rng_device(generator))
    return _keep_lowest(scores, _num_visible(n, ratio)).to(device or scores.device)


def tube_mask(B: int, T: int, P: int, ratio: float, generator: Optional[torch.Generator] = None,
              device=None) -> torch.Tensor:
    """Mask the same ``int(ratio*P)`` spatial positions in every frame (UMT ``TubeMaskingGenerator``).
    Returns keep [B, T*P]."""
    scores = torch.rand(B, P, generator=generator, device=_rng_device(generator))
    keep = _keep_lowest(scores, _num_visible(P, ratio))  # [B, P]
    return keep[:, None, :].expand(B, T, P).reshape(B, T * P).to(device or scores.device)


def row_mask(B: int, T: int, H: int, W: int, ratio: float, generator: Optional[torch.Generator] = None,
             device=None) -> torch.Tensor:
    """Row masking: whole rows of each frame's H×W patch grid are kept or masked, so the visible tokens form
    contiguous runs of W in scan order (the scan prefers contiguous tokens; VideoMamba paper).

    The clip keeps ``R = round((1-ratio)*T*H)`` rows in all (the row count whose kept fraction is closest to
    1−ratio), at least one per frame so every frame has visible tokens: each frame keeps ``R // T`` rows and
    ``R % T`` randomly chosen frames keep one more. Which rows a frame keeps is drawn independently per frame
    and sample. Every sample keeps ``R*W`` tokens. Returns keep [B, T*H*W].
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    rdev = _rng_device(generator)
    total = min(max(int(round((1.0 - ratio) * T * H)), T), T * H)
    base, extra = divmod(total, T)
    rows_per_frame = torch.full((B, T), base, dtype=torch.long, device=rdev)
    if extra:
        bonus = _keep_lowest(torch.rand(B, T, generator=generator, device=rdev), extra)
        rows_per_frame += bonus.long()
    # Rank the rows of each frame randomly; keep those whose rank is below that frame's row count.
    ranks = torch.rand(B, T, H, generator=generator, device=rdev).argsort(-1).argsort(-1)
    keep_rows = ranks < rows_per_frame[..., None]  # [B, T, H]
    keep = keep_rows[..., None].expand(B, T, H, W).reshape(B, T * H * W)
    return keep.to(device or rdev)


@torch.no_grad()
def attention_mask_from_teacher(cls_attn: torch.Tensor, ratio: float,
                                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """UMT attention masking: per frame, keep ``P - int(ratio*P)`` tokens drawn without replacement with
    probability proportional to the teacher's [CLS]→patch attention (``torch.multinomial``; upstream
    ``umt.py: encode_teacher``, mask type "attention").

    cls_attn: [B, T, P] non-negative (need not sum to 1). Returns keep [B, T*P] on cls_attn's device,
    the same count per frame.
    """
    B, T, P = cls_attn.shape
    num_keep = _num_visible(P, ratio)
    # A tiny floor so underflowed (fp16/bf16) attention never leaves fewer than num_keep drawable tokens.
    weights = cls_attn.detach().float().reshape(B * T, P).clamp_min(1e-12)
    if generator is not None and generator.device != weights.device:
        weights = weights.to(generator.device)
    idx = torch.multinomial(weights, num_keep, replacement=False, generator=generator)
    keep = torch.zeros(B * T, P, dtype=torch.bool, device=idx.device)
    keep.scatter_(1, idx, True)
    return keep.reshape(B, T * P).to(cls_attn.device)


def apply_keep(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Gather the visible tokens in order: tokens [B, L, D], keep [B, L] bool (same count per row) ->
    [B, K, D]."""
    B, L, D = tokens.shape
    if keep.shape != (B, L):
        raise ValueError(f"keep must be [{B}, {L}], got {list(keep.shape)}")
    counts = keep.sum(1)
    if B and not bool((counts == counts[0]).all()):
        raise ValueError(f"keep must select the same number of tokens per sample, got {counts.tolist()}")
    return tokens[keep.to(tokens.device)].reshape(B, -1, D)
