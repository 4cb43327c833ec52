"""Building and updating an index folder: scan → plan (new / changed / renamed / deleted) → decode in worker
processes → embed in batches → commit file by file → sync ``vectors.faiss``.

Index folder layout (see also the README)::

    IDX/manifest.json      model, weights checksum, frames per window, window/stride seconds, resolution,
                           mean/std, embedding size, vtr version, FAISS factory string
    IDX/catalog.sqlite     files, windows (with their float32 vectors), meta      (see index.catalog)
    IDX/vectors.faiss      IDMap2 FAISS index, CPU format, ids = window ids       (see index.store)
    IDX/thumbnails/K/ID.jpg  the middle sampled frame of window ID (K = ID // 1000)

Crash safety: every chunk of a file (up to 16 windows) is committed in one sqlite transaction together with its
vectors, and the file is marked done with its last chunk; ``vectors.faiss`` and ``manifest.json`` are replaced
atomically (temporary file + rename) and ``vectors.faiss`` is re-synced from the catalog at the end of each build.
So an interrupted build (Ctrl-C, ``kill -9``, a power cut) resumes with the chunks it had committed, inside a long
file too, re-embeds only the rest (the summary counts the windows resumed) and never holds duplicates.

Damaged files: a file that decodes only in part (cut short, or damaged in the middle) is indexed as far as it
decodes and listed as partial, with the reason, by ``vtr index status`` and the app.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from index.catalog import Catalog, quick_hash
from index.decode import ChunkResult, DecodePool, DecodeSettings, FileFailure
from index.scan import VIDEO_EXTENSIONS, scan_folders
from index.store import VectorStore, choose_factory
from index.windows import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S
from vtr.atomic import write_bytes_atomic, write_json_atomic
from vtr.errors import VtrError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "videomamba_m16_25M"
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
VECTORS = "vectors.faiss"
THUMBNAILS = "thumbnails"
#: manifest keys that must match for new vectors to be comparable with the stored ones
SETTINGS_KEYS = ("model", "weights_checksum", "num_frames", "img_size", "antialias", "mean", "std", "window_s",
                 "stride_s", "window_policy", "embed_dim")
#: What manifests written before ``antialias`` was recorded mean: those builds always resized with antialiasing.
LEGACY_ANTIALIAS = True


# ----------------------------------------------------------------------------------------------------- model
def load_model(model, device: str | None = None):
    """A model object, or a registered name / vtr folder (released weights are loaded for weight names)."""
    import torch

    from vtr.models.registry import load_named_model

    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        m = load_named_model(name)
        m.index_source = name
    else:
        m = model
        if not hasattr(m, "index_source"):
            m.index_source = getattr(m, "model_name", type(m).__name__)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return m.to(device).eval()


def weights_checksum(model) -> str:
    """What the manifest pins: the sha256 of the model's tensors (see ``state_dict_checksum``)."""
    from vtr.models.checkpoint import state_dict_checksum

    return state_dict_checksum(model)


def manifest_for(model, window_s: float, stride_s: float, precision: str = "fp32",
                 window_policy: str = "stride") -> dict:
    from vtr import __version__

    pre = model.preprocess
    return {
        "format": "vtr-index",
        "model": str(getattr(model, "index_source", getattr(model, "model_name", ""))),
        "weights_checksum": weights_checksum(model),
        "num_frames": int(pre.num_frames),
        "img_size": int(pre.img_size),
        "antialias": bool(pre.antialias),
        "mean": [float(x) for x in pre.mean],
        "std": [float(x) for x in pre.std],
        "max_txt_l": int(pre.max_txt_l),
        "window_s": float(window_s),
        "stride_s": float(stride_s),
        "window_policy": window_policy,
        "embed_dim": int(model.cfg.embed_dim),
        # recorded, not checked: bf16 and fp32 vectors of one model agree to cosine 0.999, so an index built in one
        # is searched and updated in the other (see vtr.precision)
        "precision": precision,
        "vtr_version": __version__,
    }


