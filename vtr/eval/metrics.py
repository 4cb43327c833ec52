"""Retrieval metrics exactly as UMT / VideoMamba compute them (``itm_eval`` in their ``retrieval_utils.py``).

rank = 0-based position of the ground truth in the row sorted by descending score; with several ground truths
(MSVD video→text) the best one counts. R@K = 100·mean(rank < K); MdR = median(rank)+1; MnR = mean(rank)+1.

Ties. UMT sorts with ``inds = np.argsort(score)[::-1]`` and takes ``np.where(inds == gt)[0][0]``. NumPy's default
``argsort`` kind is not stable, so UMT's order inside a group of equal scores depends on the NumPy version, the
row length and the CPU's SIMD sort. We fix it to the stable version of the same expression,
``np.argsort(score, kind="stable")[::-1]``: among equal scores the **higher index ranks first**. That is

    rank(gt) = #{j : s_j > s_gt} + #{j > gt : s_j == s_gt}

which equals UMT's result whenever the ground truth is not tied (always, in practice, for float ITC scores). Ties
are systematic only in the ITM rows past the top k (all −100), where the ground truth's rank is ≥ k anyway: R@1/5/10
are unaffected for k ≥ 10, MdR/MnR are not, which is why they are reported from the ITC matrix (evaluation.md §4).
NaN scores are refused.

UMT naming trap: its ``txt_r*`` keys are video→text and its ``img_r*`` keys are text→video; :func:`umt_names`
converts our explicit names to UMT's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def _as_gt_lists(gt: Sequence, n: int, what: str) -> list[np.ndarray]:
    if len(gt) != n:
        raise ValueError(f"{what} has {len(gt)} entries for {n} queries")
    return [np.atleast_1d(np.asarray(g, dtype=np.int64)) for g in gt]


def ranks_of_ground_truth(scores, ground_truth: Sequence) -> np.ndarray:
    """0-based rank of the best ground truth in each row of ``scores`` [Nq, Ng] (descending; ties: see module doc).

    ground_truth[q] is one gallery index or a list of them. Returns int64 [Nq].
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [queries, gallery], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: the model produced invalid similarities")
    gts = _as_gt_lists(ground_truth, scores.shape[0], "ground truth")
    index = np.arange(scores.shape[1])
    ranks = np.empty(scores.shape[0], dtype=np.int64)
    for q, (row, gt) in enumerate(zip(scores, gts)):
        if gt.size == 0:
            raise ValueError(f"query {q} has no ground truth")
        gt_scores = row[gt][:, None]  # [G, 1]
        better = (row[None, :] > gt_scores).sum(axis=1)
        tied_after = ((row[None, :] == gt_scores) & (index[None, :] > gt[:, None])).sum(axis=1)
        ranks[q] = int((better + tied_after).min())
    return ranks


def _direction_metrics(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    out = {f"{prefix}_r{k}": 100.0 * float(np.mean(ranks < k)) for k in RECALL_KS}
    out[f"{prefix}_r_mean"] = sum(out[f"{prefix}_r{k}"] for k in RECALL_KS) / len(RECALL_KS)
    return out


def retrieval_metrics(
    scores_v2t,
    txt2video: Sequence,
    video2txt: Sequence,
    scores_t2v=None,
    rank_scores_v2t=None,
) -> dict[str, float]:
    """R@1/5/10 both ways, their means, and MdR/MnR.

    scores_v2t: [Nv, Nt] video→text scores (rows = videos). scores_t2v: [Nt, Nv] text→video scores; defaults to
    scores_v2t.T (the ITC case; the ITM re-ranked matrices of the two directions differ).
    txt2video[t]: the video of text t (int, or a list). video2txt[v]: the texts of video v (list, or an int).
    rank_scores_v2t: [Nv, Nt] matrix for MdR/MnR (pass the ITC matrix when scoring the ITM rows); defaults to
    the matrices above.

    Returns keys t2v_r1, t2v_r5, t2v_r10, t2v_r_mean, v2t_r1, ..., v2t_r_mean, r_mean,
    t2v_mdr, t2v_mnr, v2t_mdr, v2t_mnr (unrounded; UMT rounds to 2 decimals when printing).
    """
    scores_v2t = np.asarray(scores_v2t)
    scores_t2v = scores_v2t.T if scores_t2v is None else np.asarray(scores_t2v)
    nv, nt = scores_v2t.shape
    if scores_t2v.shape != (nt, nv):
        raise ValueError(f"scores_t2v has shape {scores_t2v.shape}, expected {(nt, nv)}")
    v2t_ranks = ranks_of_ground_truth(scores_v2t, video2txt)
    t2v_ranks = ranks_of_ground_truth(scores_t2v, txt2video)
    out = {**_direction_metrics(t2v_ranks, "t2v"), **_direction_metrics(v2t_ranks, "v2t")}
    out["r_mean"] = (out["t2v_r_mean"] + out["v2t_r_mean"]) / 2
    if rank_scores_v2t is not None:
        rank_scores_v2t = np.asarray(rank_scores_v2t)
        if rank_scores_v2t.shape != (nv, nt):
            raise ValueError(f"rank_scores_v2t has shape {rank_scores_v2t.shape}, expected {(nv, nt)}")
        v2t_ranks = ranks_of_ground_truth(rank_scores_v2t, video2txt)
        t2v_ranks = ranks_of_ground_truth(rank_scores_v2t.T, txt2video)
    for prefix, ranks in (("t2v", t2v_ranks), ("v2t", v2t_ranks)):
        out[f"{prefix}_mdr"] = float(np.median(ranks)) + 1
        out[f"{prefix}_mnr"] = float(np.mean(ranks)) + 1
    return out


_UMT_NAMES = {
    "v2t_r1": "txt_r1",
    "v2t_r5": "txt_r5",
    "v2t_r10": "txt_r10",
    "v2t_r_mean": "txt_r_mean",
    "t2v_r1": "img_r1",
    "t2v_r5": "img_r5",
    "t2v_r10": "img_r10",
    "t2v_r_mean": "img_r_mean",
    "r_mean": "r_mean",
}


def umt_names(metrics: dict[str, float]) -> dict[str, float]:
    """Our metric dict under UMT's key names, rounded to 2 decimals like UMT (``txt_r*`` = v2t, ``img_r*`` = t2v)."""
    return {umt: round(metrics[ours], 2) for ours, umt in _UMT_NAMES.items()}
