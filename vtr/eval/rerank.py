"""ITM re-ranking of the ITC top k both ways (UMT): which (video, text) pairs to score, and the re-ranked matrices,
resumable through an optional :class:`vtr.eval.cache.ChunkedArrays` of pair scores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vtr.eval.cache import ChunkedArrays

ITM_FILL = -100.0  # score of the pairs outside the top-k in the ITM matrices (as UMT)


def topk_pairs(itc: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (video, text) pairs ITM must score: each video's top-k texts ∪ each text's top-k videos.

    itc: [Nv, Nt]. Returns (v2t_idx [Nv, kv], t2v_idx [Nt, kt], pairs [P, 2] (video, text), sorted by video then
    text) with kv = min(k, Nt), kt = min(k, Nv) as UMT.
    """
    nv, nt = itc.shape
    v2t_idx = itc.topk(min(k, nt), dim=1).indices
    t2v_idx = itc.t().topk(min(k, nv), dim=1).indices
    need = torch.zeros(nv, nt, dtype=torch.bool)
    need.scatter_(1, v2t_idx.cpu(), True)
    need.t().scatter_(1, t2v_idx.cpu(), True)
    return v2t_idx.cpu(), t2v_idx.cpu(), need.nonzero()


def itm_rerank(itc: torch.Tensor, score_pairs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], k: int = 128,
               batch_size: int = 32, store: ChunkedArrays | None = None, commit_every: int = 4096
               ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Re-rank the ITC top-k with ITM both ways.

    itc: [Nv, Nt]. score_pairs(video_idx [n], text_idx [n]) -> ITM logits [n]; called with pairs sorted by video
    so a batch touches few videos. store: optional ChunkedArrays of P rows (array ``score``) to resume from.
    Returns (itm_v2t [Nv, Nt], itm_t2v [Nt, Nv], stats); entries outside each row's top-k are −100.
    """
    itc = itc.float().cpu()
    v2t_idx, t2v_idx, pairs = topk_pairs(itc, k)
    scores = torch.full((len(pairs),), float("nan"))
    todo = np.arange(len(pairs))
    if store is not None:
        done = store.done_mask()
        if done.any():
            scores[torch.from_numpy(np.flatnonzero(done))] = torch.from_numpy(
                np.asarray(store.read("score")[done], dtype=np.float32))
        todo = np.flatnonzero(~done)
    from tqdm.auto import tqdm

    pending_rows, pending_scores = [], []
    for start in tqdm(range(0, len(todo), batch_size), desc="itm", unit="batch", dynamic_ncols=True,
                      total=(len(todo) + batch_size - 1) // batch_size, disable=len(todo) == 0):
        rows = todo[start:start + batch_size]
        chunk = pairs[torch.from_numpy(rows)]
        s = score_pairs(chunk[:, 0], chunk[:, 1]).detach().float().cpu()
        scores[torch.from_numpy(rows)] = s
        if store is not None:
            pending_rows.append(rows)
            pending_scores.append(s.numpy())
            if sum(len(r) for r in pending_rows) >= commit_every:
                store.write(np.concatenate(pending_rows), {"score": np.concatenate(pending_scores)})
                pending_rows, pending_scores = [], []
    if store is not None and pending_rows:
        store.write(np.concatenate(pending_rows), {"score": np.concatenate(pending_scores)})
    nv, nt = itc.shape
    full = torch.full((nv, nt), ITM_FILL)
    full[pairs[:, 0], pairs[:, 1]] = scores
    itm_v2t = torch.full((nv, nt), ITM_FILL)
    itm_v2t.scatter_(1, v2t_idx, full.gather(1, v2t_idx))
    itm_t2v = torch.full((nt, nv), ITM_FILL)
    itm_t2v.scatter_(1, t2v_idx, full.t().gather(1, t2v_idx))
    return itm_v2t, itm_t2v, {"pairs_scored": int(len(todo)), "pairs_total": int(len(pairs))}
