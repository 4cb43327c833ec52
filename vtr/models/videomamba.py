"""VideoMamba vision encoder (model.md §2): config, one builder, size entrypoints, position-embedding resizing.

Module names equal the release's ``vision_encoder.*`` names: ``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``temporal_pos_embedding``, ``layers.{i}.norm``, ``layers.{i}.mixer.*``, ``norm``, ``pool_norm``,
``clip_decoder.0.{head,norm}``.

The model runs at any frame count and resolution: when T or the patch grid differ from the parameters'
sizes, ``pos_embed`` / ``temporal_pos_embedding`` are resized on the fly with the same functions the checkpoint
loader uses (:func:`resize_pos_embed`, :func:`resize_temporal_pos_embed`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from vtr.models.mamba import Block, RMSNorm

logger = logging.getLogger(__name__)

__all__ = [
    "VideoMambaConfig",
    "VideoMamba",
    "VideoMambaOutput",
    "VIDEOMAMBA_SIZES",
    "build_videomamba",
    "videomamba_tiny",
    "videomamba_small",
    "videomamba_middle",
    "videomamba_test",
    "resize_pos_embed",
    "resize_temporal_pos_embed",
    "resize_temporal_pos_embedding",
    "sinusoid_position_table",
]


@dataclass
class VideoMambaConfig:
    """Vision encoder hyper-parameters.

    embed_dim: width D. depth: number of blocks. patch_size / img_size / num_frames: sizes of the parameters
    (``pos_embed`` grid = img_size // patch_size, ``temporal_pos_embedding`` length = num_frames); inputs of other
    sizes are handled by resizing. d_state / d_conv / expand / dt_rank: mixer (dt_rank "auto" = ceil(D/16)).
    drop_path_rate: stochastic depth, linear in depth from 0. norm_eps: RMSNorm eps (pool_norm uses 1e-5).
    clip_output_dim: width of ``clip_decoder`` (teacher alignment in pretraining). grad_checkpointing: recompute
    each block in backward (training only).
    """

    embed_dim: int = 576
    depth: int = 32
    patch_size: int = 16
    img_size: int = 224
    num_frames: int = 8
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: object = "auto"
    in_chans: int = 3
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-5
    clip_output_dim: int = 512
    clip_return_layer: int = 1
    grad_checkpointing: bool = False

    @property
    def grid_size(self):
        return self.img_size // self.patch_size

    @property
    def num_patches(self):
        return self.grid_size ** 2


class VideoMambaOutput(NamedTuple):
    """tokens: [B, T·P, D] final-normed patch tokens (no cls), or [B, K, D] with ``keep``;
    pooled: [B, T, D] = pool_norm(cls + mean of frame t's patch tokens); cls: [B, D] final-normed cls token."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    cls: torch.Tensor
    clip_input: torch.Tensor | None = None  # [B, 1 + K, D] with ``return_clip_input`` (see forward_features)


def resize_pos_embed(pos_embed, grid_hw, num_prefix_tokens=1, old_grid_hw=None):
    """Resize the patch grid of a position embedding bicubically (align_corners=False), prefix rows kept.

    pos_embed: [1, prefix + Gh·Gw, D] (square old grid unless ``old_grid_hw``); grid_hw: (H', W') or int
    -> [1, prefix + H'·W', D].
    """
    if isinstance(grid_hw, int):
        grid_hw = (grid_hw, grid_hw)
    grid_hw = tuple(int(g) for g in grid_hw)
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    if old_grid_hw is None:
        side = int(round(math.sqrt(grid.shape[1])))
        if side * side != grid.shape[1]:
            raise ValueError(f"pos_embed grid of {grid.shape[1]} tokens is not square; pass old_grid_hw")
        old_grid_hw = (side, side)
    if tuple(old_grid_hw) == grid_hw:
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = grid.reshape(1, old_grid_hw[0], old_grid_hw[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=grid_hw, mode="bicubic", align_corners=False).to(pos_embed.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_hw[0] * grid_hw[1], dim)
    return torch.cat([prefix, grid], dim=1)


def resize_temporal_pos_embed(temporal_pos_embed, num_frames):
    """Resize a temporal position embedding linearly along time (align_corners=False).

    temporal_pos_embed: [1, T, D] -> [1, num_frames, D].
    """
    if temporal_pos_embed.shape[1] == num_frames:
        return temporal_pos_embed
    tpe = temporal_pos_embed.permute(0, 2, 1).float()
    tpe = F.interpolate(tpe, size=(int(num_frames),), mode="linear", align_corners=False)
    return tpe.permute(0, 2, 1).to(temporal_pos_embed.dtype)


resize_temporal_pos_embedding = resize_temporal_pos_embed


def sinusoid_position_table(n_position, dim):
    """The fixed sin-cos table the official pretraining adds before ``clip_decoder``: [1, n_position, dim]."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    j = torch.arange(dim)
    angle = pos / torch.pow(10000.0, (2 * (j // 2)).double() / dim)
    table = torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float().unsqueeze(0)


class PatchEmbed(nn.Module):
    """Conv3d(C→D, kernel (1,p,p), stride (1,p,p)) per frame; computed as one GEMM on unfolded patches."""

    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=(1, patch_size, patch_size),
                              stride=(1, patch_size, patch_size))

    def forward(self, frames):
        """frames: [B, T, C, H, W] -> ([B, T, Gh·Gw, D], (Gh, Gw)); trailing pixels beyond the grid are dropped
        as Conv3d's stride does."""
        b, t, c, h, w = frames.shape
        p = self.patch_size
        gh, gw = h // p, w // p
        x = frames[..., : gh * p, : gw * p].reshape(b, t, c, gh, p, gw, p)
        x = x.permute(0, 1, 3, 5, 2, 4, 6).reshape(b, t, gh * gw, c * p * p)  # (c, kh, kw) as the conv weight
        x = F.linear(x, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)
        return x, (gh, gw)


class LinearDecoder(nn.Module):
    """``clip_decoder.{k}``: LayerNorm(Linear(D→clip_dim)); aligns student tokens to the CLIP teacher."""

    def __init__(self, embed_dim, output_dim):
        super().__init__()
        self.head = nn.Linear(embed_dim, output_dim)
        self.norm = nn.LayerNorm(output_dim)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.norm(self.head(x))


class VideoMamba(nn.Module):
    """VideoMamba encoder. forward(frames [B, T, 3, H, W], keep=None) -> :class:`VideoMambaOutput`.

    Sequence (frame-major): cls + pos_embed[0], then for t = 0..T-1 frame t's P patches
    + pos_embed[1:] + temporal_pos_embedding[t]. ``depth`` blocks with an fp32 residual, final RMSNorm ``norm``.
    """

    def __init__(self, cfg: VideoMambaConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.embed_dim = self.num_features = d
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, d))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, cfg.num_frames, d))
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # stochastic depth rule
        self.layers = nn.ModuleList([
            Block(d, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, dt_rank=cfg.dt_rank,
                  norm_eps=cfg.norm_eps, drop_path=dpr[i])
            for i in range(cfg.depth)
        ])
        self.norm = RMSNorm(d, eps=cfg.norm_eps)
        self.clip_decoder = nn.ModuleList([LinearDecoder(d, cfg.clip_output_dim)
                                           for _ in range(cfg.clip_return_layer)])
        self.pool_norm = nn.LayerNorm(d, eps=1e-5)
        self.grad_checkpointing = cfg.grad_checkpointing
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self):
        """timm/Vim style: trunc_normal(0.02) for embeddings and Linear weights, zero biases, LayerNorm (1, 0);
        out_proj kaiming-uniform / sqrt(depth) (GPT-2 rescale); the mixers' dt_proj, A_log and D keep mamba_ssm's
        init. Differences from the official init (which only matter when training from scratch): it leaves
        cls_token and temporal_pos_embedding at zero and re-inits dt_proj with trunc_normal and a zero bias
        (losing mamba's dt range); we do not."""
        if self.pos_embed.is_meta:
            return  # built to be filled from a checkpoint (``checkpoint.empty_weights``): nothing to draw
        for t in (self.pos_embed, self.cls_token, self.temporal_pos_embedding):
            nn.init.trunc_normal_(t, std=0.02)
        for layer in self.layers:
            m = layer.mixer
            for lin in (m.in_proj, m.x_proj, m.x_proj_b):
                nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
            m.out_proj.weight.div_(math.sqrt(self.cfg.depth))
        for dec in self.clip_decoder:  # the official segm init overrides Linear_Decoder's xavier init
            nn.init.trunc_normal_(dec.head.weight, std=0.02)
        nn.init.ones_(self.pool_norm.weight)
        nn.init.zeros_(self.pool_norm.bias)

    @torch.jit.ignore
    def no_weight_decay(self):
        names = {"pos_embed", "cls_token", "temporal_pos_embedding"}
        names.update(n for n, p in self.named_parameters() if getattr(p, "_no_weight_decay", False))
        return names

    def set_grad_checkpointing(self, enable=True):
        self.grad_checkpointing = enable

    def embed(self, frames):
        """frames: [B, T, C, H, W] -> (cls [B, 1, D], patches [B, T·P, D]) with all position embeddings added."""
        b, t = frames.shape[:2]
        x, grid = self.patch_embed(frames)  # [B, T, P, D]
        pos = resize_pos_embed(self.pos_embed, grid, old_grid_hw=(self.cfg.grid_size, self.cfg.grid_size))
        tpe = resize_temporal_pos_embed(self.temporal_pos_embedding, t)
        # patches + pos_embed[1:] (shared across frames) + temporal_pos_embedding[t] (patch tokens only)
        x = x + pos[:, None, 1:] + tpe[:, :, None]
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        return cls, x.reshape(b, -1, x.shape[-1])

    def forward_features(self, frames, keep=None, return_clip_input=False):
        """frames: [B, T, C, H, W]; keep: [B, T·P] bool or None -> final-normed sequence [B, 1 + K, D] (cls first).

        ``return_clip_input``: also return what the official pretraining feeds ``clip_decoder``: the un-normed
        fp32 residual stream *before the last block's mixer output is added* (its fused add-norm leaves that in
        ``residual``), [B, 1 + K, D]; returns (sequence, clip_input).
        """
        cls, x = self.embed(frames)
        if keep is not None:
            x = select_tokens(x, keep)
        residual = torch.cat([cls, x], dim=1).float()
        ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        clip_input = None
        for i, layer in enumerate(self.layers):
            if i == len(self.layers) - 1:
                clip_input = residual
            if ckpt:
                residual = torch.utils.checkpoint.checkpoint(layer, residual, use_reentrant=False)
            else:
                residual = layer(residual)
        out = self.norm(residual)
        return (out, clip_input) if return_clip_input else out

    def forward(self, frames, keep=None, return_clip_input=False):
        """frames: [B, T, 3, H, W]; keep: optional [B, T·P] bool, True = visible patch token, the same count K per
        sample (cls always kept) -> :class:`VideoMambaOutput` (with ``clip_input`` when ``return_clip_input``).

        With ``keep``, pooled[b, t] averages only frame t's visible tokens (a frame with none contributes 0, i.e.
        pool_norm(cls)). With the same count per frame (tube masking) this equals the official
        ``x_vis.view(B, T, -1, D).mean(2)``.
        """
        b, t = frames.shape[:2]
        x, clip_input = self.forward_features(frames, keep, return_clip_input=True)
        cls, tokens = x[:, 0], x[:, 1:]
        if keep is None:
            frame_mean = tokens.reshape(b, t, -1, tokens.shape[-1]).mean(2)
        else:
            frame_mean = masked_frame_mean(tokens, keep, t)
        pooled = self.pool_norm(cls[:, None] + frame_mean)
        return VideoMambaOutput(tokens=tokens, pooled=pooled, cls=cls,
                                clip_input=clip_input if return_clip_input else None)

    def clip_position_table(self, num_patches: int, keep=None) -> torch.Tensor:
        """The sin-cos rows the official pretraining adds to ``clip_input`` before ``clip_decoder``: [1, 1 + T·P, D],
        or with ``keep`` [B, T·P] the rows of the cls and the visible tokens, [B, 1 + K, D]."""
        table = sinusoid_position_table(1 + num_patches, self.cfg.embed_dim).to(self.cls_token.device)
        if keep is None:
            return table
        visible = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)  # the cls row always
        return table.expand(keep.shape[0], -1, -1)[visible].reshape(keep.shape[0], -1, table.shape[-1])

    def align_to_teacher(self, tokens, index=0, pos=None):
        """Apply ``clip_decoder[index]`` (Linear D→512 + LayerNorm) to student tokens [B, K, D] -> [B, K, 512].

        The official pretraining feeds it ``forward_features(..., return_clip_input=True)[1]`` (the un-normed
        residual before the last block's output, cls included) plus a fixed sin-cos table
        (:func:`sinusoid_position_table` over 1 + T·P rows, the visible rows selected); pass that as ``pos``.
        """
        if pos is not None:
            tokens = tokens + pos.to(tokens.dtype)
        return self.clip_decoder[index](tokens)


