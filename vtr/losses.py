"""Pretraining losses: contrastive (with the cross-rank gather), matching, masked LM, token alignment.

Pure tensor functions: no model code lives here. The training loop passes features, logits or indices, and
the rank / world size (open_clip habit), so every function is testable without a process group when
``world_size == 1``.

Semantics follow UMT stage 2 (OpenGVLab/unmasked_teacher, ``multi_modality/models/criterions.py``:
``get_sim``, ``VTC_VTM_Loss.vtc_loss/vtm_loss/get_mask``, ``MLMLoss.mask``, ``UTA_Loss``; the gather is
``allgather_wgrad`` from ``models/utils.py``); spec: pretraining.md §1.

Shapes: B local batch, T frames, E embedding dim, L text length, V vocabulary, K aligned tokens.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "TEMP_MIN",
    "TEMP_MAX",
    "gather_features",
    "clamp_temperature",
    "caption_ids",
    "get_sim",
    "positive_mask",
    "vtc_loss",
    "vtm_hard_negatives",
    "vtm_pair_indices",
    "gather_rows",
    "vtm_labels",
    "vtm_loss",
    "mlm_mask",
    "mlm_loss",
    "distillation_loss",
    "uta_loss",
]

TEMP_MIN = 0.001
TEMP_MAX = 0.5


# --------------------------------------------------------------------------------------------------------------
# Cross-rank gather
# --------------------------------------------------------------------------------------------------------------


class _GatherWithLocalGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward keeps only this rank's slice of the incoming gradient.

    This is ALBEF/UMT's ``allgather_wgrad``: the gradient w.r.t. rank r's features is the slice of the
    upstream gradient that rank r's own loss produced. DDP then *averages* parameter gradients over ranks.
    (``torch.distributed.nn.all_gather`` instead reduce-scatters, i.e. sums the slices from every rank's
    loss, which scales the effective learning rate by the world size.)
    """

    @staticmethod
    def forward(ctx, x, rank, world_size, group):
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous(), group=group)
        ctx.rank = rank
        ctx.batch = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_out):
        lo = ctx.rank * ctx.batch
        return grad_out[lo : lo + ctx.batch], None, None, None


def gather_features(x: torch.Tensor, rank: int, world_size: int, group=None) -> torch.Tensor:
    """Concatenate ``x`` [B, ...] from all ranks in rank order -> [world_size*B, ...].

    Every rank must pass the same B. Backward returns only the local slice of the gradient
    (``grad[rank*B:(rank+1)*B]``), the ALBEF/UMT convention the released lr was tuned for.
    With ``world_size == 1`` returns ``x`` unchanged (no process group needed).
    Integer tensors (ids) are gathered without autograd.
    """
    if world_size == 1:
        return x
    if not (x.requires_grad and torch.is_grad_enabled()):
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=0)
    return _GatherWithLocalGrad.apply(x, rank, world_size, group)