def read_manifest(index_dir) -> dict | None:
    """The manifest, with ``antialias`` filled in for indexes built before it was recorded (see LEGACY_ANTIALIAS)."""
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    manifest.setdefault("antialias", LEGACY_ANTIALIAS)
    return manifest


def index_preprocess(model, manifest: dict):
    """The preprocessing the index's vectors were made with: the model's, resized as the manifest records (an old
    index of weights that do not antialias was built with antialiasing: queries by example follow the index)."""
    import dataclasses

    pre = model.preprocess
    if bool(manifest.get("antialias", LEGACY_ANTIALIAS)) != bool(pre.antialias):
        logger.warning("this index was built resizing frames with antialias=%s, but the model was trained with "
                       "antialias=%s: searches work, but re-embedding (`vtr index update --reembed`) feeds the "
                       "model as it was trained", manifest.get("antialias"), pre.antialias)
        pre = dataclasses.replace(pre, antialias=bool(manifest["antialias"]))
    return pre


def check_manifest(old: dict, new: dict) -> list[str]:
    old = {"window_policy": "stride", **old}  # indexes built before window policies existed
    return [f"{k}: index has {old.get(k)!r}, now {new.get(k)!r}" for k in SETTINGS_KEYS if old.get(k) != new.get(k)]


# -------------------------------------------------------------------------------------------- embedding
@dataclass
class EmbeddedFile:
    key: object
    path: str
    meta: dict
    windows: list  # [(start, end)]
    vectors: np.ndarray  # float32 [n, E]
    thumbnails: list  # JPEG bytes per window (may be empty)
    partial: str | None = None  # why some windows are missing (damaged file)