def select_tokens(x, keep):
    """x: [B, N, D]; keep: [B, N] bool with the same count K per row -> [B, K, D] (order preserved)."""
    b, n, d = x.shape
    counts = keep.sum(1)
    k = int(counts[0])
    if not bool((counts == k).all()):
        raise ValueError("keep must select the same number of tokens in every sample")
    return x[keep].reshape(b, k, d)


def masked_frame_mean(tokens, keep, num_frames):
    """Mean of each frame's kept tokens. tokens: [B, K, D] (the kept tokens, frame-major); keep: [B, T·P]
    -> [B, T, D]; frames with no kept token give 0."""
    b, k, d = tokens.shape
    frame_of_token = torch.arange(keep.shape[1], device=keep.device) // (keep.shape[1] // num_frames)
    frame_idx = frame_of_token.expand(b, -1)[keep].reshape(b, k)  # [B, K]
    sums = tokens.new_zeros(b, num_frames, d).scatter_add_(1, frame_idx[..., None].expand(-1, -1, d), tokens)
    counts = keep.reshape(b, num_frames, -1).sum(-1).clamp(min=1).to(tokens.dtype)
    return sums / counts[..., None]


#: The VideoMamba sizes (width D, depth), declared once: the entry points below and the registry's architectures
#: (``videomamba_tiny_bert``, ...) are built from them.
VIDEOMAMBA_SIZES = {
    "tiny": dict(embed_dim=192, depth=24),  # VideoMamba-Ti, ≈7M params
    "small": dict(embed_dim=384, depth=24),  # VideoMamba-S, ≈26M params
    "middle": dict(embed_dim=576, depth=32),  # VideoMamba-M, ≈74M params: the released multimodal encoder
}


