"""BERT text encoder with cross-attention fusion layers (the UMT / ALBEF ``xbert`` layout), written from scratch.

Layers ``0 .. fusion_layer-1`` are plain post-LN BERT layers (self-attention -> FFN); layers ``fusion_layer ..``
add a cross-attention block over video tokens between the two (self-attention -> cross-attention -> FFN).
Module names are exactly those of Hugging Face BERT (``embeddings.*``, ``encoder.layer.{i}.attention.self.query``,
...), plus ``encoder.layer.{i}.crossattention.*``, so Hugging Face and release checkpoints load by name.

Three modes share the weights (``model.md`` §4):

- ``text``: embeddings + layers ``0 .. fusion_layer-1``. Its [CLS] is the contrastive text feature.
- ``fusion``: layers ``fusion_layer ..`` on text-mode states, cross-attending to video tokens (ITM, MLM).
- ``multi_modal``: all layers from token ids (equals ``fusion(text(x))``).

``transformers`` is not used to build the model (only in tests, for parity). Loading Hugging Face BERT weights and
the tokenizer: :mod:`vtr.models.hf_bert`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

MODES = ("text", "fusion", "multi_modal")

# The original ALBEF/UMT code masks padding by adding -10000 to the attention scores, not finfo(dtype).min.
# We keep -10000: it reproduces the release's numerics exactly, exp(-10000) is already 0 in fp32/bf16/fp16 so real
# tokens see the same softmax, it is representable in fp16/bf16 (finfo.min plus a score overflows to -inf in fp16),
# and a fully masked row degrades to a uniform average instead of NaN.
MASK_VALUE = -10000.0


@dataclass
class TextConfig:
    """BERT-with-fusion hyper-parameters. Defaults: bert-base-uncased, fusion from layer 9, video width 576 (M).

    Fields:
        vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
        type_vocab_size, layer_norm_eps, pad_token_id: as Hugging Face's ``BertConfig``
            (``num_hidden_layers`` -> ``num_layers``, ``num_attention_heads`` -> ``num_heads``).
        fusion_layer: index of the first layer with cross-attention; ``num_layers`` means no fusion layers.
        encoder_width: width D of the video tokens the cross-attention keys/values read.
        hidden_dropout, attention_dropout: dropout after embeddings/sub-blocks and on attention probabilities
            (active only in training).
        initializer_range: std of the normal init of Linear/Embedding weights (fresh cross-attention).
        gradient_checkpointing: recompute each layer in backward (training only) to save activation memory.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    fusion_layer: int = 9
    encoder_width: int = 576
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    initializer_range: float = 0.02
    gradient_checkpointing: bool = False

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if not 0 <= self.fusion_layer <= self.num_layers:
            raise ValueError(
                f"fusion_layer must be in [0, num_layers={self.num_layers}], got {self.fusion_layer} "
                f"(use fusion_layer={self.num_layers} for a text-only encoder)"
            )

    # Hugging Face BertConfig key -> our field.
    _HF_KEYS = {
        "vocab_size": "vocab_size",
        "hidden_size": "hidden_size",
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
        "intermediate_size": "intermediate_size",
        "max_position_embeddings": "max_position_embeddings",
        "type_vocab_size": "type_vocab_size",
        "layer_norm_eps": "layer_norm_eps",
        "hidden_dropout_prob": "hidden_dropout",
        "attention_probs_dropout_prob": "attention_dropout",
        "pad_token_id": "pad_token_id",
        "initializer_range": "initializer_range",
        "fusion_layer": "fusion_layer",  # present in UMT's config_bert.json
        "encoder_width": "encoder_width",
    }

    @classmethod
    def from_hf_config(cls, config: Any, **overrides) -> "TextConfig":
        """Build from a Hugging Face BERT config: a dict, a ``transformers`` config object, a ``config.json`` path,
        a model folder, or a hub name (cached or downloadable). ``overrides`` (our field names) win, e.g.
        ``TextConfig.from_hf_config(folder, fusion_layer=4, encoder_width=192)``. Keys absent from the file
        (``fusion_layer``, ``encoder_width``) take our defaults.
        """
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        elif not isinstance(config, dict):
            from vtr.models.hf_bert import read_hf_config

            config = read_hf_config(config)
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"only exact-erf GELU BERTs are supported, config has hidden_act={act!r}")
        pos = config.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(f"only absolute position embeddings are supported, config has {pos!r}")
        kwargs = {ours: config[hf] for hf, ours in cls._HF_KEYS.items() if config.get(hf) is not None}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown TextConfig fields: {sorted(unknown)}")
        kwargs.update(overrides)
        return cls(**kwargs)