class WindowEmbedder:
    """Normalises uint8 windows and runs ``encode_video`` in batches: ``[n, T, 3, S, S] uint8 → [n, E] float32``.

    reuse_duplicates: a window that is a near-duplicate of the last encoded one takes its vector instead of
    running the encoder (:class:`index.policies.DuplicateFilter`; the ``shots`` window policy turns it on).
    """

    def __init__(self, model, batch_size: int = 16, precision: str | None = None, reuse_duplicates: bool = False):
        from index.policies import DuplicateFilter
        from vtr.precision import resolve_precision

        self.model = model
        self.batch_size = int(batch_size)
        self.duplicates = DuplicateFilter() if reuse_duplicates else None
        self.reused = 0  # windows that took another window's vector
        self._last_vector = None
        self.device = next(model.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.preprocess = model.preprocess

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self.duplicates is None:
            return self._encode(frames)
        encode, source = self.duplicates.split(frames)
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


def embed_chunks(model, files: list[tuple], settings: DecodeSettings, batch_size: int = 16, workers: int = 2,
                 timeout_s: float = 120.0, progress: bool = True, embedder=None, precision: str | None = None
                 ) -> Iterator[EmbeddedChunk | FileFailure]:
    """Decode (worker processes) and embed (this process, in batches) the windows of ``files``, chunk by chunk.

    files: ``[(key, path)]``, or ``[(key, path, chunks)]`` to embed only those chunks (resuming a file). Yields an
    EmbeddedChunk as soon as a chunk's windows are embedded, one FileFailure per bad file. Chunks of several files
    share batches.
    """
    from tqdm.auto import tqdm

    embedder = embedder or WindowEmbedder(model, batch_size, precision,
                                          reuse_duplicates=settings.window_policy == "shots")
    pool = DecodePool(settings, workers=workers, timeout_s=timeout_s)
    left: dict = {key: len(only[0]) for key, _, *only in files if only and only[0] is not None}  # chunks to go
    queue: list = []  # ChunkResults not yet embedded
    queued_windows = 0
    n_windows = 0
    failed = 0
    t0 = time.monotonic()
    bar = tqdm(total=len(files), unit="file", desc="indexing", disable=not progress, dynamic_ncols=True)

    def done(c: ChunkResult, vectors) -> EmbeddedChunk:
        left[c.key] = left.get(c.key, c.n_chunks) - 1
        if left[c.key] == 0:
            bar.update(1)
        rate = n_windows / max(time.monotonic() - t0, 1e-9)
        bar.set_postfix(windows=n_windows, win_s=f"{rate:.1f}", failed=failed, refresh=False)
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
            vectors = embedder(np.concatenate([c.frames for c in take]))
            n_windows += size
            offset = 0
            for c in take:
                yield done(c, vectors[offset:offset + len(c.frames)])
                offset += len(c.frames)

    try:
        for event in pool.run(files):
            if isinstance(event, FileFailure):
                queue = [c for c in queue if c.key != event.key]
                queued_windows = sum(len(c.frames) for c in queue)
                failed += 1
                bar.update(1)
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
        bar.close()


def embed_files(model, files: list[tuple[object, str]], settings: DecodeSettings, batch_size: int = 16,
                workers: int = 2, timeout_s: float = 120.0, progress: bool = True,
                embedder=None, precision: str | None = None) -> Iterator[EmbeddedFile | FileFailure]:
    """Like :func:`embed_chunks`, one EmbeddedFile per good file once all its chunks are embedded (for
    :mod:`index.embed`, which writes whole files). A file in which no window decodes is a FileFailure."""
    parts: dict = {}
    failed: set = set()
    for item in embed_chunks(model, files, settings, batch_size, workers, timeout_s, progress, embedder, precision):
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


# ---------------------------------------------------------------------------------------------- building
@dataclass
class BuildReport:
    index: str
    scanned: int = 0
    added: int = 0
    changed: int = 0
    renamed: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    embedded_windows: int = 0
    total_files: int = 0
    total_windows: int = 0
    factory: str = ""
    seconds: float = 0.0
    partial: int = 0  # files of this run indexed in part (damaged)
    resumed_windows: int = 0  # windows an interrupted build had committed, kept instead of embedded again
    failures: list = field(default_factory=list)  # [(path, reason)] of this run
    partials: list = field(default_factory=list)  # [(path, reason)] of this run: indexed in part

    def summary(self) -> str:
        resumed = f", {self.resumed_windows} resumed from an interrupted build" if self.resumed_windows else ""
        return (f"{self.index}: {self.total_files} files, {self.total_windows} windows ({self.factory}); this run: "
                f"{self.added} new, {self.changed} changed, {self.renamed} renamed, {self.deleted} deleted, "
                f"{self.unchanged} unchanged, {self.failed} failed, {self.partial} indexed in part; "
                f"{self.embedded_windows} windows embedded{resumed} in {self.seconds:.1f} s")


def thumbnail_path(index_dir, window_id: int) -> Path:
    return Path(index_dir) / THUMBNAILS / str(int(window_id) // 1000) / f"{int(window_id)}.jpg"


def _remove_thumbnails(index_dir, ids) -> None:
    for i in ids:
        try:
            thumbnail_path(index_dir, i).unlink()
        except FileNotFoundError:
            pass


def build_index(dirs: list[str] | None, index: str, model=DEFAULT_MODEL, window_s: float = DEFAULT_WINDOW_S,
                stride_s: float = DEFAULT_STRIDE_S, batch_size: int = 16, workers: int = 2, timeout_s: float = 120.0,
                factory: str | None = None, reembed: bool = False, retry_failed: bool = False,
                device: str | None = None, thumbnails: bool = True, progress: bool = True,
                extensions=VIDEO_EXTENSIONS, precision: str | None = None, window_policy: str | None = None,
                chunk_windows: int = DecodeSettings.chunk_windows) -> BuildReport:
    """Create or incrementally update the index folder ``index`` from the videos under ``dirs``.

    ``dirs=None`` re-scans the folders recorded in the catalog (``update``). New files are embedded, changed files
    re-embedded, deleted files removed, renamed/moved files (same content hash) kept without re-embedding, files
    left pending by an interrupted build embedded. Failed files are retried only when they changed or with
    ``retry_failed``. A model or sampling setting that differs from ``manifest.json`` raises VtrError unless
    ``reembed`` (then every file is embedded again). ``precision``: fp32, bf16 or auto/None (bf16 where it is
    native, see :mod:`vtr.precision`); recorded in the manifest. ``window_policy``: ``stride`` (default) or
    ``shots`` (see :mod:`index.policies`); None keeps an existing index's policy. ``chunk_windows``: windows
    committed together (a kill loses at most one chunk per file in flight).
    """
    t_start = time.monotonic()
    index_dir = Path(index)
    index_dir.mkdir(parents=True, exist_ok=True)
    old_manifest = read_manifest(index_dir)
    if isinstance(model, str) and model == DEFAULT_MODEL and old_manifest and dirs is None:
        model = old_manifest["model"]  # update: the index's own model unless one is named
    if old_manifest and dirs is None and window_s == DEFAULT_WINDOW_S and stride_s == DEFAULT_STRIDE_S:
        window_s, stride_s = old_manifest["window_s"], old_manifest["stride_s"]
    if window_policy is None:
        window_policy = (old_manifest or {}).get("window_policy", "stride")
    from index.policies import check_policy

    check_policy(window_policy)
    m = load_model(model, device)
    from vtr.precision import resolve_precision

    precision = resolve_precision(precision, next(m.parameters()).device)
    manifest = manifest_for(m, window_s, stride_s, precision, window_policy)
    catalog = Catalog(index_dir / CATALOG)
    report = BuildReport(index=str(index_dir))
    try:
        if old_manifest is not None:
            diffs = check_manifest(old_manifest, manifest)
            if diffs and not reembed:
                raise VtrError(
                    f"index {index_dir} was built with other settings ({'; '.join(diffs)}). Re-embed everything "
                    f"with --reembed, or build into another --index folder.")
            manifest["index_factory"] = old_manifest.get("index_factory")
            manifest["factory_override"] = old_manifest.get("factory_override")
            if diffs:
                logger.info("re-embedding every file: %s", "; ".join(diffs))
                with catalog.transaction():
                    catalog.conn.execute("DELETE FROM windows")
                    catalog.conn.execute("DELETE FROM chunks")
                    catalog.conn.execute("UPDATE files SET status='pending' WHERE status='ok'")
        if factory:
            manifest["factory_override"] = factory
        write_json_atomic(index_dir / MANIFEST, manifest)

        roots = catalog.get_meta("roots", [])
        if dirs is None:
            if not roots:
                raise VtrError(f"{index_dir} has no recorded folders; run `vtr index build DIR... --index {index}`")
            dirs = roots
        else:
            dirs = [os.path.abspath(os.path.expanduser(d)) for d in dirs]
            for d in dirs:
                if d not in roots:
                    roots.append(d)
        scanned = scan_folders(dirs, extensions)
        report.scanned = len(scanned)
        todo = _plan(catalog, scanned, roots_now=dirs, retry_failed=retry_failed, report=report,
                     index_dir=index_dir)
        with catalog.transaction():
            catalog.set_meta("roots", roots)

        settings = DecodeSettings(num_frames=manifest["num_frames"], img_size=manifest["img_size"],
                                  window_s=window_s, stride_s=stride_s, thumbnails=thumbnails,
                                  window_policy=window_policy, antialias=manifest["antialias"],
                                  chunk_windows=chunk_windows)
        for item in embed_chunks(m, todo, settings, batch_size=batch_size, workers=workers, timeout_s=timeout_s,
                                 progress=progress, precision=precision):
            if isinstance(item, FileFailure):
                with catalog.transaction():
                    dropped = [w.id for w in catalog.windows_of(item.key)]  # chunks committed before it failed
                    catalog.mark_failed(item.key, item.reason)
                _remove_thumbnails(index_dir, dropped)
                report.failed += 1
                report.failures.append((item.path, item.reason))
                logger.info("failed: %s: %s", item.path, item.reason)
                continue
            # One transaction per chunk: a kill loses at most the chunk being embedded.
            with catalog.transaction():
                ids = catalog.add_chunk(item.key, item.chunk, item.n_chunks, item.meta, item.windows, item.vectors,
                                        item.planned, item.partial)
                for wid, jpeg in zip(ids, item.thumbnails):
                    write_bytes_atomic(thumbnail_path(index_dir, wid), jpeg)
                finished = len(catalog.committed_chunks(item.key)) == item.n_chunks
                if finished:
                    windows, reason = catalog.finish_chunks(item.key)
            report.embedded_windows += len(ids)
            if finished and windows == 0:
                report.failed += 1
                report.failures.append((item.path, reason or "no window could be decoded"))
            elif finished and reason:
                report.partial += 1
                report.partials.append((item.path, reason))
                logger.info("indexed in part: %s: %s", item.path, reason)

        store = sync_store(catalog, index_dir, manifest)
        report.factory = store.factory
        counts = catalog.counts()
        report.total_files, report.total_windows = counts["ok"], counts["windows"]
    finally:
        catalog.close()
    report.seconds = time.monotonic() - t_start
    logger.info(report.summary())
    return report


def _plan(catalog: Catalog, scanned, roots_now, retry_failed, report: BuildReport, index_dir) -> list[tuple]:
    """Apply renames/deletions to the catalog and return the ``[(file_id, path)]`` to embed (``(file_id, path,
    chunks)`` for a file an interrupted build had begun: the chunks still to embed)."""
    rows = {r.path: r for r in catalog.files()}
    seen = {f.path: f for f in scanned}
    todo: list[tuple[int, str]] = []
    removed_windows: list[int] = []
    in_roots = lambda p: any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots_now)  # noqa: E731
    # Files that vanished from the scanned folders: renamed (matched by hash below) or deleted.
    missing = {p: r for p, r in rows.items() if p not in seen and in_roots(p)}
    missing_by_hash = {}
    for r in missing.values():
        if r.status == "ok" and r.hash:
            missing_by_hash.setdefault(r.hash, r)
    with catalog.transaction():
        for path, f in seen.items():
            row = rows.get(path)
            if f.error:
                fid = row.id if row else catalog.upsert_pending(path, f.size, f.mtime, None)
                if row is None or row.status != "failed":
                    catalog.mark_failed(fid, f.error)
                    report.failed += 1
                    report.failures.append((path, f.error))
                continue
            if row is not None and row.status != "pending" and (row.size, row.mtime) == (f.size, f.mtime):
                if row.status == "failed" and retry_failed:
                    todo.append((catalog.upsert_pending(path, f.size, f.mtime, row.hash), path))
                else:
                    report.unchanged += 1
                continue
            try:
                h = quick_hash(path)
            except OSError as e:
                fid = row.id if row else catalog.upsert_pending(path, f.size, f.mtime, None)
                catalog.mark_failed(fid, f"cannot read: {e.strerror or e}")
                report.failed += 1
                report.failures.append((path, f"cannot read: {e.strerror or e}"))
                continue
            if row is None:
                old = missing_by_hash.pop(h, None)
                if old is not None:  # renamed or moved: keep its windows and vectors
                    catalog.touch(old.id, path, f.size, f.mtime)
                    del missing[old.path]
                    report.renamed += 1
                    continue
                todo.append((catalog.upsert_pending(path, f.size, f.mtime, h), path))
                report.added += 1
            elif row.status == "ok" and row.hash == h:
                catalog.touch(row.id, path, f.size, f.mtime)  # touched, same content
                report.unchanged += 1
            elif row.status == "pending" and row.hash == h and (row.size, row.mtime) == (f.size, f.mtime) \
                    and catalog.committed_chunks(row.id):
                # Left by an interrupted build: keep its committed chunks, embed the others.
                done = catalog.committed_chunks(row.id)
                n_chunks = next(iter(done.values()))[0]
                report.resumed_windows += sum(c[1] for c in done.values())
                todo.append((row.id, path, [c for c in range(n_chunks) if c not in done]))
            else:
                if row.status != "pending":
                    report.changed += 1
                removed_windows += [w.id for w in catalog.windows_of(row.id)]
                todo.append((catalog.upsert_pending(path, f.size, f.mtime, h), path))
        for r in missing.values():
            removed_windows += catalog.delete_file(r.id)
            report.deleted += 1
    _remove_thumbnails(index_dir, removed_windows)
    return todo


def sync_store(catalog: Catalog, index_dir, manifest: dict, factory: str | None = None) -> VectorStore:
    """Make ``vectors.faiss`` hold exactly the catalog's window vectors (load + remove/add, or rebuild)."""
    index_dir = Path(index_dir)
    path = index_dir / VECTORS
    ids = catalog.window_ids()
    n = len(ids)
    target = factory or manifest.get("factory_override") or choose_factory(n)
    current = manifest.get("index_factory")
    trained_on = manifest.get("trained_on") or 0
    store = None
    if path.is_file() and current == target and not ("IVF" in target and n > 4 * max(trained_on, 1)):
        try:
            store = VectorStore.load(path, target)
        except Exception as e:  # noqa: BLE001 - a damaged file is rebuilt from the catalog
            logger.warning("cannot read %s (%s); rebuilding it from the catalog", path, e)
    changed = False
    if store is not None and store.dim == manifest["embed_dim"]:
        present = store.ids()
        extra = np.setdiff1d(present, ids)
        missing = np.setdiff1d(ids, present)
        try:
            store.remove(extra)
            for chunk_ids, vecs in catalog.iter_vectors(missing):
                store.add(chunk_ids, vecs)
            changed = bool(len(extra) or len(missing))
        except RuntimeError as e:  # e.g. HNSW cannot remove
            logger.info("rebuilding %s: %s", target, str(e).splitlines()[0][:120])
            store = None
    else:
        store = None
    if store is None:
        try:
            store = VectorStore.build(manifest["embed_dim"], lambda: catalog.iter_vectors(), n, target)
        except ValueError as e:  # too few vectors to train the requested index: exact search until there are
            logger.warning("%s; using exact search", e)
            target = "Flat"
            store = VectorStore.build(manifest["embed_dim"], lambda: catalog.iter_vectors(), n, target)
        manifest["trained_on"] = n
        changed = True
    if changed or not path.is_file():
        store.save(path)
    manifest["index_factory"] = store.factory
    write_json_atomic(index_dir / MANIFEST, manifest)
    return store


def index_status(index: str) -> dict:
    """Counts, settings and failed files of an index folder."""
    index_dir = Path(index)
    manifest = read_manifest(index_dir)
    if manifest is None or not (index_dir / CATALOG).is_file():
        raise VtrError(f"{index_dir} is not an index folder (no {MANIFEST} / {CATALOG})")
    catalog = Catalog(index_dir / CATALOG)
    try:
        counts = catalog.counts()
        failed = [(r.path, r.error) for r in catalog.files("failed")]
        partial = [(r.path, r.error) for r in catalog.files("ok") if r.error]
        pending = [r.path for r in catalog.files("pending")]
        roots = catalog.get_meta("roots", [])
        hours = catalog.conn.execute("SELECT COALESCE(SUM(duration), 0) FROM files WHERE status='ok'").fetchone()[0]
    finally:
        catalog.close()
    return {"index": str(index_dir), "manifest": manifest, "roots": roots, "files": counts["ok"],
            "windows": counts["windows"], "failed": failed, "partial": partial, "pending": pending,
            "hours": hours / 3600.0}