def build_videomamba(cfg: Optional[VideoMambaConfig] = None, **overrides):
    """The one builder: a :class:`VideoMamba` from a config (fields overridden by keyword)."""
    cfg = replace(cfg or VideoMambaConfig(), **overrides)
    return VideoMamba(cfg)


def videomamba_tiny(**overrides):
    """VideoMamba-Ti (:data:`VIDEOMAMBA_SIZES`)."""
    return build_videomamba(VideoMambaConfig(**VIDEOMAMBA_SIZES["tiny"]), **overrides)


def videomamba_small(**overrides):
    """VideoMamba-S (:data:`VIDEOMAMBA_SIZES`)."""
    return build_videomamba(VideoMambaConfig(**VIDEOMAMBA_SIZES["small"]), **overrides)


def videomamba_middle(**overrides):
    """VideoMamba-M (:data:`VIDEOMAMBA_SIZES`), the released multimodal encoder."""
    return build_videomamba(VideoMambaConfig(**VIDEOMAMBA_SIZES["middle"]), **overrides)


def videomamba_test(**overrides):
    """A tiny variant for CPU tests: D 64, depth 2, 32² images of 8² patches (4×4 grid), 4 frames."""
    return build_videomamba(VideoMambaConfig(embed_dim=64, depth=2, patch_size=8, img_size=32, num_frames=4),
                            **overrides)
