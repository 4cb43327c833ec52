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

Memory stays bounded: every feature lives in a ``numpy`` memmap under the cache folder, not in RAM (MSRVTT's
video tokens are 1000 × 1568 × 576). The cache is keyed by the model's weights, the dataset, the annotation file's
sha256, the frame count, the text length, the precision and the cache dtype; it is written in chunks, each chunk
committed by an atomically renamed marker after its rows are flushed, so an interrupted run resumes where it
stopped and never recomputes a committed video batch.

Layout of ``--out`` (one keyed cache folder per benchmark and setting; ``key.json`` says what it holds)::

    results.json, results.md                   (--all: <dataset>/results.*, summary.json, summary.md)
    cache/<dataset>-<key>/text/{embedding,hidden,mask}.npy + done/*.npy
    cache/<dataset>-<key>/video/{frame_embeds,tokens}.npy + done/*.npy     (video_itc/: --no-itm runs)
    cache/<dataset>-<key>/itm_k<k>_<pairs digest>/score.npy + done/*.npy  (ITM logits of the scored pairs)

Disk: the token file is Nv × T·P × D × 2 bytes (MSRVTT ≈ 1.8 GB, ActivityNet ≈ 8.9 GB at float16).

Parity: ITM inputs (text hidden states, video tokens) are cached as float16 by default — half the disk and
memory traffic of float32. With ``--precision bf16`` (what the official evaluation ran) the model's bf16 outputs fit in
float16 without loss (float16 has more mantissa bits; LayerNorm outputs are far from its range limits). In float32
runs the rounding perturbs ITM logits by ~1e-3 relative, far below what changes a rank in practice; pass
``cache_dtype="float32"`` to :func:`evaluate_retrieval` for bit-faithful float32 parity. ITC embeddings are always
cached as float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vtr.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from vtr.errors import VideoReadError, VtrError
from vtr.eval.metrics import retrieval_metrics
from vtr.models.checkpoint import file_checksum, state_dict_checksum

logger = logging.getLogger(__name__)

DATASETS = ("msrvtt", "didemo", "anet", "lsmdc", "msvd")

# Published zero-shot VideoMamba-M numbers (evaluation.md §5; ITM row; R@1, R@5, R@10), keyed by weight name.
PUBLISHED_ITM: dict[str, dict[str, dict[str, tuple[float, float, float]]]] = {
    "videomamba_m16_5M": {
        "msrvtt": {"t2v": (32.0, 53.1, 63.6), "v2t": (28.2, 47.6, 56.5)},
        "didemo": {"t2v": (36.6, 61.7, 70.3), "v2t": (38.3, 64.7, 73.3)},
        "anet": {"t2v": (35.9, 61.1, 72.3), "v2t": (32.8, 58.8, 69.9)},
        "lsmdc": {"t2v": (18.0, 36.1, 43.4), "v2t": (15.9, 31.0, 39.2)},
        "msvd": {"t2v": (38.0, 68.6, 79.0), "v2t": (57.5, 79.9, 85.4)},
    },
    "videomamba_m16_17M": {
        "msrvtt": {"t2v": (34.7, 58.9, 68.0), "v2t": (29.5, 49.9, 60.1)},
        "didemo": {"t2v": (42.0, 67.3, 76.8), "v2t": (42.3, 68.2, 76.9)},
        "anet": {"t2v": (40.1, 65.7, 76.1), "v2t": (34.2, 61.8, 73.2)},
        "lsmdc": {"t2v": (18.4, 35.3, 43.0), "v2t": (16.5, 32.1, 40.0)},
        "msvd": {"t2v": (40.3, 70.0, 79.7), "v2t": (61.8, 81.0, 87.0)},
    },
    "videomamba_m16_25M": {
        "msrvtt": {"t2v": (35.6, 58.1, 69.5), "v2t": (29.1, 51.6, 62.2)},
        "didemo": {"t2v": (43.1, 68.1, 77.7), "v2t": (43.8, 69.7, 77.8)},
        "anet": {"t2v": (41.0, 67.5, 77.8), "v2t": (37.1, 65.0, 75.1)},
        "lsmdc": {"t2v": (20.4, 37.1, 45.7), "v2t": (17.9, 34.6, 42.1)},
        "msvd": {"t2v": (42.0, 71.6, 81.2), "v2t": (62.7, 82.8, 87.6)},
    },
}

ITM_FILL = -100.0  # score of the pairs outside the top-k in the ITM matrices (as UMT)


# ---------------------------------------------------------------------------------------- disk cache
class ChunkedArrays:
    """Named arrays of ``n`` rows on disk (``<name>.npy`` memmaps), filled a chunk of rows at a time.

    A chunk counts as written only once its marker ``done/<first>_<count>.npy`` (the row indices) exists; the
    marker is renamed into place after the rows are flushed, so a crash leaves at worst uncommitted rows that the
    next run recomputes. Arrays are created on the first write with that chunk's trailing shape and the given
    dtype (``dtypes[name]``, default the chunk's own).
    """

    def __init__(self, directory: str | os.PathLike, n: int, dtypes: dict[str, np.dtype] | None = None):
        self.dir = Path(directory)
        self.n = int(n)
        self.dtypes = {k: np.dtype(v) for k, v in (dtypes or {}).items()}
        (self.dir / "done").mkdir(parents=True, exist_ok=True)
        self._open: dict[str, np.memmap] = {}

    def done_mask(self) -> np.ndarray:
        """bool [n]: rows committed by some marker."""
        mask = np.zeros(self.n, dtype=bool)
        for marker in (self.dir / "done").glob("*.npy"):
            mask[np.load(marker)] = True
        return mask

    def missing(self) -> np.ndarray:
        return np.flatnonzero(~self.done_mask())

    def complete(self) -> bool:
        return bool(self.done_mask().all()) if self.n else True

    def _array(self, name: str, row_shape: tuple, dtype: np.dtype) -> np.memmap:
        if name in self._open:
            return self._open[name]
        path = self.dir / f"{name}.npy"
        if path.exists():
            mm = np.load(path, mmap_mode="r+")
            if mm.shape[1:] != tuple(row_shape) or mm.dtype != dtype:
                raise VtrError(f"cache array {path} has shape {mm.shape}/{mm.dtype}, expected rows {row_shape}/"
                               f"{dtype}; delete the folder {self.dir} and rerun")
        else:  # create under a temporary name, then rename: a half-created file is never seen as the array
            with atomic_path(path) as tmp:
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(self.n, *row_shape))
                mm.flush()
                del mm
            mm = np.load(path, mmap_mode="r+")
        self._open[name] = mm
        return mm

    def write(self, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Store ``arrays[name][i]`` at row ``rows[i]`` for every name, then commit the chunk."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        for name, value in arrays.items():
            value = np.asarray(value)
            dtype = self.dtypes.get(name, value.dtype)
            mm = self._array(name, value.shape[1:], dtype)
            mm[rows] = value.astype(dtype, copy=False)
            mm.flush()
        buf = _npy_bytes(rows)
        write_bytes_atomic(self.dir / "done" / f"{int(rows[0]):09d}_{rows.size}.npy", buf, fsync=True)

    def read(self, name: str) -> np.memmap:
        """The array ``name`` (read-only memmap). Only meaningful for committed rows."""
        path = self.dir / f"{name}.npy"
        if not path.exists():
            raise KeyError(f"{name} not in cache {self.dir}")
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        self._open.clear()


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def cache_key(**parts) -> str:
    """Short stable digest of the JSON of ``parts`` (model checksum, dataset, annotation sha256, frames, ...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ encoding
def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


@torch.no_grad()
def encode_texts(model, texts: Sequence[str], tokenize: Callable[[list[str]], dict], store: ChunkedArrays,
                 batch_size: int = 64, device: torch.device = torch.device("cpu"), bf16: bool = False,
                 max_length: int | None = None) -> int:
    """Encode the texts not yet in ``store``: arrays ``embedding`` [Nt, E], ``hidden`` [Nt, L, H], ``mask`` [Nt, L].

    tokenize(list of str) -> dict(input_ids [n, L], attention_mask [n, L]); shorter batches are padded (mask 0)
    to ``max_length`` so every chunk has the same L. Returns the number of texts encoded now.
    """
    missing = store.missing()
    for start in _progress(range(0, len(missing), batch_size), desc="texts", unit="batch",
                           total=(len(missing) + batch_size - 1) // batch_size, disable=len(missing) == 0):
        rows = missing[start:start + batch_size]
        tok = tokenize([texts[i] for i in rows])
        ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        with _autocast(device, bf16):
            out = model.encode_text(ids, mask)
        hidden, mask = out.hidden, out.attention_mask
        if max_length is not None and hidden.shape[1] < max_length:
            pad = max_length - hidden.shape[1]
            hidden = torch.nn.functional.pad(hidden, (0, 0, 0, pad))
            mask = torch.nn.functional.pad(mask, (0, pad))
        store.write(rows, {"embedding": _to_numpy(out.embedding), "hidden": _to_numpy(hidden),
                           "mask": _to_numpy(mask).astype(np.int64)})
    return len(missing)


@dataclass
class _ReadFailure:
    source: str
    cause: str


class _CatchReadErrors(torch.utils.data.Dataset):
    """Turns a VideoReadError raised in a DataLoader worker into a value: the worker would otherwise re-raise it
    in the main process as a plain RuntimeError (it cannot rebuild an exception with two arguments)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except VideoReadError as e:
            return _ReadFailure(e.source, e.cause)


def _collate_or_error(items):
    for item in items:
        if isinstance(item, _ReadFailure):
            return item
    return torch.utils.data.default_collate(items)


@torch.no_grad()
def encode_videos(model, videos: torch.utils.data.Dataset, store: ChunkedArrays, with_tokens: bool = True,
                  batch_size: int = 8, workers: int = 0, device: torch.device = torch.device("cpu"),
                  bf16: bool = False) -> int:
    """Encode the videos not yet in ``store``: ``frame_embeds`` [Nv, T, E] (+ ``tokens`` [Nv, T·P, D]).

    videos[i] -> (i, frames [T, 3, H, W]), decoded in ``workers`` DataLoader processes. Each batch is committed
    to the cache as soon as it is encoded. Returns the number of videos encoded now.
    """
    missing = store.missing()
    if len(missing) == 0:
        return 0
    loader = torch.utils.data.DataLoader(
        _CatchReadErrors(torch.utils.data.Subset(videos, missing.tolist())), batch_size=batch_size, shuffle=False,
        num_workers=workers, pin_memory=device.type == "cuda", collate_fn=_collate_or_error,
    )
    for batch in _progress(loader, desc="videos", unit="batch"):
        if isinstance(batch, _ReadFailure):
            raise VideoReadError(batch.source, batch.cause)
        index, frames = batch
        frames = frames.to(device, non_blocking=True)
        with _autocast(device, bf16):
            out = model.encode_video(frames, return_tokens=with_tokens)
        arrays = {"frame_embeds": _to_numpy(out.frame_embeds)}
        if with_tokens:
            arrays["tokens"] = _to_numpy(out.tokens)
        store.write(np.asarray(index, dtype=np.int64), arrays)
    return len(missing)


# -------------------------------------------------------------------------------------- ITM re-rank
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
    pending_rows, pending_scores = [], []
    for start in _progress(range(0, len(todo), batch_size), desc="itm", unit="batch",
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


# ------------------------------------------------------------------------------------------ protocol
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
    device = resolve_device(device) if isinstance(device, str) else device
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

        def score_pairs(video_idx: torch.Tensor, text_idx: torch.Tensor) -> torch.Tensor:
            uniq, inverse = torch.unique(video_idx, return_inverse=True)  # sorted, so memmap reads are sequential
            vid = torch.from_numpy(np.asarray(tokens[uniq.numpy()], dtype=np.float32)).to(device)[inverse.to(device)]
            rows_t = text_idx.numpy()
            th = torch.from_numpy(np.asarray(hidden[rows_t], dtype=np.float32)).to(device)
            tm = torch.from_numpy(np.asarray(mask[rows_t])).to(device)
            with _autocast(device, bf16):
                return model.itm_score(th, tm, vid)

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
    return min(4, os.cpu_count() or 1)


# ------------------------------------------------------------------------------------- the command
DEFAULT_MODEL = "videomamba_m16_25M"
_RECALL_COLUMNS = ("r1", "r5", "r10")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    name: str
    weights_checksum: str  # sha256 of the weights file, or "random-init"
    digest: str  # identifies the weights for the cache key (the checksum, or a state-dict digest)
    weights_source: str | None


def load_eval_model(name: str, frames: int | None = None) -> LoadedModel:
    """A registered weight name (released file), a vtr model folder, or an architecture name (random init)."""
    from vtr.models.registry import load_named_model

    model = load_named_model(name, **({"num_frames": frames} if frames else {}))
    source = getattr(model, "weights_source", None)
    if source is not None and Path(source).exists():
        checksum = file_checksum(source)
        digest = checksum
    else:
        logger.warning("model %s has random-init weights: scores are meaningless except as a smoke test", name)
        checksum, digest = "random-init", "random-init:" + state_dict_checksum(model)
    return LoadedModel(model, getattr(model, "model_name", name), checksum, digest, source)


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def format_results_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table in the paper's layout: rows itm/itc; T2V R@1/5/10, V2T R@1/5/10, means, MdR, MnR.

    MdR/MnR of both rows come from the ITC matrix (ITM rows tie at −100 past the top k).
    """
    head = ("| row | T2V R@1 | R@5 | R@10 | V2T R@1 | R@5 | R@10 | T2V mean | V2T mean | mean "
            "| T2V MdR | T2V MnR | V2T MdR | V2T MnR |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in rows.items():
        cells = [m[f"t2v_{c}"] for c in _RECALL_COLUMNS] + [m[f"v2t_{c}"] for c in _RECALL_COLUMNS]
        cells += [m["t2v_r_mean"], m["v2t_r_mean"], m["r_mean"], m["t2v_mdr"], m["t2v_mnr"], m["v2t_mdr"],
                  m["v2t_mnr"]]
        lines.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def published_for(model_name: str, dataset: str) -> dict | None:
    return PUBLISHED_ITM.get(model_name, {}).get(dataset)


def format_comparison_table(model_name: str, results: dict[str, dict]) -> str:
    """One line per dataset: our ITM row next to the published VideoMamba-M numbers (R@1/R@5/R@10)."""

    def triple(values):
        return "/".join(_fmt(v) for v in values)

    head = "| dataset | T2V ours (itm) | T2V paper | V2T ours (itm) | V2T paper | ΔT2V R@1 | T2V ours (itc) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for ds, res in results.items():
        row = res["rows"].get("itm", res["rows"]["itc"])
        ours_t2v = [row[f"t2v_{c}"] for c in _RECALL_COLUMNS]
        ours_v2t = [row[f"v2t_{c}"] for c in _RECALL_COLUMNS]
        itc = [res["rows"]["itc"][f"t2v_{c}"] for c in _RECALL_COLUMNS]
        paper = published_for(model_name, ds)
        p_t2v = triple(paper["t2v"]) if paper else "—"
        p_v2t = triple(paper["v2t"]) if paper else "—"
        delta = f"{ours_t2v[0] - paper['t2v'][0]:+.1f}" if paper and "itm" in res["rows"] else "—"
        partial = " (partial)" if res.get("partial") else ""
        lines.append(f"| {ds}{partial} | {triple(ours_t2v)} | {p_t2v} | {triple(ours_v2t)} | {p_v2t} | {delta} "
                     f"| {triple(itc)} |")
    return "\n".join(lines)


def run_benchmark(loaded: LoadedModel, dataset: str, annotations=None, videos=None, root=None, out="runs/eval",
                  frames: int | None = None, k_test: int = 128, itm: bool = True, batch_size: int = 8,
                  workers: int | None = None, bf16: bool = False, device: str = "auto", allow_missing: bool = False,
                  cache_dtype: str = "float16") -> dict:
    """Evaluate one benchmark; writes ``out/results.json`` and ``out/results.md``; returns the results dict."""
    from vtr import __version__
    from vtr.data.retrieval import RetrievalVideos, check_videos, get_retrieval_spec, load_retrieval_split
    from vtr.models.registry import get_tokenizer

    spec = get_retrieval_spec(dataset)
    annotation_file = Path(annotations) if annotations else (spec.annotation_path(root) if root else None)
    if annotation_file is None:
        raise VtrError(f"{spec.name}: pass --annotations and --videos, or --root (layout in vtr/data/retrieval.py)")
    split = load_retrieval_split(spec.name, annotation_file, videos, root)
    split = check_videos(split, allow_missing=allow_missing)
    if not split.videos:
        raise VtrError(f"{spec.name}: no video left to evaluate")

    model, pre = loaded.model, loaded.model.preprocess
    num_frames = frames or pre.num_frames
    max_txt_l = spec.max_txt_l
    max_pos = getattr(getattr(getattr(model, "cfg", None), "text", None), "max_position_embeddings", None)
    if max_pos is not None and max_txt_l > max_pos:
        logger.warning("%s: max_txt_l %d exceeds the text encoder's %d positions; truncating to %d",
                       spec.name, max_txt_l, max_pos, max_pos)
        max_txt_l = max_pos
    tokenizer = get_tokenizer(model)
    resolved_device = resolve_device(device)
    workers = default_workers() if workers is None else workers
    annotation_sha = file_checksum(annotation_file)
    key = cache_key(model=loaded.digest, dataset=spec.name, annotation=annotation_sha, frames=num_frames,
                    img_size=pre.img_size, mean=list(pre.mean), std=list(pre.std), antialias=pre.antialias,
                    max_txt_l=max_txt_l, tokenizer=pre.tokenizer, bf16=bf16, cache_dtype=cache_dtype,
                    model_config=dataclasses.asdict(model.cfg),  # a folder's config.json (pooling, ...) counts too
                    videos=hashlib.sha256("\n".join(map(str, split.video_ids)).encode()).hexdigest())
    out = Path(out)
    cache_dir = out / "cache" / f"{spec.name}-{key}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": spec.name, "annotations": str(annotation_file), "videos": str(videos or spec.video_path(root)),
        "model": loaded.name, "frames": num_frames, "img_size": pre.img_size, "mean": list(pre.mean),
        "std": list(pre.std), "antialias": pre.antialias, "max_txt_l": max_txt_l, "tokenizer": pre.tokenizer, "sample": "middle",
        "trimmed30": spec.trimmed30, "text_mode": spec.text_mode, "k_test": k_test, "itm": itm,
        "batch_size": batch_size, "workers": workers, "bf16": bf16, "device": str(resolved_device),
        "cache_dtype": cache_dtype, "cache_dir": str(cache_dir),
    }
    write_text_atomic(cache_dir / "key.json", json.dumps({**config, "weights": loaded.digest,
                                                          "annotation_sha256": annotation_sha}, indent=2))
    logger.info("%s: %d videos, %d texts; cache %s", spec.name, len(split.videos), len(split.texts), cache_dir)

    dataset_frames = RetrievalVideos(split, num_frames, pre.eval_transform())
    result = evaluate_retrieval(
        model, split.texts, dataset_frames, split.txt2video, split.video2txt,
        lambda texts: pre.tokenize(tokenizer, texts, max_txt_l), cache_dir, k_test=k_test, itm=itm,
        batch_size=batch_size, workers=workers, bf16=bf16, device=resolved_device, max_length=max_txt_l,
        cache_dtype=cache_dtype,
    )
    results = {
        "dataset": spec.name,
        "title": spec.title,
        "model": loaded.name,
        "weights_checksum": loaded.weights_checksum,
        "weights_source": loaded.weights_source,
        "annotation_file": str(annotation_file),
        "annotation_sha256": annotation_sha,
        "counts": {"videos": len(split.videos), "texts": len(split.texts), **result.counts},
        "partial": bool(split.partial),
        "missing_videos": split.num_missing_videos,
        "missing_texts": split.num_missing_texts,
        "rows": {name: {k: round(v, 4) for k, v in row.items()} for name, row in result.rows.items()},
        "published_itm": published_for(loaded.name, spec.name),
        "config": config,
        "vtr_version": __version__,
    }
    table = format_results_table(result.rows)
    title = f"{spec.title} — {loaded.name} ({num_frames} frames, k={k_test}{', bf16' if bf16 else ''})"
    notes = [f"{len(split.videos)} videos, {len(split.texts)} texts"]
    if split.partial:
        notes.append(f"PARTIAL: {split.num_missing_videos} missing videos and their {split.num_missing_texts} "
                     "texts removed; not the benchmark's numbers")
    paper = results["published_itm"]
    if paper:
        notes.append("published ITM: T2V " + "/".join(map(str, paper["t2v"])) + ", V2T "
                     + "/".join(map(str, paper["v2t"])))
    notes.append("MdR/MnR from the ITC matrix in both rows")
    md = f"## {title}\n\n{table}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "results.md", md)
    print(md)
    return results


def eval_command(dataset: str = None, annotations: str = None, videos: str = None, model: str = None,
                 frames: int = None, k_test: int = 128, itm: bool = True, out: str = "runs/eval",
                 all: bool = False, root: str = None, batch_size: int = 8, workers: int = None,
                 precision: str = "auto", device: str = "auto", allow_missing: bool = False) -> int:
    """Zero-shot video-text retrieval on a benchmark: ITC, then ITM re-ranking of the top k (UMT/VideoMamba protocol).

    dataset: benchmark: msrvtt, didemo, anet, lsmdc or msvd
    annotations: annotation JSON file (default: from --root's layout)
    videos: folder the annotation's video paths are relative to (default: from --root's layout)
    model: weight name (e.g. videomamba_m16_25M, the default), vtr model folder, or architecture (random init)
    frames: frames per video (default: the model's preprocessing, 8 for VideoMamba-M)
    k_test: candidates re-ranked by ITM in each direction
    itm: re-rank the ITC top k with the ITM head (--no-itm: report only the ITC dual-encoder row)
    out: output folder: results.json, results.md and the resumable feature cache (cache/)
    all: run msrvtt, didemo, anet, lsmdc and msvd from --root and compare with the published numbers
    root: data root with one folder per benchmark (see vtr/data/retrieval.py)
    batch_size: videos per encoding batch
    workers: video-decoding DataLoader workers (default: min(4, CPU count))
    precision: fp32, bf16 (autocast, the official evaluation's) or auto (bf16 on CUDA or a native-bf16 CPU, else fp32)
    device: auto (CUDA when present), cpu, cuda or cuda:N
    allow_missing: evaluate on the videos present when some are missing (results marked partial)
    """
    run_all = all  # the flag's name shadows the builtin
    if run_all and not root:
        raise VtrError("--all needs --root DIR (one folder per benchmark)")
    if not run_all and not dataset:
        raise VtrError("pass --dataset NAME (msrvtt, didemo, anet, lsmdc, msvd), or --all --root DIR")
    from vtr.precision import resolve_precision

    bf16 = resolve_precision(precision, resolve_device(device)) == "bf16"
    loaded = load_eval_model(model or DEFAULT_MODEL, frames)
    common = dict(frames=frames, k_test=k_test, itm=itm, batch_size=batch_size, workers=workers, bf16=bf16,
                  device=device, allow_missing=allow_missing)
    if not run_all:
        run_benchmark(loaded, dataset, annotations, videos, root, out, **common)
        return 0

    from vtr.data.retrieval import get_retrieval_spec

    results: dict[str, dict] = {}
    for ds in DATASETS:
        spec = get_retrieval_spec(ds)
        folder = Path(root) / spec.name
        if not folder.is_dir():
            print(f"{ds}: skipped (no folder {folder})")
            continue
        if not spec.annotation_path(root).is_file():
            print(f"{ds}: skipped (no annotation file {' or '.join(spec.annotation_files)} in {folder})")
            continue
        results[ds] = run_benchmark(loaded, ds, None, None, root, Path(out) / ds, **common)
    if not results:
        raise VtrError(f"no benchmark folder found under {root} (expected some of: {', '.join(DATASETS)})")
    table = format_comparison_table(loaded.name, results)
    md = (f"## Zero-shot retrieval — {loaded.name} vs published VideoMamba-M (R@1/R@5/R@10)\n\n{table}\n")
    write_text_atomic(Path(out) / "summary.md", md)
    write_text_atomic(Path(out) / "summary.json", json.dumps(
        {"model": loaded.name, "weights_checksum": loaded.weights_checksum, "results": results}, indent=2))
    print(md)
    return 0