def additive_attention_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Key-padding mask [N, L] (1 = attend, 0 = pad) -> additive bias [N, 1, 1, L]: 0 or -10000 (see MASK_VALUE)."""
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_VALUE


def trim_padding(hidden: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Text states [N, L, H] (or token ids [N, L]) and mask [N, L] without the trailing columns that are padding in
    every row.

    The same result, to float rounding, for whatever reads real tokens only (a [CLS] or masked-mean head): a padding
    key's additive mask (``MASK_VALUE``) makes its softmax weight exactly 0 in fp32 and bf16, and a padding row is
    read by nothing. Texts are padded to the model's length (32 for the release); captions use about half of it."""
    if mask is None or mask.shape[1] <= 1:
        return hidden, mask
    used = mask.any(0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    if length == mask.shape[1]:
        return hidden, mask
    return hidden[:, :length], mask[:, :length]


class BertEmbeddings(nn.Module):
    """word + token_type(0) + absolute position, then LayerNorm and dropout.

    Positions come from ``arange`` at call time: no ``position_ids`` buffer, so our state dict holds parameters only.
    """

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids: [N, L] -> [N, L, H]"""
        length = input_ids.shape[1]
        limit = self.position_embeddings.num_embeddings
        if length > limit:
            raise ValueError(f"{length} tokens exceed max_position_embeddings={limit}")
        positions = torch.arange(length, device=input_ids.device)
        # Same summation order as BERT: (word + token_type) + position.
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention. Self-attention when ``context`` is None; cross-attention (keys/values from
    ``context`` of width ``kv_width``) otherwise."""

    #: Pairs that share a context row (``context_index``, no mask) attend in one call per row (``_grouped``);
    #: False gathers keys and values per pair instead (the same numbers: kept for bench.itm_pairs' side by side).
    group_queries = True

    def __init__(self, cfg: TextConfig, kv_width: int | None = None):
        super().__init__()
        kv_width = kv_width or cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)
        self.dropout_p = cfg.attention_dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.view(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_index: torch.Tensor | None = None):
        """x: [N, Lq, H]; context: [N, Lk, kv_width] or None; mask: additive [N, 1, 1, Lk] or None -> [N, Lq, H].

        context_index: [N] rows of ``context`` ([M, Lk, kv_width]) that each query row attends to: the keys and
        values are projected once per context row, not once per pair (pairs that share a video)."""
        kv = x if context is None else context
        q, k, v = self._heads(self.query(x)), self._heads(self.key(kv)), self._heads(self.value(kv))
        if context_index is not None and mask is None and self.group_queries:
            return self._grouped(q, k, v, context_index)
        if context_index is not None:
            k, v = k.index_select(0, context_index), v.index_select(0, context_index)
        if mask is not None:
            mask = mask.to(q.dtype)  # SDPA wants the bias in the query dtype (autocast casts q/k/v, not always it)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0
        )
        n, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(n, length, self.num_heads * self.head_dim)

    def _grouped(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Unmasked attention of queries q [N, h, Lq, d] to keys and values k, v [M, h, Lk, d], row n reading
        k[index[n]]: the queries of the rows that read one context row are stacked into one attention call against
        it. The same result (rows are independent without a mask), without a copy of keys and values per pair: for
        the release model that copy is 1,569 tokens x 768 x 2 per pair and layer, more traffic than the attention."""
        _, heads, lq, d = q.shape
        drop = self.dropout_p if self.training else 0.0
        order = torch.argsort(index, stable=True)
        groups, counts = torch.unique_consecutive(index[order], return_counts=True)
        q = q.index_select(0, order).transpose(0, 1)  # [h, N, Lq, d], rows grouped by context row
        outs, start = [], 0
        for g, c in zip(groups.tolist(), counts.tolist()):
            qg = q[:, start:start + c].reshape(1, heads, c * lq, d)
            start += c
            og = F.scaled_dot_product_attention(qg, k[g:g + 1], v[g:g + 1], dropout_p=drop)
            outs.append(og.view(heads, c, lq, d))
        out = torch.cat(outs, 1).permute(1, 2, 0, 3).reshape(-1, lq, heads * d)
        return out.index_select(0, torch.argsort(order))  # back to the pairs' order


class BertSelfOutput(nn.Module):
    """Post-LN residual: LayerNorm(dropout(dense(h)) + input)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig, kv_width: int | None = None):
        super().__init__()
        self.self = BertSelfAttention(cfg, kv_width)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, mask=None, context=None, context_index=None):
        return self.output(self.self(x, mask, context, context_index), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf GELU, as BERT's "gelu"


class BertOutput(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    """self-attention [-> cross-attention over video tokens] -> FFN, each a post-LN residual block."""

    def __init__(self, cfg: TextConfig, has_cross_attention: bool):
        super().__init__()
        self.has_cross_attention = has_cross_attention
        self.attention = BertAttention(cfg)
        if has_cross_attention:
            self.crossattention = BertAttention(cfg, kv_width=cfg.encoder_width)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, mask=None, encoder_hidden_states=None, encoder_mask=None, encoder_index=None,
                text_index=None, cls_only=False):
        """encoder_index / text_index ([N] or None): pair n reads video row encoder_index[n] and, when given, text
        row text_index[n] of ``x`` *after* this layer's self-attention (which then runs once per text).

        cls_only: compute the [CLS] row alone ([N, 1, H]): its query attends to every token's key and value, and
        the rows after it, which nothing reads when this is the last layer and the head reads [CLS], are skipped.
        Their queries, cross-attention and FFN are most of a fusion layer's cost."""
        if cls_only:
            cls = x[:, :1]
            x = self.attention(cls, mask, x)  # self-attention: keys and values from every row of x
        else:
            x = self.attention(x, mask)
        if text_index is not None:
            x = x.index_select(0, text_index)
        if self.has_cross_attention:
            if encoder_hidden_states is None:
                raise ValueError("fusion layers need encoder_hidden_states (the video tokens)")
            x = self.crossattention(x, encoder_mask, encoder_hidden_states, encoder_index)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg, i >= cfg.fusion_layer) for i in range(cfg.num_layers))


