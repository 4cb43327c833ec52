"""The dual encoder users load: VideoMamba + BERT with fusion layers, and the heads of model.md §5.

No loss lives here (see :mod:`vtr.losses`); the model only encodes and scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vtr.models.bert import BertFusionModel, BertMLMHead, TextConfig, trim_padding
from vtr.models.videomamba import VideoMamba, VideoMambaConfig


@dataclass
class Preprocess:
    """How inputs must be prepared for a set of weights; travels with the weights (registry, vtr format)."""

    num_frames: int = 8
    img_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    max_txt_l: int = 32
    tokenizer: str = "bert-base-uncased"
    # The release was evaluated with torchvision 0.16 (VideoMamba's requirements), whose tensor Resize did not
    # antialias; torchvision >= 0.17 does by default. Recorded per weights so each is fed as it was trained.
    antialias: bool = True

    # The one owner of how frames and words are fed to these weights: evaluation, index building, text and
    # example search, the pretraining reader and the app all go through the methods below.
    def resize(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """``uint8 [..., 3, H, W]`` → ``uint8 [..., 3, S, S]`` (bicubic, antialias as recorded for the weights)."""
        from vtr.data.transforms import resize_uint8

        return resize_uint8(frames_uint8, (self.img_size, self.img_size), antialias=self.antialias)

    def normalize(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """``uint8 [..., 3, S, S]`` (any device) → ``float32 (x / 255 - mean) / std``."""
        from vtr.data.transforms import normalize

        return normalize(frames_uint8, self.mean, self.std)

    def __call__(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """``uint8 [..., 3, H, W]`` → the model's input ``float32 [..., 3, S, S]``: resize, then normalise."""
        return self.normalize(self.resize(frames_uint8))

    def eval_transform(self):
        """The evaluation transform for these weights: uint8 [T,3,H,W] -> normalised float [T,3,S,S]."""
        from vtr.data.transforms import EvalTransform

        return EvalTransform(self.img_size, self.mean, self.std, antialias=self.antialias)

    def train_transform(self, scale=(0.5, 1.0), flip_p: float = 0.5, generator=None):
        """The pretraining transform (random resized crop + flip) with these weights' size, mean/std and resize."""
        from vtr.data.transforms import TrainTransform

        return TrainTransform(self.img_size, scale=scale, flip_p=flip_p, mean=self.mean, std=self.std,
                              antialias=self.antialias, generator=generator)

    def tokenize(self, tokenizer, texts, max_length: int | None = None) -> dict:
        """Normalised captions → ``input_ids`` / ``attention_mask [N, L]``, ``L = max_length or max_txt_l``."""
        from vtr.data.text import tokenize

        return tokenize(tokenizer, texts, int(max_length or self.max_txt_l))

    def count_tokens(self, tokenizer, text: str) -> int:
        """How many tokens ``text`` needs, special tokens included (more than ``max_txt_l`` are cut off)."""
        return len(tokenizer(text, truncation=False)["input_ids"])

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class VideoEmbedding:
    """Output of :meth:`VideoTextModel.encode_video`."""

    frame_embeds: torch.Tensor  # [B, T, E], each frame unit-norm
    embedding: torch.Tensor  # [B, E], mean over frames (not re-normalised): the vector to index
    tokens: torch.Tensor | None = None  # [B, T*P, D] final-normed patch tokens, for ITM
    clip_input: torch.Tensor | None = None  # [B, 1+K, D] what clip_decoder reads in UMT's token alignment


@dataclass
class TextEmbedding:
    """Output of :meth:`VideoTextModel.encode_text`."""

    embedding: torch.Tensor  # [N, E] unit-norm
    hidden: torch.Tensor  # [N, L, H] text-mode states (input of the fusion layers)
    attention_mask: torch.Tensor  # [N, L]


TEXT_POOLING = ("cls", "mean")
MODEL_PRECISIONS = ("auto", "fp32")  # ModelConfig.precision


