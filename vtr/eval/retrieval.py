"""Zero-shot video–text retrieval: the UMT / VideoMamba protocol (evaluation.md §3) with a resumable disk cache.

Stages, each with a progress bar:

1. texts  → ITC embeddings [Nt, E] + text-mode hidden states [Nt, L, H] (+ mask) for ITM, tokenised to the
   dataset's ``max_txt_l``;
2. videos → per-frame ITC embeddings [Nv, T, E] + all T·P final-normed tokens [Nv, T·P, D] for ITM, decoded in
   DataLoader workers;
3. ITC matrix [Nv, Nt] = mean over frames of per-frame cosine (``model.similarity``);
4. ITM re-ranking of the top ``k`` both ways: v2t (each video's top-k texts) and t2v (each text's top-k videos);
   each pair scored by ``model.itm_score`` over all T·P video tokens, every other entry −100, the order inside
   the top-k by ITM alone. A pair in both top-k sets is scored once.

Every feature lives in a ``numpy`` memmap under a keyed cache folder (:mod:`vtr.eval.cache`), so memory stays
bounded and an interrupted run resumes where it stopped. Encoding: :mod:`vtr.eval.encode`; ITM re-rank:
:mod:`vtr.eval.rerank`; ``vtr eval`` (benchmarks, cache keys, tables): :mod:`vtr.eval.command`.

Parity: ITM inputs (text hidden states, video tokens) are cached as float16 by default — half the disk and
memory traffic of float32. With ``--precision bf16`` (what the official evaluation ran) the model's bf16 outputs fit in
float16 without loss (float16 has more mantissa bits; LayerNorm outputs are far from its range limits). In float32
runs the rounding perturbs ITM logits by ~1e-3 relative, far below what changes a rank in practice; pass
``cache_dtype="float32"`` to :func:`evaluate_retrieval` for bit-faithful float32 parity. ITC embeddings are always
cached as float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vtr.device import resolve_device
from vtr.eval.cache import ChunkedArrays
from vtr.eval.encode import bf16_autocast, encode_texts, encode_videos
from vtr.eval.metrics import retrieval_metrics
from vtr.eval.rerank import ITM_FILL, itm_rerank, topk_pairs

logger = logging.getLogger(__name__)


@dataclass
class RetrievalResult:
    """Both result rows (``itm``, ``itc``: metric dicts of :func:`retrieval_metrics`) and what was computed."""

    rows: dict[str, dict[str, float]]
    counts: dict[str, int] = field(default_factory=dict)
    itc: torch.Tensor | None = None  # [Nv, Nt]
    itm_v2t: torch.Tensor | None = None
    itm_t2v: torch.Tensor | None = None


@torch.no_grad()
def evaluate_retrieval(model, texts: Sequence[str], videos: torch.utils.data.Dataset, txt2video: Sequence,
                       video2txt: Sequence, tokenize: Callable[[list[str]], dict], cache_dir: str | os.PathLike,
                       k_test: int = 128, itm: bool = True, batch_size: int = 8, text_batch_size: int = 64,
                       itm_batch_size: int = 32, workers: int | None = None, bf16: bool = False,
                       device: str | torch.device = "auto", max_length: int | None = None,
                       cache_dtype: str = "float16") -> RetrievalResult:
    """Run the zero-shot protocol (module doc) with features cached under ``cache_dir`` (a keyed folder).

    model: has ``encode_text``, ``encode_video``, ``similarity``, ``itm_score`` (docs/CONTRACTS.md).
    videos[i] -> (i, frames [T, 3, H, W]); texts[t]; txt2video[t]; video2txt[v] as in the split.
    """
    device = resolve_device(device)
    workers = default_workers() if workers is None else workers
    cache_dir = Path(cache_dir)
    model = model.to(device).eval() if isinstance(model, torch.nn.Module) else model
    counts: dict[str, int] = {"videos": len(videos), "texts": len(texts)}
    t0 = time.time()

    text_store = ChunkedArrays(cache_dir / "text", len(texts), {"embedding": np.float32, "hidden": cache_dtype})
    counts["texts_encoded"] = encode_texts(model, texts, tokenize, text_store, text_batch_size, device, bf16,
                                           max_length)

    # An ITC-only run reuses a complete ITM video cache but never writes tokens it will not need.
    video_store = ChunkedArrays(cache_dir / "video", len(videos), {"frame_embeds": np.float32, "tokens": cache_dtype})
    if not itm and not video_store.complete():
        video_store = ChunkedArrays(cache_dir / "video_itc", len(videos), {"frame_embeds": np.float32})
    counts["videos_encoded"] = encode_videos(model, videos, video_store, itm and video_store.dir.name == "video",
                                             batch_size, workers, device, bf16)
    counts["videos_cached"] = counts["videos"] - counts["videos_encoded"]

    frame_embeds = torch.from_numpy(np.array(video_store.read("frame_embeds"))).to(device)
    text_embeds = torch.from_numpy(np.array(text_store.read("embedding"))).to(device)
    itc = model.similarity(frame_embeds, text_embeds).float().cpu()  # [Nv, Nt]
    rows = {"itc": retrieval_metrics(itc.numpy(), txt2video, video2txt)}
    result = RetrievalResult(rows=rows, counts=counts, itc=itc)

    if itm:
        tokens = video_store.read("tokens")
        hidden, mask = text_store.read("hidden"), text_store.read("mask")

        paired = getattr(model, "itm_score_pairs", None)  # optional in the contract (docs/CONTRACTS.md)

        def score_pairs(video_idx: torch.Tensor, text_idx: torch.Tensor) -> torch.Tensor:
            # Pairs come sorted by video: a batch holds few videos, whose keys and values the fusion layers then
            # project once (``itm_score_pairs``): for the release model that projection of 1,569 tokens is most of
            # a pair's cost. Unique rows are sorted, so memmap reads are sequential.
            uniq_v, inv_v = torch.unique(video_idx, return_inverse=True)
            uniq_t, inv_t = torch.unique(text_idx, return_inverse=True)
            vid = torch.from_numpy(np.asarray(tokens[uniq_v.numpy()], dtype=np.float32)).to(device)
            th = torch.from_numpy(np.asarray(hidden[uniq_t.numpy()], dtype=np.float32)).to(device)
            tm = torch.from_numpy(np.asarray(mask[uniq_t.numpy()])).to(device)
            inv_v, inv_t = inv_v.to(device), inv_t.to(device)
            with bf16_autocast(device, bf16):
                if paired is not None:
                    return paired(th, tm, vid, inv_t, inv_v)
                return model.itm_score(th[inv_t], tm[inv_t], vid[inv_v])

        itm_key = f"itm_k{k_test}"
        v2t_idx, t2v_idx, pairs = topk_pairs(itc, k_test)
        pairs_digest = hashlib.sha256(pairs.numpy().tobytes()).hexdigest()[:12]
        itm_store = ChunkedArrays(cache_dir / f"{itm_key}_{pairs_digest}", len(pairs), {"score": np.float32})
        itm_v2t, itm_t2v, stats = itm_rerank(itc, score_pairs, k_test, itm_batch_size, itm_store)
        counts.update(stats)
        rows["itm"] = retrieval_metrics(itm_v2t.numpy(), txt2video, video2txt, scores_t2v=itm_t2v.numpy(),
                                        rank_scores_v2t=itc.numpy())
        result.itm_v2t, result.itm_t2v = itm_v2t, itm_t2v
        result.rows = {"itm": rows["itm"], "itc": rows["itc"]}
    counts["seconds"] = round(time.time() - t0, 1)
    logger.info("evaluated %d videos x %d texts (%d videos from cache) in %.1fs", counts["videos"], counts["texts"],
                counts["videos_cached"], counts["seconds"])
    return result


def default_workers() -> int:
    """Video-loading processes of an evaluation: up to 4, no more than the cores this process may use (a container's
    cpuset or taskset; ``os.cpu_count`` counted the host's, 4 loaders on a container's 2 cores)."""
    from vtr.device import usable_cores

    return min(4, usable_cores())


# The command's names were importable from here before it had its own module (vtr.eval.command); they still are,
# resolved on first use because the command imports this module.
_COMMAND_NAMES = ("eval_command", "run_benchmark", "load_eval_model", "LoadedModel", "format_results_table",
                  "format_comparison_table", "published_for", "PUBLISHED_ITM", "DATASETS", "DEFAULT_MODEL")


def __getattr__(name: str):
    if name in _COMMAND_NAMES:
        from vtr.eval import command

        return getattr(command, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ITM_FILL", "ChunkedArrays", "RetrievalResult", "default_workers", "evaluate_retrieval", "itm_rerank",
           "topk_pairs"]
