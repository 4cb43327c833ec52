"""The embedding loop: decoded windows (worker processes, :mod:`index.decode`) → vectors (this process, in
batches), chunk by chunk, for :func:`index.build.build_index` (which commits each chunk to the catalog) and
:mod:`index.distributed` (which writes whole files into shards).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from index.decode import ChunkResult, DecodePool, DecodeSettings, FileFailure, auto_start
from vtr.device import usable_cores

logger = logging.getLogger(__name__)

#: The model a new index embeds with unless one is named.
DEFAULT_MODEL = "videomamba_m16_25M"


def load_model(model, device: str | None = None):
    """A model object, or a registered name / vtr folder (released weights are loaded for weight names)."""
    from vtr.device import resolve_device
    from vtr.models.checkpoint import CONFIG_FILE
    from vtr.models.registry import load_named_model

    device = resolve_device(device)  # before the weights load (or download): a device this machine lacks says so
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        if os.sep in name and not Path(name).exists():
            from vtr.errors import VtrError

            if os.path.isabs(name):  # it was "unknown model '/path'; known: videomamba_m16_17M, ..."
                raise VtrError(f"model folder {name} is not there (moved or deleted?); an index names its model "
                               "folder by its full path: pass --model with the folder's new path (the same weights)")
            raise VtrError(f"model folder {name!r} not found from {os.getcwd()}. An index built before 2026-12-04 "
                           "recorded a model folder as it was typed; run from the folder it was built in once "
                           "(any update then records the full path), or pass --model with the full path")
        m = load_named_model(name)
        # a model folder is recorded by its absolute path: the manifest must name it from any directory
        m.index_source = os.path.abspath(name) if (Path(name) / CONFIG_FILE).is_file() else name
    else:
        m = model
        if not hasattr(m, "index_source"):
            m.index_source = getattr(m, "model_name", type(m).__name__)
    return m.to(device).eval()


@dataclass
class EmbeddedFile:
    key: object
    path: str
    meta: dict
    windows: list  # [(start, end)]
    vectors: np.ndarray  # float32 [n, E]
    thumbnails: list  # JPEG bytes per window (may be empty)
    partial: str | None = None  # why some windows are missing (damaged file)


#: Windows per encoder batch when none is given. On a CPU a larger batch is no faster (one window is already 1569
#: tokens, GEMMs as large as the cores need) and holds more memory: indexing a 10-minute 720p file with the release-size
#: model took 2.9 GB at 16 against 1.7 GB at 4, in the same 67 s. A GPU needs the batch to fill it (bf16: 9.1 ms a
#: clip at batch 8 against 25.7 at batch 1).
DEFAULT_BATCH_SIZE = {"cpu": 4, "cuda": 16}


def default_batch_size(device) -> int:
    """:data:`DEFAULT_BATCH_SIZE` for ``device``'s type (:func:`vtr.device.device_type`; others: the CPU's)."""
    from vtr.device import device_type

    return DEFAULT_BATCH_SIZE.get(device_type(device), DEFAULT_BATCH_SIZE["cpu"])


class WindowEmbedder:
    """Normalises uint8 windows and runs ``encode_video`` in batches: ``[n, T, 3, S, S] uint8 → [n, E] float32``.

    reuse_duplicates: a window that is a near-duplicate of the last encoded one takes its vector instead of
    running the encoder (:class:`index.policies.DuplicateFilter`; the ``shots`` window policy turns it on).
    ``groups`` (a call's sizes of consecutive runs, e.g. chunks) keeps that comparison inside each run.
    """

    def __init__(self, model, batch_size: int | None = None, precision: str | None = None,
                 reuse_duplicates: bool = False):
        from index.policies import DuplicateFilter
        from vtr.precision import resolve_precision

        self.model = model
        self.device = next(model.parameters()).device
        self.batch_size = int(batch_size) if batch_size is not None else default_batch_size(self.device)
        self.duplicates = DuplicateFilter() if reuse_duplicates else None
        self.reused = 0  # windows that took another window's vector
        self._last_vector = None
        self.precision = resolve_precision(precision, self.device, model)
        self.preprocess = model.preprocess

    def __call__(self, frames: np.ndarray, groups: list[int] | None = None) -> np.ndarray:
        if self.duplicates is None:
            return self._encode(frames)
        encode, source = self.duplicates.split(frames, groups)
        vectors = self._encode(frames[encode])
        out = np.empty((len(frames), vectors.shape[1]), np.float32)
        out[encode] = vectors
        reuse = np.flatnonzero(source != np.arange(len(frames)))
        for k in reuse:  # source -1: the last window of the previous call
            out[k] = out[source[k]] if source[k] >= 0 else self._last_vector
        self.reused += len(reuse)
        if len(frames):
            self._last_vector = out[encode[-1]] if len(encode) else self._last_vector
        return out

    def _encode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from vtr.precision import autocast

        out = []
        with torch.inference_mode(), autocast(self.precision, self.device):
            for k in range(0, len(frames), self.batch_size):
                x = self.preprocess.normalize(
                    torch.from_numpy(np.ascontiguousarray(frames[k:k + self.batch_size])).to(self.device))
                out.append(self.model.encode_video(x).embedding.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.cfg.embed_dim), np.float32)


@dataclass
class EmbeddedChunk:
    """One decoded and embedded chunk of a file (see :class:`index.decode.ChunkResult`)."""

    key: object
    path: str
    meta: dict
    chunk: int
    n_chunks: int
    windows: list  # [(start, end)]
    vectors: np.ndarray  # float32 [n, E]
    thumbnails: list  # JPEG bytes per window (may be empty)
    planned: int  # windows the chunk was planned with
    partial: str | None  # why windows are missing (damaged file), else None


def make_pool(model, settings: DecodeSettings, workers: int | None = None, timeout_s: float = 120.0) -> DecodePool:
    """The decoding pool of a build with ``model``: ``workers`` processes, or (None) an automatic pool, which starts
    with :func:`index.decode.auto_start` workers for the model's device (every one it may have on a GPU) and grows
    while it is waited for."""
    start = auto_start(next(model.parameters()).device) if workers is None else None
    return DecodePool(settings, workers=workers, timeout_s=timeout_s, start=start)


def embed_chunks(model, files: list[tuple], settings: DecodeSettings, batch_size: int | None = None,
                 workers: int | None = None, timeout_s: float = 120.0, progress: bool = True, embedder=None,
                 precision: str | None = None, pool: DecodePool | None = None) -> Iterator[EmbeddedChunk | FileFailure]:
    """Decode (worker processes) and embed (this process, in batches) the windows of ``files``, chunk by chunk.

    files: ``[(key, path)]``, or ``[(key, path, chunks)]`` to embed only those chunks (resuming a file). Yields an
    EmbeddedChunk as soon as a chunk's windows are embedded, one FileFailure per bad file. Chunks of several files
    share batches. ``workers=None`` lets the decoding pool grow while the encoder waits for it (:class:`DecodePool`);
    ``pool`` decodes instead of one made from ``settings``, ``workers`` and ``timeout_s`` (a bench reads its
    ``peak_workers`` after).
    """
    from tqdm.auto import tqdm

    embedder = embedder or WindowEmbedder(model, batch_size, precision,
                                          reuse_duplicates=settings.window_policy == "shots")
    pool = pool or make_pool(model, settings, workers, timeout_s)
    left: dict = {key: len(only[0]) for key, _, *only in files if only and only[0] is not None}  # chunks to go
    queue: list = []  # ChunkResults not yet embedded
    queued_windows = 0
    n_windows = 0
    failed = gone = 0  # gone: not there when read (a share unplugged), which the build does not count as failed
    t0 = time.monotonic()
    # The bar moves chunk by chunk (an hour-long file is 30-60 chunks), so its total counts files in fractions of
    # their chunks; the postfix says how many files are whole.
    bar = tqdm(total=len(files), desc="indexing", unit="file", disable=not progress, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
    todo = dict(left)  # chunks to embed per file (known for a file once its first chunk arrives)
    partly: dict = {}  # the part done of each file begun and not finished
    finished: set = set()  # files embedded whole or failed (a set: a file counts once whatever arrives late)

    def advance(key, part: float) -> None:
        if key in finished:
            partly.pop(key, None)
        else:
            partly[key] = part
        position = len(finished) + sum(partly.values())
        bar.update(max(0.0, position - bar.n))  # through update(): the app's progress (gradio's track_tqdm) follows it
        # then set, not summed: sevenths summed over five files came to 5.000000000000001, and tqdm showed a negative
        # time left ("<-00:00")
        bar.n = position
        rate = n_windows / max(time.monotonic() - t0, 1e-9)
        bar.set_postfix_str(f"{len(finished)}/{len(files)} files, {n_windows} windows, {rate:.1f} windows/s, "
                            f"{failed} failed" + (f", {gone} gone" if gone else ""))

    def done(c: ChunkResult, vectors) -> EmbeddedChunk:
        left[c.key] = left.get(c.key, c.n_chunks) - 1
        total = todo.setdefault(c.key, c.n_chunks)
        if left[c.key] == 0:
            finished.add(c.key)
        advance(c.key, (total - left[c.key]) / total)
        return EmbeddedChunk(c.key, c.path, c.meta, c.chunk, c.n_chunks, c.windows, vectors, c.thumbnails,
                             c.planned, c.partial)

    def flush(final: bool):
        nonlocal queue, queued_windows, n_windows
        while queue and (final or queued_windows >= embedder.batch_size):
            take, size = [], 0
            while queue and size < embedder.batch_size:
                take.append(queue.pop(0))
                size += len(take[-1].frames)
            queued_windows -= size
            # each chunk is its own group: what a window reuses never depends on the order chunks arrive in
            vectors = embedder(np.concatenate([c.frames for c in take]), groups=[len(c.frames) for c in take])
            n_windows += size
            offset = 0
            for c in take:
                yield done(c, vectors[offset:offset + len(c.frames)])
                offset += len(c.frames)

    import torch

    # The encoder (torch, and numba, which follows torch's count) takes every core this process may use; the decode
    # workers run one codec thread each (DecodeSettings.decoder_threads) and fill the gaps.
    threads_before = torch.get_num_threads()
    torch.set_num_threads(usable_cores())
    # a line logged while the bar runs (the pool starting decode workers) goes above the bar, not after its text
    redirect = contextlib.ExitStack()
    if progress:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect.enter_context(logging_redirect_tqdm(tqdm_class=type(bar)))
    try:
        for event in pool.run(files):
            if isinstance(event, FileFailure):
                queue = [c for c in queue if c.key != event.key]
                queued_windows = sum(len(c.frames) for c in queue)
                if os.path.exists(event.path):
                    failed += 1
                else:
                    gone += 1
                finished.add(event.key)
                advance(event.key, 1.0)
                yield event
                continue
            if len(event.frames) == 0:  # a chunk of a damaged file in which nothing decodes
                yield done(event, np.zeros((0, model.cfg.embed_dim), np.float32))
                continue
            queue.append(event)
            queued_windows += len(event.frames)
            yield from flush(final=False)
        yield from flush(final=True)
    finally:
        torch.set_num_threads(threads_before)
        redirect.close()
        bar.close()


def embed_files(model, files: list[tuple[object, str]], settings: DecodeSettings, batch_size: int | None = None,
                workers: int | None = None, timeout_s: float = 120.0, progress: bool = True,
                embedder=None, precision: str | None = None,
                pool: DecodePool | None = None) -> Iterator[EmbeddedFile | FileFailure]:
    """Like :func:`embed_chunks`, one EmbeddedFile per good file once all its chunks are embedded (for
    :mod:`index.embed`, which writes whole files). A file in which no window decodes is a FileFailure."""
    parts: dict = {}
    failed: set = set()
    for item in embed_chunks(model, files, settings, batch_size, workers, timeout_s, progress, embedder, precision,
                             pool):
        if isinstance(item, FileFailure):
            parts.pop(item.key, None)
            failed.add(item.key)
            yield item
            continue
        if item.key in failed:
            continue
        got = parts.setdefault(item.key, {})
        got[item.chunk] = item
        if len(got) < item.n_chunks:
            continue
        chunks = [got[c] for c in range(item.n_chunks)]
        del parts[item.key]
        reasons = [c.partial for c in chunks if c.partial]
        if not any(c.windows for c in chunks):
            yield FileFailure(item.key, item.path, reasons[0] if reasons else "no window could be decoded")
            continue
        yield EmbeddedFile(item.key, item.path, chunks[0].meta, [w for c in chunks for w in c.windows],
                           np.concatenate([c.vectors for c in chunks]), [t for c in chunks for t in c.thumbnails],
                           partial=reasons[0] if reasons else None)


if __name__ == "__main__":  # `torchrun ... -m index.embed` from before the sharder had its own module
    import sys

    from index.distributed import main

    sys.exit(main())