@dataclass
class ModelConfig:
    vision: VideoMambaConfig
    text: TextConfig
    embed_dim: int = 512
    temp: float = 0.07
    with_mlm_head: bool = False
    preprocess: Preprocess = field(default_factory=Preprocess)
    # The contrastive text feature: the text-mode [CLS] (UMT, the release) or the mean over real tokens. Text
    # weights trained with mean pooling (sentence-transformers' MiniLM) carry no sentence in their [CLS]: its
    # layer-3 state is the same vector (cosine 0.9999998) for every caption, so a CLS model starts blind.
    text_pooling: str = "cls"
    # Whether the matching head (itm_head) was trained: the released weights and runs with VTM. A random head
    # re-ranks worse than the dual encoder, so the app offers re-ranking only when this is true.
    itm_trained: bool = False
    # What ``--precision auto`` runs this model in: "auto" (bf16 where the hardware multiplies it natively, see
    # vtr.precision) or "fp32" (a model trained in fp32, as vtr's own small runs are: bf16 moves its rankings by
    # points and, at its size, saves no time). An explicit --precision always wins.
    precision: str = "auto"

    def __post_init__(self):
        if self.text_pooling not in TEXT_POOLING:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLING}, got {self.text_pooling!r}")
        if self.precision not in MODEL_PRECISIONS:
            raise ValueError(f"precision must be one of {MODEL_PRECISIONS}, got {self.precision!r}")