# --------------------------------------------------------------------------------------------------------------
# Contrastive (VTC)
# --------------------------------------------------------------------------------------------------------------


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` for an integer ``index`` of any shape (repeats allowed), with a backward that is the same from run
    to run.

    The backward of ``x[index]`` on the CPU accumulates repeated rows (a video or a caption in several matching
    pairs) in a parallel order that changes between runs, so a pretraining run stopped being reproducible bit for
    bit at the first VTM step; ``index_select``'s backward sums in a fixed order."""
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


@torch.no_grad()
def clamp_temperature(temp: torch.Tensor, min_val: float = TEMP_MIN, max_val: float = TEMP_MAX) -> torch.Tensor:
    """Clamp the learnable temperature in place to [0.001, 0.5] (UMT ``clip_contrastive_temperature``,
    called at the start of every training forward). Returns ``temp``."""
    temp.clamp_(min_val, max_val)
    return temp


def get_sim(
    video_feats: torch.Tensor, text_feats: torch.Tensor, temp=1.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Video-text similarity exactly as UMT ``get_sim``.

    video_feats: [Nv, T, E] per-frame projections (or [Nv, E], treated as T=1), text_feats: [Nt, E];
    neither needs to be normalised. Each frame and each text is L2-normalised, then
    ``sim_v2t = mean_t <v_t, c> / temp`` -> [Nv, Nt]; equivalently the dot product of the (not re-normalised)
    mean of normalised frame vectors with the normalised text. Returns ``(sim_v2t, sim_t2v = sim_v2t.T)``.
    """
    if video_feats.dim() == 2:
        video_feats = video_feats.unsqueeze(1)
    v = F.normalize(video_feats, dim=-1)
    c = F.normalize(text_feats, dim=-1)
    sim_v2t = torch.einsum("mtd,nd->mtn", v, c).mean(1) / temp
    return sim_v2t, sim_v2t.t()


@torch.no_grad()
def caption_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[N] int64 ids equal exactly for rows with the same tokens (a fixed random hash of the token sequence, the
    same on every rank): identical captions become one id, so they are positives for VTC and never drawn as each
    other's VTM negatives. input_ids: [N, L]. Padding adds nothing, so the id does not depend on the padded length
    either: ranks that trimmed their batches' padding to different lengths agree."""
    if attention_mask is not None:
        input_ids = input_ids * attention_mask
    gen = torch.Generator().manual_seed(0x5EED)
    length = input_ids.shape[1]  # one table for every length up to 512 (BERT's positions), sliced
    weights = torch.randint(1, 2**31 - 1, (max(length, 512),), generator=gen, dtype=torch.int64)[:length]
    return (input_ids.long().cpu() * weights).sum(1).to(input_ids.device)


@torch.no_grad()
def positive_mask(n: int, ids: Optional[torch.Tensor] = None, normalize: bool = False, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """[n, n] positives (UMT ``get_mask``): ``ids[i] == ids[j]`` when ids are given, else the diagonal.
    With ``normalize`` rows sum to 1 (only meaningful with ids; the diagonal already does)."""
    if ids is not None:
        ids = ids.view(-1, 1)
        mask = torch.eq(ids, ids.t()).to(dtype)
        if normalize:
            mask = mask / mask.sum(1, keepdim=True)
        return mask
    return torch.eye(n, dtype=dtype, device=device)


def vtc_loss(
    video_feats: torch.Tensor,
    text_feats: torch.Tensor,
    temp,
    ids: Optional[torch.Tensor] = None,
    rank: int = 0,
    world_size: int = 1,
    gather: bool = True,
    group=None,
) -> torch.Tensor:
    """Video-text contrastive loss (UMT ``VTC_VTM_Loss.vtc_loss``).

    video_feats: [B, E] or [B, T, E] (``vision_proj`` of the pooled per-frame features), text_feats: [B, E]
    (``text_proj`` of the text-mode [CLS]); both are L2-normalised *here* (per frame), after the gather, as
    upstream does. ids: [B] sample ids (same id -> positive; e.g. one video with several captions), or None
    for the diagonal. With ``gather`` the features and ids of all ranks are gathered (local-slice backward)
    and the loss is computed over the global [W*B, W*B] similarity, identically on every rank.

    S = get_sim(v, c, temp); y = positives with rows normalised to sum 1;
    loss = ½(mean_i −Σ_j y_ij log softmax(S)_ij + mean_i −Σ_j y_ij log softmax(Sᵀ)_ij).
    """
    if gather and world_size > 1:
        video_feats = gather_features(video_feats, rank, world_size, group)
        text_feats = gather_features(text_feats, rank, world_size, group)
        if ids is not None:
            ids = gather_features(ids, rank, world_size, group)

    sim_v2t, sim_t2v = get_sim(video_feats, text_feats, temp)
    targets = positive_mask(sim_v2t.shape[0], ids, normalize=True, dtype=sim_v2t.dtype, device=sim_v2t.device)
    # The id mask is symmetric, so the same targets serve both directions (as upstream).
    loss_v2t = -(F.log_softmax(sim_v2t, dim=1) * targets).sum(1).mean()
    loss_t2v = -(F.log_softmax(sim_t2v, dim=1) * targets).sum(1).mean()
    return (loss_v2t + loss_t2v) / 2


# --------------------------------------------------------------------------------------------------------------
# Matching (VTM)
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def vtm_hard_negatives(
    sim_v2t: torch.Tensor,
    sim_t2v: torch.Tensor,
    ids: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    hard: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw one negative video per text and one negative text per video, local batch only (UMT ``vtm_loss``).

    sim_v2t, sim_t2v: [B, B] (from ``get_sim`` with the temperature; no gradient flows). Weights are
    ``softmax(sim + 1e-4)`` (upstream's epsilon, inside the softmax) with positives (same id, or the diagonal)
    set to 0, then one ``torch.multinomial`` draw per row. ``hard=False`` draws uniformly among negatives
    (upstream's ``vtm_hard_neg: False``). A row with no negative at all (every sample shares one id; upstream
    would crash) falls back to uniform over the other indices.

    Returns ``(neg_video_idx [B], neg_text_idx [B])``: ``neg_video_idx[j]`` is the negative video paired with
    text j (drawn from row j of ``sim_t2v``); ``neg_text_idx[i]`` the negative text paired with video i.
    """
    n = sim_v2t.shape[0]
    mask = positive_mask(n, ids, device=sim_v2t.device).bool()
    if hard:
        w_v2t = F.softmax(sim_v2t.float() + 1e-4, dim=1).masked_fill(mask, 0)
        w_t2v = F.softmax(sim_t2v.float() + 1e-4, dim=1).masked_fill(mask, 0)
        w_v2t = torch.nan_to_num(w_v2t, nan=1e-2, posinf=1e-2, neginf=1e-2)
        w_t2v = torch.nan_to_num(w_t2v, nan=1e-2, posinf=1e-2, neginf=1e-2)
    else:
        w_v2t = (~mask).float()
        w_t2v = w_v2t.clone()

    def _fix_empty_rows(w):
        empty = w.sum(1) <= 0
        if empty.any():
            fallback = 1.0 - torch.eye(n, device=w.device) if n > 1 else torch.ones(1, 1, device=w.device)
            w = torch.where(empty[:, None], fallback, w)
        return w

    w_v2t, w_t2v = _fix_empty_rows(w_v2t), _fix_empty_rows(w_t2v)
    neg_video_idx = torch.multinomial(w_t2v, 1, generator=generator)[:, 0]
    neg_text_idx = torch.multinomial(w_v2t, 1, generator=generator)[:, 0]
    return neg_video_idx, neg_text_idx


def vtm_pair_indices(neg_video_idx: torch.Tensor, neg_text_idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices of the 3B (video, text) pairs the fusion layers see, in UMT order:
    positives (v_i, t_i), negative videos (v_neg[j], t_j), negative texts (v_i, t_neg[i]).
    Returns ``(video_idx [3B], text_idx [3B])`` into the local batch; labels are ``vtm_labels(B)``."""
    ar = torch.arange(neg_video_idx.shape[0], device=neg_video_idx.device)
    return torch.cat([ar, neg_video_idx, ar]), torch.cat([ar, ar, neg_text_idx])


def vtm_labels(batch_size: int, device=None) -> torch.Tensor:
    """[3B] long: B ones (positives) then 2B zeros (negative videos, negative texts)."""
    labels = torch.zeros(3 * batch_size, dtype=torch.long, device=device)
    labels[:batch_size] = 1
    return labels


def vtm_loss(itm_logits: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cross-entropy of ``itm_head([CLS])`` logits [3B, 2] for pairs ordered as ``vtm_pair_indices``."""
    if labels is None:
        assert itm_logits.shape[0] % 3 == 0, "itm_logits must hold 3B rows (pos, neg video, neg text)"
        labels = vtm_labels(itm_logits.shape[0] // 3, device=itm_logits.device)
    return F.cross_entropy(itm_logits, labels)


@torch.no_grad()
def ranking_pairs(sim_v2t: torch.Tensor, k: int, ids: Optional[torch.Tensor] = None, v2t: bool = True) -> dict:
    """The candidates of the listwise matching loss (:func:`ranking_loss`) in a batch of n clips: each text against
    its video and the k-1 videos ITC ranks highest among those that are not its positives, and each video against
    its text and its k-1 hardest texts, the lists the ITM row re-ranks. The fusion layers see each distinct pair once.

    sim_v2t: [n, n] ITC similarities; ids: [n] caption ids (equal ids are positives, never negatives) or None;
    v2t: False for the text queries alone (half the pairs: the app's search is text to video).
    Returns ``text_idx``/``video_idx`` [P] (the distinct pairs), ``label`` [P] (1: a positive pair), ``slot``
    [D, n, k] (each (direction, query, candidate) -> its pair, t2v then v2t; candidate 0 is the positive),
    ``valid`` [D, n, k] (False where a batch has fewer than k-1 negatives for a query), and per query [D, n]
    ``itc_hit`` (the positive
    above every negative by ITC) and ``in_top_k`` (the positive within ITC's top k: the ITM row's list is then
    exactly these k candidates)."""
    n = sim_v2t.shape[0]
    if k < 2:
        raise ValueError(f"ranking needs k >= 2 candidates (the positive and a negative), got {k}")
    pos = positive_mask(n, None if ids is None else ids.cpu()).bool().to(sim_v2t.device)
    ar = torch.arange(n, device=sim_v2t.device)
    slots, valid, itc_hit, in_top_k = [], [], [], []
    for sim in (sim_v2t.t(), sim_v2t)[:2 if v2t else 1]:  # t2v (rows: texts), v2t (rows: videos)
        negs = sim.float().masked_fill(pos, float("-inf"))
        top = negs.topk(min(k - 1, n - 1), dim=1)
        cand = torch.cat([ar[:, None], top.indices], 1)
        ok = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=sim.device), top.values > float("-inf")], 1)
        if cand.shape[1] < k:  # a batch smaller than k
            pad = k - cand.shape[1]
            cand = torch.cat([cand, cand[:, :1].expand(n, pad)], 1)
            ok = torch.cat([ok, torch.zeros(n, pad, dtype=torch.bool, device=sim.device)], 1)
        slots.append(cand)
        valid.append(ok)
        positive = sim.float().diagonal()
        itc_hit.append(positive > negs.max(1).values)
        kth = top.values[:, -1] if k - 1 <= n - 1 else torch.full_like(positive, float("-inf"))
        in_top_k.append(positive > kth)
    # pair key = text * n + video: t2v lists are (query text, candidate video), v2t lists (candidate text, query video)
    keys = torch.stack([ar[:, None] * n + slots[0]] + ([slots[1] * n + ar[:, None]] if v2t else []))
    unique, inverse = torch.unique(keys.reshape(-1), return_inverse=True)
    text_idx, video_idx = unique // n, unique % n
    return {"text_idx": text_idx, "video_idx": video_idx, "label": pos[text_idx, video_idx].long(),
            "slot": inverse.view(len(slots), n, k), "valid": torch.stack(valid), "itc_hit": torch.stack(itc_hit),
            "in_top_k": torch.stack(in_top_k)}


def ranking_loss(itm_logits: torch.Tensor, pairs: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """Listwise matching loss over :func:`ranking_pairs`: cross-entropy of each query's k match scores
    (logit 1 − logit 0 of ``itm_head``) with its positive first, in both directions, the ranking the ITM row reads,
    plus the head's two-way loss on every distinct pair so that its probability stays meaningful.

    itm_logits: [P, 2] for ``pairs``' distinct pairs. Returns ``(loss, itm_hit [D, n])``: itm_hit is True where the
    ITM row would rank the positive first (within ITC's top k, and above the k-1 negatives by the head)."""
    score = itm_logits[:, 1] - itm_logits[:, 0]
    s = gather_rows(score, pairs["slot"]).float().masked_fill(~pairs["valid"], float("-inf"))  # [2, n, k]
    two, n, k = s.shape
    listwise = F.cross_entropy(s.reshape(two * n, k), torch.zeros(two * n, dtype=torch.long, device=s.device))
    loss = listwise + F.cross_entropy(itm_logits.float(), pairs["label"])
    with torch.no_grad():
        itm_hit = pairs["in_top_k"] & (s[..., 0] > s[..., 1:].max(-1).values)
    return loss, itm_hit


@torch.no_grad()
def ranking_chance(pairs: dict) -> float:
    """:func:`ranking_loss` of a head that learned nothing but the share of positives: ln(candidates) per query
    plus the entropy of the pair labels."""
    p = pairs["label"].float().mean().clamp(1e-6, 1 - 1e-6).item()
    listwise = pairs["valid"].sum(-1).clamp_min(1).float().log().mean().item()
    return listwise - p * math.log(p) - (1 - p) * math.log(1 - p)


# --------------------------------------------------------------------------------------------------------------
# Masked language modelling
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def mlm_mask(
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    vocab_size: int,
    mask_token_id: int,
    pad_token_id: int,
    cls_token_id: int,
    prob: float = 0.5,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption as UMT ``MLMLoss.mask``. input_ids: [N, L] -> ``(masked_ids, labels)`` [N, L].

    Each token is selected with probability ``prob`` (0.5 in the release), never PAD or CLS (and never a
    position with ``attention_mask == 0``; upstream relies on those being PAD). SEP *can* be selected, as
    upstream. Of the selected: 80% -> ``mask_token_id``, 10% -> a uniform random id in [0, vocab_size)
    (special tokens included, as upstream), 10% unchanged. ``labels`` hold the original id at selected
    positions and -100 elsewhere. ``input_ids`` is not modified.
    """
    ids = input_ids.clone()
    labels = input_ids.clone()
    dev = ids.device
    # Draw on the generator's device (so a CPU generator can drive a CUDA batch reproducibly).
    rng_dev = generator.device if generator is not None else dev

    def bern(p):
        return torch.bernoulli(torch.full(ids.shape, p, device=rng_dev), generator=generator).bool().to(dev)

    selected = bern(prob)
    selected &= ids != pad_token_id
    selected &= ids != cls_token_id
    if attention_mask is not None:
        selected &= attention_mask.bool()
    labels[~selected] = -100

    replaced = bern(0.8) & selected
    ids[replaced] = mask_token_id
    randomised = bern(0.5) & selected & ~replaced
    random_words = torch.randint(vocab_size, ids.shape, dtype=ids.dtype, device=rng_dev, generator=generator)
    random_words = random_words.to(dev)
    ids[randomised] = random_words[randomised]
    return ids, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over masked positions. logits: [N, L, V], labels: [N, L] (-100 = ignore).
    Returns 0 (connected to the graph) when nothing is masked, instead of NaN."""
    flat_labels = labels.reshape(-1)
    if not (flat_labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat_labels, ignore_index=-100)


# --------------------------------------------------------------------------------------------------------------
# Token alignment / self-distillation
# --------------------------------------------------------------------------------------------------------------


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean(2 − 2·cos(student, teacher)) over all leading dims (UMT ``UTA_Loss`` with l2 norm and l2 loss).

    student, teacher: [..., E] with matching shapes, e.g. [B, K, E] visible student tokens through
    ``clip_decoder`` vs the frozen teacher's tokens at the same positions, or [B, E] final features for
    self-distillation. The teacher is detached. 0 for identical directions, 4 for opposite ones.
    """
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    return (2 - 2 * (s * t).sum(-1)).mean()


uta_loss = distillation_loss