class BertFusionModel(nn.Module):
    """BERT with cross-attention from ``cfg.fusion_layer`` on. See the module docstring for the three modes."""

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or TextConfig()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module):
        """Hugging Face BERT's init: N(0, initializer_range) weights, zero biases, unit LayerNorm, zero pad row."""
        std = self.config.initializer_range
        if getattr(module, "weight", None) is not None and module.weight.is_meta:
            return  # built to be filled from a checkpoint (``checkpoint.empty_weights``): nothing to draw
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def set_gradient_checkpointing(self, enable: bool = True):
        self.gradient_checkpointing = enable

    def layer_range(self, mode: str) -> range:
        """Indices of the layers a mode runs."""
        cfg = self.config
        if mode == "text":
            return range(0, cfg.fusion_layer)
        if mode == "fusion":
            return range(cfg.fusion_layer, cfg.num_layers)
        if mode == "multi_modal":
            return range(0, cfg.num_layers)
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mode: str = "text",
        hidden_states: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cls_only: bool = False,
    ) -> torch.Tensor:
        """Run one mode; returns the last run layer's states [N, L, H] ([N, 1, H] with ``cls_only``).

        input_ids: [N, L] token ids (modes ``text``, ``multi_modal``).
        attention_mask: [N, L] 1 for tokens, 0 for padding (None: all tokens).
        hidden_states: [N, L, H] text-mode states (mode ``fusion``; replaces the embeddings).
        encoder_hidden_states: [N, K, encoder_width] video tokens (``fusion``, ``multi_modal``).
        encoder_attention_mask: [N, K] (None: attend to all video tokens, as the release does).
        cls_only: the last layer computes the [CLS] row alone (``BertLayer``): for a head that reads only it.
        """
        layers = self.layer_range(mode)
        if mode == "fusion":
            if hidden_states is None:
                raise ValueError("mode='fusion' needs hidden_states (the text-mode output)")
            x = hidden_states
        else:
            if input_ids is None:
                raise ValueError(f"mode={mode!r} needs input_ids")
            x = self.embeddings(input_ids)
        mask = additive_attention_mask(attention_mask, x.dtype)
        encoder_mask = additive_attention_mask(encoder_attention_mask, x.dtype)
        use_checkpoint = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i in layers:
            layer, last = self.encoder.layer[i], cls_only and i == layers[-1]
            if use_checkpoint:
                x = checkpoint(layer, x, mask, encoder_hidden_states, encoder_mask, cls_only=last,
                               use_reentrant=False)
            else:
                x = layer(x, mask, encoder_hidden_states, encoder_mask, cls_only=last)
        return x

    def fuse_pairs(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                   encoder_hidden_states: torch.Tensor, text_index: torch.Tensor,
                   video_index: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """Mode ``fusion`` over the pairs (text ``text_index[n]``, video ``video_index[n]``) of T texts and V videos:
        the same states as ``forward(mode="fusion")`` on the gathered pairs ([N, L, H]), at less cost when texts
        and videos recur across pairs (a text against its k candidates): the first fusion layer's self-attention
        runs once per text, and every cross-attention projects its keys and values once per video.

        hidden_states: [T, L, H] text-mode states; attention_mask: [T, L]; encoder_hidden_states: [V, K, D] (no
        padding on the video side, model.md §4). cls_only: as in :meth:`forward` ([N, 1, H])."""
        layers = self.layer_range("fusion")
        if not len(layers):
            raise ValueError("this text encoder has no fusion layers")
        mask = additive_attention_mask(attention_mask, hidden_states.dtype)
        x = hidden_states
        for i in layers:
            last = cls_only and i == layers[-1]
            if i == layers[0]:
                x = self.encoder.layer[i](x, mask, encoder_hidden_states, None, encoder_index=video_index,
                                          text_index=text_index, cls_only=last)
                mask = None if mask is None else mask[text_index]
            else:
                x = self.encoder.layer[i](x, mask, encoder_hidden_states, None, encoder_index=video_index,
                                          cls_only=last)
        return x


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        # Shared, as in BERT: the state dict then holds both `decoder.bias` and `bias`, like the release does.
        self.decoder.bias = self.bias

    def forward(self, x):
        return self.decoder(self.transform(x))


class BertMLMHead(nn.Module):
    """Masked-LM head (``cls.*`` in BERT / the release): dense -> GELU -> LayerNorm -> decoder (vocab) + bias."""

    def __init__(self, cfg: TextConfig | None = None):
        super().__init__()
        cfg = cfg or TextConfig()
        self.predictions = BertLMPredictionHead(cfg)
        std = cfg.initializer_range
        nn.init.normal_(self.predictions.transform.dense.weight, std=std)
        nn.init.zeros_(self.predictions.transform.dense.bias)
        nn.init.normal_(self.predictions.decoder.weight, std=std)

    def tie_weights(self, embeddings: nn.Module):
        """Share the decoder weight with the word embeddings (an ``nn.Embedding``, ``BertEmbeddings`` or
        ``BertFusionModel``)."""
        if isinstance(embeddings, BertFusionModel):
            embeddings = embeddings.embeddings
        if isinstance(embeddings, BertEmbeddings):
            embeddings = embeddings.word_embeddings
        if embeddings.weight.shape != self.predictions.decoder.weight.shape:
            raise ValueError(
                f"cannot tie: embeddings {tuple(embeddings.weight.shape)} vs "
                f"decoder {tuple(self.predictions.decoder.weight.shape)}"
            )
        self.predictions.decoder.weight = embeddings.weight

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states: [..., H] -> logits [..., vocab]. Pass only the masked positions to save compute."""
        return self.predictions(hidden_states)


__all__ = [
    "MASK_VALUE",
    "TextConfig",
    "BertFusionModel",
    "BertMLMHead",
    "additive_attention_mask",
    "trim_padding",
]