class VideoTextModel(nn.Module):
    """VideoMamba video encoder + BERT text encoder with fusion layers (the UMT_VIDEOMAMBA model).

    Child names equal the official retrieval layout, so ``state_dict()`` (without the MLM head) has the
    names of ``official_keys_retrieval.tsv`` (less the ``position_ids`` buffer, which we do not keep).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.text.encoder_width != cfg.vision.embed_dim:
            raise ValueError(
                f"text.encoder_width ({cfg.text.encoder_width}) must equal the video width ({cfg.vision.embed_dim})"
            )
        self.cfg = cfg
        self.preprocess = cfg.preprocess
        self.vision_encoder = VideoMamba(cfg.vision)
        self.text_encoder = BertFusionModel(cfg.text)
        self.vision_proj = nn.Linear(cfg.vision.embed_dim, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.text.hidden_size, cfg.embed_dim)
        self.itm_head = nn.Linear(cfg.text.hidden_size, 2)
        self.temp = nn.Parameter(torch.tensor(cfg.temp))
        self.text_mlm_head = BertMLMHead(cfg.text) if cfg.with_mlm_head else None
        self.tie_weights()

    def tie_weights(self) -> None:
        """The MLM decoder shares the word embeddings, as in BERT and the release."""
        if self.text_mlm_head is not None:
            self.text_mlm_head.tie_weights(self.text_encoder.embeddings.word_embeddings)

    # ----------------------------------------------------------------------------------- encoding
    def encode_video(self, frames: torch.Tensor, return_tokens: bool = False, keep=None,
                     return_clip_input: bool = False) -> VideoEmbedding:
        """frames: [B, T, 3, H, W] normalised pixels → per-frame and mean embeddings (and tokens for ITM; with
        ``keep`` [B, T*P] bool only the visible tokens are encoded)."""
        out = self.vision_encoder(frames, keep=keep, return_clip_input=return_clip_input)
        frame_embeds = F.normalize(self.vision_proj(out.pooled), dim=-1)  # [B, T, E]
        return VideoEmbedding(
            frame_embeds=frame_embeds,
            embedding=frame_embeds.mean(dim=1),
            tokens=out.tokens if return_tokens else None,
            clip_input=out.clip_input,
        )

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEmbedding:
        """input_ids, attention_mask: [N, L] → unit-norm [N, E] from the text-mode states (layer fusion_layer−1):
        their [CLS], or their mean over real tokens (``cfg.text_pooling``)."""
        hidden = self.text_encoder(input_ids, attention_mask, mode="text")
        embedding = F.normalize(self.text_proj(self._pool_text(hidden, attention_mask)), dim=-1)
        return TextEmbedding(embedding=embedding, hidden=hidden, attention_mask=attention_mask)

    # ------------------------------------------------------------------------------------ scoring
    @staticmethod
    def similarity(frame_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """ITC score [Nv, Nt]: mean over frames of per-frame cosine. frame_embeds [Nv, T, E] or [Nv, E]."""
        if frame_embeds.dim() == 3:
            frame_embeds = frame_embeds.mean(dim=1)
        return frame_embeds @ text_embeds.t()

    def fusion_cls(self, text_hidden, text_mask, video_tokens) -> torch.Tensor:
        """The fusion layers' output over (text-mode states, video tokens) pairs, pooled as the text feature is
        (``cfg.text_pooling``): the [CLS] state (UMT, the release) or the mean over real tokens (a mean-pooled
        text encoder's [CLS] carries no sentence, so a head on it starts blind). Returns [N, H].

        The video side has no padding (model.md §4: its mask is all ones), so no mask is passed at all. Under [CLS]
        pooling the last fusion layer computes that row alone (``BertLayer``: the same vector, less work), and
        padding columns no text uses are dropped first (:func:`trim_padding`)."""
        text_hidden, text_mask = trim_padding(text_hidden, text_mask)
        fused = self.text_encoder(
            None, text_mask, mode="fusion", hidden_states=text_hidden, encoder_hidden_states=video_tokens,
            cls_only=self.cfg.text_pooling == "cls",
        )
        return self._pool_text(fused, text_mask)

    def fusion_cls_pairs(self, text_hidden, text_mask, video_tokens, text_index, video_index) -> torch.Tensor:
        """:meth:`fusion_cls` over the pairs (text ``text_index[n]``, video ``video_index[n]``) of [T, L, H] texts
        and [V, K, D] videos, computing what the pairs share once (``BertFusionModel.fuse_pairs``). Returns [N, H]."""
        text_hidden, text_mask = trim_padding(text_hidden, text_mask)
        fused = self.text_encoder.fuse_pairs(text_hidden, text_mask, video_tokens, text_index, video_index,
                                             cls_only=self.cfg.text_pooling == "cls")
        return self._pool_text(fused, text_mask[text_index])

    def _pool_text(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[N, L, H] -> [N, H]: the [CLS] state, or the mean over real tokens (``cfg.text_pooling``)."""
        if self.cfg.text_pooling == "mean":
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return hidden[:, 0]

    def itm_score(self, text_hidden, text_mask, video_tokens) -> torch.Tensor:
        """Raw video–text match logit (itm_head's logit 1) for N pairs: [N, L, H], [N, L], [N, K, D] → [N]."""
        return self.itm_head(self.fusion_cls(text_hidden, text_mask, video_tokens))[:, 1]

    def itm_score_pairs(self, text_hidden, text_mask, video_tokens, text_index, video_index) -> torch.Tensor:
        """:meth:`itm_score` of the pairs (text ``text_index[n]``, video ``video_index[n]``) of [T, L, H] texts and
        [V, K, D] videos; what pairs share is computed once (:meth:`fusion_cls_pairs`). Returns [N]."""
        return self.itm_head(self.fusion_cls_pairs(text_hidden, text_mask, video_tokens, text_index, video_index))[:, 1]

    def mlm_logits(self, input_ids, attention_mask, video_tokens, positions=None) -> torch.Tensor:
        """Masked-LM logits [N, L, vocab] with the fusion layers attending to the video tokens; with ``positions``
        ([N, L] bool, e.g. ``labels != -100``) only those rows, [M, vocab]: the vocabulary projection is most of
        the head's cost and only masked positions enter the loss."""
        if self.text_mlm_head is None:
            raise RuntimeError("this model was built without the MLM head (with_mlm_head=False)")
        hidden = self.text_encoder(input_ids, attention_mask, mode="multi_modal", encoder_hidden_states=video_tokens)
        if positions is not None:
            hidden = hidden[positions]
        return self.text_mlm_head(hidden)

    @torch.no_grad()
    def clamp_temperature(self, min_val: float = 0.001, max_val: float = 0.5) -> None:
        self.temp.clamp_(min_val, max_val)
