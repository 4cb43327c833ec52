"""Building and updating an index folder: scan → plan (new / changed / renamed / deleted) → decode in worker
processes → embed in batches → commit file by file → sync ``vectors.faiss``.

The index folder's files and manifest are :mod:`index.layout`'s; the embedding loop is :mod:`index.embed`'s.

Crash safety: every chunk of a file (up to 16 windows) is committed in one sqlite transaction together with its
vectors, and the file is marked done with its last chunk; ``vectors.faiss`` and ``manifest.json`` are replaced
atomically (temporary file + rename) and ``vectors.faiss`` is re-synced from the catalog at the end of each build.
So an interrupted build (Ctrl-C, ``kill -9``, a power cut) resumes with the chunks it had committed, inside a long
file too, re-embeds only the rest (the summary counts the windows resumed) and never holds duplicates.

Damaged files: a file that decodes only in part (cut short, or damaged in the middle) is indexed as far as it
decodes and listed as partial, with the reason, by ``vtr index status`` and the app.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path


from index.catalog import Catalog, quick_hash, writable
from index.decode import VIDEO_BACKEND, DecodeSettings, FileFailure
from index.embed import DEFAULT_MODEL, embed_chunks, load_model
from index.layout import (CATALOG, MANIFEST, VECTORS, check_manifest, is_index, manifest_for, read_manifest,
                          remember_weights_verified, remove_thumbnails, thumbnail_path, weights_identity,
                          write_manifest, write_thumbnail)
from index.scan import PICTURES_VERSION, SCANNED_EXTENSIONS, check_roots, scan_folders
from index.store import VectorStore, choose_factory
from index.windows import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S
from vtr.errors import VtrError, disk_full
from vtr.extras import require

logger = logging.getLogger(__name__)


class IndexNotReady(VtrError):
    """The index cannot be updated now but may be later: another build holds it, or none of its folders is there
    (a drive not mounted). ``vtr index update --watch`` waits for the next round instead of stopping."""


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
    retimed: int = 0  # unchanged files embedded again on their frame times: variable rate, dropped frames, jumps
    redecoded: int = 0  # unchanged files an older index's decoder may have misread, embedded again (older indexes)
    reread: int = 0  # unchanged HDR or interlaced files embedded again, tone-mapped, deinterlaced (older indexes)
    trimmed: int = 0  # unchanged files with frames never shown (trimmed, cut in), embedded again (older indexes)
    transparent: int = 0  # unchanged files with transparency, embedded again over white (older indexes)
    retried: int = 0  # unchanged files that failed before, tried again (--retry-failed, or a vtr that reads more)
    copies: int = 0  # new files whose content was already indexed (a backup, a copy): windows reused, not embedded
    waiting: list = field(default_factory=list)  # new or changed files left for a later build: still being written
    vanished: list = field(default_factory=list)  # files gone while this run read them (a share or drive dropped):
    # not recorded as failed, so the next build indexes them once they are back
    failures: list = field(default_factory=list)  # [(path, reason)] of this run
    partials: list = field(default_factory=list)  # [(path, reason)] of this run: indexed in part
    missing_roots: list = field(default_factory=list)  # recorded folders not there on an update: files kept
    unreadable: list = field(default_factory=list)  # [(folder, reason)] that could not be listed: files kept

    @property
    def changed_index(self) -> bool:
        """Whether this run changed what the index holds (files added, changed, renamed, deleted, failed, windows
        embedded)."""
        return bool(self.added or self.changed or self.renamed or self.deleted or self.failures or self.partial
                    or self.embedded_windows or self.vanished)

    def detail_lines(self) -> list[str]:
        """A line under the summary for each file indexed in part, failed or gone while being read."""
        return ([f"  indexed in part: {path}: {reason}" for path, reason in self.partials]
                + [f"  failed: {path}: {reason}" for path, reason in self.failures]
                + [f"  gone while being read: {path}" for path in self.vanished])

    def summary(self) -> str:
        resumed = f", {self.resumed_windows} resumed from an interrupted build" if self.resumed_windows else ""
        retimed = f", {self.retimed} re-timed (frame times read anew)" if self.retimed else ""
        retimed += f", {self.redecoded} decoded again (TS/MPEG/AVI)" if self.redecoded else ""
        retimed += f", {self.reread} HDR or interlaced read anew" if self.reread else ""
        retimed += f", {self.trimmed} trimmed or cut in read anew" if self.trimmed else ""
        retimed += f", {self.transparent} with transparency read anew" if self.transparent else ""
        retimed += f", {self.retried} that failed before tried again" if self.retried else ""
        copies = ("" if not self.copies else " (1 copy of an indexed video, not embedded again)" if self.copies == 1
                  else f" ({self.copies} copies of indexed videos, not embedded again)")
        return (f"{self.index}: {self.total_files} files, {self.total_windows} windows ({self.factory}); this run: "
                f"{self.added} new{copies}, {self.changed} changed{retimed}, {self.renamed} renamed, "
                f"{self.deleted} deleted, "
                f"{self.unchanged} unchanged, {self.failed} failed, {self.partial} indexed in part; "
                f"{self.embedded_windows} windows embedded{resumed} in {self.seconds:.1f} s"
                + (f"; {len(self.waiting)} still being written, left for later" if self.waiting else "")
                + (f"; {len(self.vanished)} gone while being read (a drive or share unplugged?), indexed by an update "
                   "once they are back" if self.vanished else "")
                + (f"; not found, so not re-scanned (their files kept; --forget-missing drops them): "
                   f"{', '.join(self.missing_roots)}"
                   if self.missing_roots else "")
                + (f"; could not be read, so their videos were kept as they were: "
                   f"{', '.join(f'{d} ({why})' for d, why in self.unreadable)}" if self.unreadable else ""))


def build_index(dirs: list[str] | None, index: str, model=None, window_s: float | None = None,
                stride_s: float | None = None, batch_size: int | None = None, workers: int | None = None,
                timeout_s: float = 120.0, factory: str | None = None, reembed: bool = False, retry_failed: bool = False,
                device: str | None = None, thumbnails: bool = True, progress: bool = True,
                extensions=SCANNED_EXTENSIONS, precision: str | None = None, window_policy: str | None = None,
                chunk_windows: int = DecodeSettings.chunk_windows, forget_missing: bool = False,
                settled=None) -> BuildReport:
    """Create or incrementally update the index folder ``index`` from the videos under ``dirs``.

    ``dirs=None`` re-scans the folders recorded in the catalog (``update``). ``model``, ``window_s`` and ``stride_s``
    left None are the index's own (its manifest's), for a new index :data:`DEFAULT_MODEL` and 8 s windows every 4 s:
    adding a folder to an index embeds it as the index was embedded. New files are embedded, changed files
    re-embedded, deleted files removed, renamed/moved files (same content hash) kept without re-embedding, files
    left pending by an interrupted build embedded. Failed files are retried only when they changed or with
    ``retry_failed``. A model or sampling setting that differs from ``manifest.json`` raises VtrError unless
    ``reembed`` (then every file is embedded again). ``precision``: fp32, bf16 or auto/None (bf16 where it is
    native, see :mod:`vtr.precision`); recorded in the manifest. ``window_policy``: ``shots`` (the default of a
    new index) or ``stride`` (see :mod:`index.policies`); None keeps an existing index's policy. ``chunk_windows``:
    windows committed together (a kill loses at most one chunk per file in flight). A recorded folder that is not
    there keeps its files (a drive not mounted), unless ``forget_missing``: then those not found elsewhere by
    content are dropped, and the folder with them. ``settled``: a predicate on each new or changed
    :class:`index.scan.ScannedFile`; those it rejects (still being written) are left as they are, for a later build,
    and listed in ``BuildReport.waiting`` (see :class:`index.watch.Settling`).
    """
    t_start = time.monotonic()
    index_dir = Path(index)
    if dirs is None:  # an update of a mistyped folder: not a new index of nothing, with the default model
        check_is_index(index_dir)
    require("faiss")  # before the folder is made, the model loads and videos are embedded for a store not written
    if dirs is not None:
        check_roots(dirs)  # a mistyped folder: before, a new index of nothing was left, its model loaded for nothing
    # the flags given, before the folder is made (`--workers -1` left an empty index folder with its lock file)
    _check_numbers(window_s=window_s, stride_s=stride_s, batch_size=batch_size, timeout_s=timeout_s, workers=workers)
    from index.policies import DEFAULT_POLICY, check_policy

    if window_policy is not None:
        check_policy(window_policy)
    created = not index_dir.exists()
    make_index_folder(index_dir)
    with _removed_if_failed_empty(index_dir, created), build_lock(index_dir), disk_full_said(index_dir):
        old_manifest = read_manifest(index_dir)
        # An index's own settings (an update, or a folder added as the index was built): the plan comes first, and
        # a run with nothing to embed (a cron update) loads no model. Otherwise the model and its settings are
        # checked before the catalog is touched; so is a model folder an older index recorded as it was typed,
        # which an update records by its full path.
        recorded = str((old_manifest or {}).get("model", ""))
        own_settings = (old_manifest is not None and is_index(index_dir) and not reembed and not factory
                        and model in (None, recorded) and (os.sep not in recorded or os.path.isabs(recorded))
                        and window_s is None and stride_s is None
                        and window_policy in (None, old_manifest.get("window_policy", "stride")))
        model, window_s, stride_s = _settings(old_manifest, model, window_s, stride_s)
        if window_policy is None:  # a manifest without a policy was built before policies, with stride windows
            window_policy = old_manifest.get("window_policy", "stride") if old_manifest else DEFAULT_POLICY
        from vtr.precision import resolve_precision

        check_policy(window_policy)
        _check_numbers(window_s=window_s, stride_s=stride_s, batch_size=batch_size, timeout_s=timeout_s,
                       workers=workers)
        report = BuildReport(index=str(index_dir))
        todo = None
        if own_settings:
            catalog = Catalog(index_dir / CATALOG)
            try:
                todo = _plan_run(catalog, index_dir, dirs, extensions, retry_failed, report, forget_missing,
                                 progress, settled)
                if not todo:
                    return _finish(catalog, index_dir, old_manifest, report, t_start, progress)
            finally:
                catalog.close()
        m = load_model(model, device)
        precision = resolve_precision(precision, next(m.parameters()).device, m)
        manifest = manifest_for(m, window_s, stride_s, precision, window_policy)
        if factory:  # an unknown FAISS factory is said now, not after every window is embedded
            try:
                VectorStore.empty(manifest["embed_dim"], factory)
            except RuntimeError as e:
                why = str(e).strip().splitlines()[-1].rsplit(": ", 1)[-1]
                raise VtrError(f"--factory {factory!r}: FAISS cannot build it ({why}); e.g. Flat, IVF4096,Flat, "
                               "HNSW32,Flat") from None
        catalog = Catalog(index_dir / CATALOG)
        try:
            _adopt_manifest(catalog, index_dir, old_manifest, manifest, reembed, factory)
            if isinstance(model, (str, os.PathLike)):  # the model's files give the tensors just hashed: a search
                # need not hash them again (a model object's tensors may differ from its files)
                remember_weights_verified(index_dir, weights_identity(m), manifest["weights_checksum"])
            if todo is None:
                todo = _plan_run(catalog, index_dir, dirs, extensions, retry_failed, report, forget_missing,
                                 progress, settled)
            settings = DecodeSettings(num_frames=manifest["num_frames"], img_size=manifest["img_size"],
                                      window_s=window_s, stride_s=stride_s, thumbnails=thumbnails,
                                      window_policy=window_policy, antialias=manifest["antialias"],
                                      chunk_windows=chunk_windows)
            embedded = embed_chunks(m, todo, settings, batch_size=batch_size, workers=workers, timeout_s=timeout_s,
                                    progress=progress, precision=precision)
            with closing(embedded):  # a commit that fails (a full disk) stops the decoding and ends the bar now
                _commit(catalog, index_dir, embedded, report)
            return _finish(catalog, index_dir, manifest, report, t_start, progress)
        finally:
            catalog.close()


def check_is_index(index_dir) -> None:
    """Raise VtrError unless ``index_dir`` holds an index (what an update needs)."""
    if not is_index(index_dir):
        raise VtrError(f"{index_dir} is not an index folder; build one with `vtr index build DIR... --index "
                       f"{index_dir}`")


def _plan_run(catalog: Catalog, index_dir: Path, dirs, extensions, retry_failed: bool, report: BuildReport,
              forget_missing: bool, progress: bool, settled=None) -> list[tuple]:
    """The files a build embeds: scanned and planned (:func:`_scan_and_plan`), and those an older index embeds
    again."""
    todo = _scan_and_plan(catalog, index_dir, dirs, extensions, retry_failed, report, forget_missing, settled)
    todo += _retime_variable_rate(catalog, index_dir, todo, report, progress)
    todo += _redecode_misread(catalog, index_dir, todo, report)
    todo += _reread_hdr_and_interlaced(catalog, index_dir, todo, report, progress)
    todo += _reread_hidden_frames(catalog, index_dir, todo, report, progress)
    todo += _reread_transparent(catalog, index_dir, todo, report, progress)
    todo += _retime_dropped_frames(catalog, index_dir, todo, report, progress)
    todo += _retime_jumps(catalog, index_dir, todo, report, progress)
    todo += _reread_past_holes(catalog, index_dir, todo, report, progress)
    todo += _retry_in_part(catalog, index_dir, todo, report)
    return todo


def _finish(catalog: Catalog, index_dir: Path, manifest: dict, report: BuildReport, t_start: float,
            progress: bool = False) -> BuildReport:
    """Read the recording dates not read yet, sync the vector store with the catalog and complete the report."""
    read_recording_dates(catalog, progress)
    store = sync_store(catalog, index_dir, manifest)
    report.factory = store.factory
    counts = catalog.counts()
    report.total_files, report.total_windows = counts["ok"], counts["windows"]
    report.seconds = time.monotonic() - t_start
    logger.debug(report.summary())  # the CLI prints it, the app shows it: once
    return report


def read_recording_dates(catalog: Catalog, progress: bool = False) -> int:
    """Read when each indexed video without a date yet was recorded (:func:`index.dates.recorded_at`: its tags, its
    name, its file's time), for the date filters of a search: the new files of a build, and once every file of an
    index built before dates were read (its container is opened, nothing decoded). A file that cannot be read now (a
    drive not mounted) is tried again by the next build. Returns how many were read."""
    from tqdm import tqdm

    from index.dates import recorded_at

    todo = catalog.without_recorded()
    # a bar only for a long read (an old index's first update): a build's own bar ends on its total, which is what
    # the app's progress (every tqdm update) shows
    bar = tqdm(total=len(todo), desc="reading recording dates", unit="video", dynamic_ncols=True) \
        if progress and len(todo) >= 100 else None
    done = 0
    for k in range(0, len(todo), 200):
        with catalog.transaction():
            for f in todo[k:k + 200]:
                found = recorded_at(f.path)
                if found is not None:
                    catalog.set_recorded(f.id, *found)
                    done += 1
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return done


@dataclass
class RemoveReport:
    index: str
    files: int = 0  # videos taken out of the index (indexed, failed or pending)
    windows: int = 0
    roots: list = field(default_factory=list)  # recorded folders no longer scanned
    excluded: list = field(default_factory=list)  # paths inside recorded folders that scans now leave out

    def summary(self) -> str:
        videos = "1 video" if self.files == 1 else f"{self.files} videos"
        lines = [f"{self.index}: took out {videos} ({self.windows} windows); the files themselves are untouched"]
        if self.roots:
            lines.append(f"no longer scanned: {', '.join(self.roots)}")
        for path in self.excluded:
            lines.append(f"left out of updates from now on: {path} (`vtr index build {path} --index {self.index}` "
                         "adds it back)")
        return "\n".join(lines)


def remove_from_index(paths: list[str], index: str) -> RemoveReport:
    """Take videos out of an index: those at or under each of ``paths`` (a recorded folder, a folder inside one,
    or a video) lose their windows, vectors and thumbnails; the files on disk are not touched. A recorded folder
    is no longer scanned; a path inside one is left out of later scans (the catalog's ``excluded``) until a build
    names it again. Every path is checked before anything changes; no model is loaded."""
    index_dir = Path(index)
    manifest = read_manifest(index_dir)
    if manifest is None or not is_index(index_dir):
        raise VtrError(f"{index_dir} is not an index folder (no {MANIFEST} / {CATALOG})")
    if not paths:
        raise VtrError("name the folders or videos to take out of the index")
    require("faiss")
    with build_lock(index_dir), disk_full_said(index_dir):
        catalog = Catalog(index_dir / CATALOG)
        try:
            roots = catalog.get_meta("roots", [])
            excluded = catalog.get_meta("excluded", [])
            rows = catalog.files()
            targets = []
            for path in dict.fromkeys(os.path.abspath(os.path.expanduser(p)) for p in paths):
                files = [r for r in rows if _under(r.path, path)]
                recorded = [d for d in roots if _under(d, path)]
                if not files and not recorded and path in excluded:
                    raise VtrError(f"{path} is already left out of {index_dir} (`vtr index build {path} --index "
                                   f"{index_dir}` adds it back). Nothing was changed.")
                if not files and not recorded:
                    raise VtrError(f"{path}: no video of {index_dir} is there or under it; its folders: "
                                   f"{', '.join(roots) or 'none'}. Nothing was changed.")
                targets.append((path, files, recorded))
            report = RemoveReport(index=str(index_dir))
            removed: list[int] = []
            with catalog.transaction():
                for path, files, recorded in targets:
                    for r in files:
                        if catalog.file_by_id(r.id) is not None:  # not already taken out under another path
                            removed += catalog.delete_file(r.id)
                            report.files += 1
                    for d in recorded:
                        if d in roots:
                            roots.remove(d)
                            report.roots.append(d)
                    if any(_under(path, d) for d in roots) and path not in excluded:
                        excluded.append(path)
                        report.excluded.append(path)
                excluded = [e for e in excluded if any(_under(e, d) for d in roots)]  # of a folder still scanned
                report.excluded = [e for e in report.excluded if e in excluded]
                catalog.set_meta("roots", roots)
                catalog.set_meta("excluded", excluded)
                catalog.keep_pictures([], forgotten=[p for p in catalog.pictures()  # no longer scanned there
                                                     if any(_under(p, path) for path, _, _ in targets)])
            report.windows = len(removed)
            remove_thumbnails(index_dir, removed)
            sync_store(catalog, index_dir, manifest)
        finally:
            catalog.close()
    return report


LOCK = "build.lock"


def make_index_folder(index_dir: Path) -> None:
    """Create the folder of a new index (and its parents); VtrError saying why it cannot be."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtrError(f"cannot create the index folder {index_dir}: {e.strerror or e}") from None


@contextmanager
def _removed_if_failed_empty(index_dir: Path, created: bool):
    """A new index folder that its build left holding nothing but its lock file (an unknown model, a factory FAISS
    cannot parse, Ctrl-C while the model loads) is removed when the build fails; before, an empty folder was left
    behind. A folder that held anything before, or that the build wrote to, is kept, and so is one whose lock another
    build holds (two builds of one new index started at once: the one refused must not remove the other's folder)."""
    try:
        yield
    except IndexNotReady:
        raise
    except BaseException:
        if created:
            try:
                if {p.name for p in index_dir.iterdir()} <= {LOCK}:
                    (index_dir / LOCK).unlink(missing_ok=True)
                    index_dir.rmdir()
            except OSError:
                pass
        raise


def check_creatable(index_dir: Path) -> None:
    """VtrError unless the folder of a new index could be created at ``index_dir`` (nothing is left behind: a
    folder is made in its nearest existing parent and removed). For the app, which makes its index when a folder is
    first added: an index no folder could ever be added to is said before the model loads."""
    import tempfile

    index_dir = Path(os.path.abspath(os.path.expanduser(str(index_dir))))
    if index_dir.exists():
        return
    parent = index_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file")
        os.rmdir(tempfile.mkdtemp(prefix=".vtr-probe-", dir=parent))
    except OSError as e:
        raise VtrError(f"cannot create the index folder {index_dir}: {e.strerror or e}") from None


def read_only(index_dir: Path) -> str | None:
    """Why this process may not change the index in ``index_dir`` (None: it may). An index on a read-only share or
    mount, or that another user built, can be searched (its catalog is opened read-only), not built or changed."""
    if writable(Path(index_dir) / CATALOG):
        return None
    try:
        read_only_fs = bool(os.statvfs(index_dir).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_fs = False
    return "its file system is mounted read-only" if read_only_fs else "this user may not write it"


@contextmanager
def disk_full_said(index_dir: Path):
    """A disk that fills up while an index is written (its catalog, thumbnails, vectors) stops the change with a
    VtrError that says so, instead of a traceback. What was committed before stays (one transaction per chunk of
    windows): the index is searchable, and an update after space is freed goes on from there."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        if not disk_full(e):
            raise
        written = getattr(e, "filename", None)  # a thumbnail's temporary file: the index's disk is what matters
        where = index_dir if not written or _under(os.path.abspath(written), os.path.abspath(index_dir)) else written
        if _recorded_roots(index_dir):
            raise VtrError(f"no space left on the disk of {where}: the windows committed before are kept and "
                           f"searchable; free some space, then `vtr index update --index {index_dir}` goes on from "
                           "there") from None
        # Full before the first commit (the folders are recorded with the plan): an update would find no folders.
        raise VtrError(f"no space left on the disk of {where}: nothing of the build was committed; free some space, "
                       "then run the same command again") from None


def _recorded_roots(index_dir: Path) -> list:
    """The folders the catalog in ``index_dir`` records, read without writing (the disk may be full); [] when none
    or when it cannot be read."""
    try:
        catalog = Catalog(index_dir / CATALOG, readonly=True)
        try:
            return list(catalog.get_meta("roots", []) or [])
        finally:
            catalog.close()
    except Exception:  # noqa: BLE001 - only the advice depends on it
        return []


def check_writable(index_dir: Path) -> None:
    """VtrError unless this process may change the index in ``index_dir`` (see :func:`read_only`)."""
    why = read_only(index_dir)
    if why:
        raise VtrError(f"{index_dir} cannot be changed ({why}): it can be searched, but building, updating or "
                       "removing from it needs write access; run this as a user who may write it, or copy the "
                       "index folder somewhere you can")


@contextmanager
def build_lock(index_dir: Path):
    """One build of an index at a time, across processes (a cron update beside the app's, two terminals): an
    exclusive ``flock`` on ``index_dir/build.lock``, which the system releases when the process ends, even by
    ``kill -9``. A second build stops at once with VtrError naming the first's process; searches do not lock.
    Where ``fcntl`` does not exist (Windows) builds are not locked."""
    check_writable(index_dir)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(index_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise IndexNotReady(f"{index_dir} is being built by {holder}; run this again when it has finished") \
                from None
        except OSError as e:  # a file system without locks (some network shares): build unlocked, as before
            logger.warning("cannot lock %s (%s): not guarding against a second build at once", f.name, e)
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


def _check_numbers(**values) -> None:
    """The build's numeric flags, checked before the model loads (``--window-s 0`` failed every file with a
    ZeroDivisionError, ``--batch-size 0`` with a traceback after the first chunk)."""
    rules = {"window_s": (lambda v: v > 0, "positive"), "stride_s": (lambda v: v > 0, "positive"),
             "batch_size": (lambda v: v >= 1, "at least 1"), "timeout_s": (lambda v: v > 0, "positive"),
             "workers": (lambda v: v >= 0, "0 (decode in this process) or more")}
    for key, value in values.items():
        ok, what = rules[key]
        if value is not None and not ok(value):  # None: the default
            raise VtrError(f"--{key.replace('_', '-')} must be {what}, not {value:g}")


def _settings(old_manifest: dict | None, model, window_s: float | None, stride_s: float | None) -> tuple:
    """``(model, window_s, stride_s)`` of a build: those given; for those left None, the index's (``old_manifest``),
    else the defaults of a new index. Windows come as a pair: one given and one not takes the other's default."""
    if old_manifest:
        model = model or old_manifest["model"]
        if window_s is None and stride_s is None:
            window_s, stride_s = old_manifest["window_s"], old_manifest["stride_s"]
    window_s = DEFAULT_WINDOW_S if window_s is None else window_s
    stride_s = DEFAULT_STRIDE_S if stride_s is None else stride_s
    return model or DEFAULT_MODEL, window_s, stride_s


def _adopt_manifest(catalog: Catalog, index_dir: Path, old_manifest: dict | None, manifest: dict, reembed: bool,
                    factory: str | None) -> None:
    """Check the new ``manifest`` against the index's and write it: settings that differ stop the build unless
    ``reembed``, which then marks every file for embedding again; the FAISS choice carries over."""
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
    write_manifest(index_dir, manifest)


def _scan_and_plan(catalog: Catalog, index_dir: Path, dirs: list[str] | None, extensions, retry_failed: bool,
                   report: BuildReport, forget_missing: bool = False, settled=None) -> list[tuple]:
    """Scan ``dirs`` (None: the recorded folders), record new folders, and plan the work (see :func:`_plan`)."""
    roots = catalog.get_meta("roots", [])
    excluded = catalog.get_meta("excluded", [])  # paths inside recorded folders `vtr index remove` took out
    if dirs is None:
        if not roots:
            raise VtrError(f"{index_dir} has no recorded folders; run `vtr index build DIR... --index {index_dir}`")
        dirs = [d for d in roots if os.path.exists(d)]
        if not dirs and not forget_missing:
            raise IndexNotReady(f"none of the folders of {index_dir} is there ({', '.join(roots)}): a drive not "
                                "mounted? Nothing was changed.")
    else:
        dirs = [os.path.abspath(os.path.expanduser(d)) for d in dirs]
        for d in dirs:
            if d not in roots:
                roots.append(d)
        named = [e for e in excluded if e in dirs]  # named again: indexed again
        excluded = [e for e in excluded if e not in named]
        for e in excluded:
            if any(_under(e, d) for d in dirs):
                logger.info("leaving out %s (taken out with `vtr index remove`; `vtr index build %s` adds it back)",
                            e, e)
    # A recorded folder that is not there (a drive not mounted, a share offline) is not a folder whose videos were
    # deleted: its files stay as they are until it is back, or until they turn up in a scanned folder (it was
    # moved or renamed: matched by content, kept without embedding them again).
    gone = [d for d in roots if not os.path.exists(d)]
    mounts: list[str] = []
    kept_pictures = catalog.pictures()
    known_pictures = kept_pictures if catalog.get_meta("pictures_version") == PICTURES_VERSION else {}
    pictures: list[tuple] = []
    scanned = scan_folders(dirs, extensions, exclude=excluded, unreadable=report.unreadable, mounts=mounts,
                           known_pictures=known_pictures, pictures=pictures)
    for d, why in report.unreadable:
        logger.warning("cannot read the folder %s (%s): its videos stay in the index as they are", d, why)
    # So is a drive or share mounted inside a scanned folder (a root of /media/me, ~/Videos/NAS) at an earlier
    # build and not mounted now: an empty folder, or none (udisks removes it), not a folder whose videos were deleted.
    scanned_here = [m for m in catalog.get_meta("mounts", []) if any(_under(m, d) for d in dirs)]
    unmounted = [m for m in scanned_here if m not in mounts]
    report.scanned = len(scanned)
    # a vtr that reads what an older one could not (READERS_VERSION) tries the files that failed once more
    retry_failed = retry_failed or catalog.get_meta("readers_version") != READERS_VERSION
    todo = _plan(catalog, scanned, roots_now=dirs, retry_failed=retry_failed, report=report, index_dir=index_dir,
                 roots_gone=gone + unmounted, forget_gone=forget_missing, settled=settled,
                 unread=[d for d, _ in report.unreadable])
    paths = [r.path for r in catalog.files()] if gone or unmounted else []
    left = {d: any(_under(path, d) for path in paths) for d in gone + unmounted}
    for d in gone + unmounted:
        if left[d]:
            logger.warning("%s is not there (a drive not mounted?): its files stay in the index as they are", d)
        else:
            logger.info("%s is not there and none of its files is left: no longer recorded", d)
    report.missing_roots = [d for d in gone + unmounted if left[d]]
    with catalog.transaction():
        catalog.set_meta("roots", [d for d in roots if d not in gone or left[d]])
        catalog.set_meta("excluded", excluded)
        catalog.set_meta("mounts", sorted({m for m in catalog.get_meta("mounts", []) if m not in scanned_here}
                                          | set(mounts) | {m for m in unmounted if left[m]}))
        read = {path: tuple(rest) for path, *rest in pictures}  # written where they differ: on most updates, none
        gone_pictures = [p for p in kept_pictures if p not in read and any(_under(p, d) for d in dirs)]
        catalog.keep_pictures([(path, *rest) for path, rest in read.items() if kept_pictures.get(path) != rest],
                              forgotten=gone_pictures)
        catalog.set_meta("pictures_version", PICTURES_VERSION)
        catalog.set_meta("readers_version", READERS_VERSION)
    return todo


CANNOT_READ = "cannot read:"  # the start of the reason of a file the build could not open (permissions, I/O)
#: Goes up when vtr learns to read files an older version failed on (the catalog's ``readers_version``): an index's
#: next build tries its failed files once more, as ``--retry-failed`` does. 1 (2026-12-06): an index made before
#: this tries its failures once with all vtr learned since they failed. 2: Flash video with sound (an FLV of
#: Sorenson H.263, whose start FFmpeg would not seek back to: :func:`vtr.data.video.rewind`).
READERS_VERSION = 2


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _commit(catalog: Catalog, index_dir: Path, items, report: BuildReport) -> None:
    """Commit each embedded chunk (one transaction per chunk: a kill loses at most the chunk being embedded) and
    each failure, as :func:`index.embed.embed_chunks` yields them."""
    for item in items:
        if isinstance(item, FileFailure):
            gone = not os.path.exists(item.path)  # not the file's fault: a share or drive dropped, or it was deleted
            with catalog.transaction():
                if gone:  # out of the catalog: the next build finds it new if it is back, and gone if it is not
                    dropped = catalog.delete_file(item.key)
                else:
                    dropped = [w.id for w in catalog.windows_of(item.key)]  # chunks committed before it failed
                    catalog.mark_failed(item.key, item.reason)
            remove_thumbnails(index_dir, dropped)
            if gone:
                report.vanished.append(item.path)
                logger.info("gone while being read: %s (%s)", item.path, item.reason)
                continue
            report.failed += 1
            report.failures.append((item.path, item.reason))
            logger.info("failed: %s: %s", item.path, item.reason)
            continue
        with catalog.transaction():
            ids = catalog.add_chunk(item.key, item.chunk, item.n_chunks, item.meta, item.windows, item.vectors,
                                    item.planned, item.partial)
            for wid, jpeg in zip(ids, item.thumbnails):
                write_thumbnail(index_dir, wid, jpeg)
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


def _plan(catalog: Catalog, scanned, roots_now, retry_failed, report: BuildReport, index_dir,
          roots_gone=(), forget_gone: bool = False, settled=None, unread=()) -> list[tuple]:
    """Apply renames/deletions to the catalog and return the ``[(file_id, path)]`` to embed (``(file_id, path,
    chunks)`` for a file an interrupted build had begun: the chunks still to embed). Files under ``roots_gone``
    (recorded folders that are not there, drives no longer mounted inside scanned ones) may turn up renamed or
    moved; the others are deleted only with ``forget_gone``. New and changed files ``settled`` rejects are left for
    a later build. Files under ``unread`` (folders the scan could not list) are left as they are."""
    rows = {r.path: r for r in catalog.files()}
    seen = {f.path: f for f in scanned}
    if unread:
        rows = {p: r for p, r in rows.items() if not any(_under(p, d) for d in unread)}
    todo: list[tuple[int, str]] = []
    removed_windows: list[int] = []
    # Files that vanished from the scanned folders: renamed (matched by hash below) or deleted.
    missing = {p: r for p, r in rows.items() if p not in seen and any(_under(p, d) for d in roots_now)
               and not any(_under(p, d) for d in roots_gone)}  # a drive mounted inside a scanned folder: away
    away = {p: r for p, r in rows.items() if p not in seen and any(_under(p, d) for d in roots_gone)}
    missing_by_hash = {}
    for r in list(missing.values()) + list(away.values()):
        if r.status == "ok" and r.hash:
            missing_by_hash.setdefault(r.hash, r)
    # Indexed files whose content a new file may repeat (a backup, a copy): their windows are reused, not embedded
    indexed_by_hash = {}
    for r in rows.values():
        if r.status == "ok" and r.hash and r.path not in missing:
            indexed_by_hash.setdefault((r.hash, r.size), r.id)
    copied: list[tuple[int, int]] = []  # (source window, new window): thumbnails to copy
    with catalog.transaction():
        for path, f in seen.items():
            row = rows.get(path)
            if f.error:
                fid = row.id if row else catalog.upsert_pending(path, f.size, f.mtime, None)
                if row is None or row.status != "failed":
                    catalog.mark_failed(fid, f.error)
                    report.failed += 1
                    report.failures.append((path, f.error))
                else:  # failed as before, as a damaged file that did not change
                    report.unchanged += 1
                continue
            if row is not None and row.status != "pending" and (row.size, row.mtime) == (f.size, f.mtime):
                # "file not found": recorded by builds before gone files were told apart, for a file there now;
                # "cannot read": permissions mended since (a chmod leaves the modification time)
                if row.status == "failed" and (retry_failed or row.error == "file not found"
                                               or ((row.error or "").startswith(CANNOT_READ) and _readable(path))):
                    todo.append((catalog.upsert_pending(path, f.size, f.mtime, row.hash), path))
                    report.retried += 1
                else:
                    report.unchanged += 1
                continue
            if settled is not None and not settled(f):  # still being written: its old windows (if any) stay
                report.waiting.append(path)
                continue
            try:
                h = quick_hash(path)
            except FileNotFoundError:  # gone since the scan: as if the scan had not seen it
                report.vanished.append(path)
                continue
            except OSError as e:
                fid = row.id if row else catalog.upsert_pending(path, f.size, f.mtime, None)
                catalog.mark_failed(fid, f"{CANNOT_READ} {e.strerror or e}")
                report.failed += 1
                report.failures.append((path, f"{CANNOT_READ} {e.strerror or e}"))
                continue
            if row is None:
                old = missing_by_hash.pop(h, None)
                if old is not None:  # renamed or moved: keep its windows and vectors
                    catalog.touch(old.id, path, f.size, f.mtime)
                    missing.pop(old.path, None)
                    away.pop(old.path, None)
                    report.renamed += 1
                    continue
                fid = catalog.upsert_pending(path, f.size, f.mtime, h)
                source = indexed_by_hash.get((h, f.size))
                source_row = catalog.file_by_id(source) if source is not None else None
                if source_row is not None and source_row.status == "ok" and source_row.hash == h:
                    pairs = catalog.copy_file(source, fid)
                    if pairs:  # the same content, already embedded: the same windows and vectors
                        copied += pairs
                        report.added += 1
                        report.copies += 1
                        continue
                todo.append((fid, path))
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
        for r in list(missing.values()) + (list(away.values()) if forget_gone else []):
            removed_windows += catalog.delete_file(r.id)
            report.deleted += 1
    for source, window in copied:  # before any removal: a source changed after it was copied loses its own
        thumb = thumbnail_path(index_dir, source)
        if thumb.is_file():
            write_thumbnail(index_dir, window, thumb.read_bytes())
    remove_thumbnails(index_dir, removed_windows)
    return todo


def _retime_variable_rate(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the unchanged files of an index built before windows followed frame timestamps whose frame
    rate varies (their windows were cut at frame index / average rate, seconds off), to embed again. The catalog's
    ``frame_times`` mark says the check was done (or that every file was embedded on frame times)."""
    if catalog.get_meta("frame_times", False):
        return []
    from tqdm import tqdm

    from vtr.data.video import open_video

    queued = {t[0] for t in todo}
    rows = [r for r in catalog.files("ok") if r.id not in queued]
    variable = []
    for r in tqdm(rows, desc="checking frame timing", unit="file", disable=not progress or not rows):
        try:
            with open_video(r.path, backend=VIDEO_BACKEND) as reader:  # the clock the windows were placed on
                if reader.clock().variable:
                    variable.append(r)
        except Exception as e:  # noqa: BLE001 - unreadable now: its next change re-indexes it
            logger.debug("frame timing of %s not checked: %s", r.path, e)
    redo = _embed_again(catalog, index_dir, variable, "frame_times")
    if redo:
        logger.info("embedding again %d variable-frame-rate video(s) indexed before windows followed frame times",
                    len(redo))
    report.retimed, report.unchanged = len(redo), max(0, report.unchanged - len(redo))  # counted there by _plan
    return redo


def _embed_again(catalog: Catalog, index_dir: Path, rows, mark: str) -> list:
    """Queue ``rows`` (catalog files) to be embedded again, dropping their windows and thumbnails, and set the
    catalog's ``mark`` in the same transaction. Returns the queued ``(file id, path)``."""
    redo, removed = [], []
    with catalog.transaction():
        for r in rows:
            removed += [w.id for w in catalog.windows_of(r.id)]
            redo.append((catalog.upsert_pending(r.path, r.size, r.mtime, r.hash), r.path))
        catalog.set_meta(mark, True)
    remove_thumbnails(index_dir, removed)
    return redo


#: Containers whose frames decord 0.6 (the index's decoder before 2026-12-04) can return other than asked: MPEG-TS,
#: MPEG-PS and AVI with B-frames (bench/README.md, fourteenth round). Files of these kinds in an older index are
#: embedded again once, with the PyAV decoder (:func:`_redecode_misread`).
MISREAD_EXTENSIONS = frozenset({".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob", ".avi"})


def _redecode_misread(catalog: Catalog, index_dir: Path, todo, report: BuildReport) -> list:
    """Once per index: the unchanged files of an index whose windows were decoded by decord, in containers it can
    misread (:data:`MISREAD_EXTENSIONS`), to embed again. The catalog's ``pyav_frames`` mark says this was done (or
    that every file was decoded by PyAV)."""
    if catalog.get_meta("pyav_frames", False):
        return []
    queued = {t[0] for t in todo}
    rows = [r for r in catalog.files("ok")
            if r.id not in queued and Path(r.path).suffix.lower() in MISREAD_EXTENSIONS]
    redo = _embed_again(catalog, index_dir, rows, "pyav_frames")
    if redo:
        logger.info("embedding again %d TS/MPEG/AVI video(s) that the decoder of older indexes could misread",
                    len(redo))
    report.redecoded, report.unchanged = len(redo), max(0, report.unchanged - len(redo))
    return redo


def _reread_once(catalog: Catalog, index_dir: Path, todo, mark: str, looking_for: str, found_if,
                 progress: bool) -> list:
    """Once per index (until the catalog holds ``mark``): the indexed files not queued already for which
    ``found_if(path)`` holds, queued to be embedded again (:func:`_embed_again`, which sets the mark). Returns the
    queued ``(file id, path)``."""
    if catalog.get_meta(mark, False):
        return []
    from tqdm import tqdm

    queued = {t[0] for t in todo}
    rows = [r for r in catalog.files("ok") if r.id not in queued]
    found = [r for r in tqdm(rows, desc=f"looking for {looking_for}", unit="file", disable=not progress or not rows)
             if found_if(r.path)]
    return _embed_again(catalog, index_dir, found, mark)


def _reread_hdr_and_interlaced(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the unchanged HDR files (PQ, HLG: phones' video) and interlaced ones (a camcorder's 1080i) of
    an index built before frames were tone-mapped (:mod:`vtr.data.hdr`) and deinterlaced, whose windows and
    thumbnails were made from dull or dark or combed frames, to embed again. Each file's header is read (about
    1 ms). The catalog's ``sdr_progressive_frames`` mark says this was done (or that every file was embedded so)."""
    from vtr.data.video import header_flags

    redo = _reread_once(catalog, index_dir, todo, "sdr_progressive_frames", "HDR and interlaced video",
                        lambda path: any(header_flags(path)), progress)
    if redo:
        logger.info("embedding again %d HDR or interlaced video(s) indexed before they were tone-mapped and "
                    "deinterlaced", len(redo))
    report.reread, report.unchanged = len(redo), max(0, report.unchanged - len(redo))
    return redo


def _reread_hidden_frames(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the videos holding frames players never show, of an index built before such frames were left
    out (:func:`vtr.data.video.hides_frames`): trimmed without re-encoding (an edit list hides the frames before the
    cut, which the header still counts: ``ffmpeg -ss ... -c copy``, LosslessCut), or recorded from between two
    keyframes (a TV or an IP camera's recording). Their windows were placed counting those frames, off by them, and
    some ends "could not be decoded" (listed as indexed in part): embedded again. Each file's header and first packet
    are read (about 1 ms). The catalog's ``hidden_frames_left_out`` mark says this was done (or that every file was
    embedded so); its ``open_gop_leads_left_out`` mark the same for recordings started on a keyframe of an open group
    of pictures (:func:`vtr.data.video.opens_on_leading_frames`: a TV tuner's MPEG-2 recording that starts on an
    I-frame, whose first B-frames, shown before it, do not decode), which came later."""
    from vtr.data.video import hides_frames, opens_on_leading_frames

    redo = _reread_once(catalog, index_dir, todo, "hidden_frames_left_out", "trimmed video", hides_frames, progress)
    redo += _reread_once(catalog, index_dir, todo + redo, "open_gop_leads_left_out", "recordings started on an open "
                         "group of pictures", opens_on_leading_frames, progress)
    if redo:
        logger.info("embedding again %d video(s) with frames players never show (trimmed, or recorded from between "
                    "two keyframes or on one of an open group), indexed before those frames were left out", len(redo))
    report.trimmed, report.unchanged = len(redo), max(0, report.unchanged - len(redo))
    return redo


def _reread_transparent(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the videos whose pixels carry transparency (an editor's ProRes 4444 or QuickTime Animation
    overlay, PNG in MOV: :func:`vtr.data.video.transparent`), of an index built before transparency was put over
    white. Their windows and thumbnails showed the colour stored under it, which no player shows: embedded again.
    Each file's header is read (about 1 ms). The catalog's ``transparency_over_white`` mark says this was done (or
    that every file was embedded so); its ``vpx_alpha_over_white`` mark the same for VP8/VP9 WebMs with
    transparency (a chat's video sticker: :mod:`vtr.data.vpx_alpha`), which came later."""
    from vtr.data.video import transparent

    from vtr.data.vpx_alpha import reads_alpha

    redo = _reread_once(catalog, index_dir, todo, "transparency_over_white", "video with transparency", transparent,
                        progress)
    # VP8/VP9 WebMs' transparency came later: read by libvpx (vtr.data.vpx_alpha), FFmpeg's own decoders drop it
    redo += _reread_once(catalog, index_dir, todo + redo, "vpx_alpha_over_white", "WebM with transparency",
                         reads_alpha, progress)
    if redo:
        logger.info("embedding again %d video(s) with transparency, indexed before it was put over white", len(redo))
    report.transparent, report.unchanged = len(redo), max(0, report.unchanged - len(redo))
    return redo


def _retime_once(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool, mark: str,
                 what: str, extensions, found_if, why: str = "their frames were placed at their own times") -> list:
    """:func:`_reread_once` of the files with one of ``extensions`` for which ``found_if(path)`` holds, ``what``
    they are in the log (indexed before ``why``), counted as re-timed."""
    redo = _reread_once(catalog, index_dir, todo, mark, what,
                        lambda path: Path(path).suffix.lower() in extensions and found_if(path), progress)
    if redo:
        logger.info("embedding again %d %s, indexed before %s", len(redo), what, why)
    report.retimed += len(redo)
    report.unchanged = max(0, report.unchanged - len(redo))
    return redo


def _retime_dropped_frames(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the AVI captures that dropped frames (:func:`vtr.data.video.drops_frames`: a VHS or camcorder
    digitised, a webcam), of an index built before their frames were placed at their own periods. Counted frame by
    frame, their windows drifted early by a period per drop, and their last ones "could not be decoded" (listed as
    indexed in part): embedded again, counted as re-timed. Each AVI's header and index are read (about 1 ms). The
    catalog's ``dropped_frames_timed`` mark says this was done (or that every file was embedded so)."""
    from vtr.data.video import drops_frames

    return _retime_once(catalog, index_dir, todo, report, progress, "dropped_frames_timed",
                        "AVI captures that dropped frames", (".avi", ".divx"), drops_frames)


#: Extensions of MPEG-TS files (:func:`_reread_past_holes`: only its demuxer stalls on a stretch of zeros)
TS_EXTENSIONS = frozenset({".ts", ".mts", ".m2ts", ".m2t", ".tod"})
#: Extensions of MPEG-TS and MPEG-PS files, whose timestamps can jump (:func:`_retime_jumps`)
TS_PS_EXTENSIONS = TS_EXTENSIONS | {".mpg", ".mpeg", ".vob", ".mod"}


def _retime_jumps(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the MPEG-TS/PS recordings whose timestamps jump (:func:`vtr.data.video.discontinuous`: a TV
    recording that resumed, files joined end to end), of an index built before their frames were timed by count.
    Their duration ran over the jump (minutes to a day more than they hold), with windows over it, and the windows
    after it were cut from the wrong frames: embedded again, counted as re-timed. Each such file's packets are read
    (no decoding). The catalog's ``jumps_timed_by_count`` mark says this was done (or that every file was embedded
    so)."""
    from vtr.data.video import discontinuous

    return _retime_once(catalog, index_dir, todo, report, progress, "jumps_timed_by_count",
                        "recordings whose timestamps jump", TS_PS_EXTENSIONS, discontinuous)


def _retry_in_part(catalog: Catalog, index_dir: Path, todo, report: BuildReport) -> list:
    """Once per index: the files an index built before damaged packets were passed over
    (:data:`vtr.data.video.DAMAGED_PACKETS`: a hole of zeros in an MP4's data, bad sectors) listed as indexed in
    part, embedded again, counted as tried again: the first damaged packet ended their reading (of H.264 and HEVC, the
    windows after it in its keyframe's group were lost; of other codecs, an old camera's MJPEG or MPEG-4, every window
    after it). One still damaged past reading is listed in part again. The catalog's
    ``damaged_packets_passed_over_in_every_codec`` mark says this was done (or that every file was embedded so); an
    index that has only ``damaged_packets_passed_over`` (H.264 and HEVC were read past them) tries again once more."""
    mark = "damaged_packets_passed_over_in_every_codec"
    if catalog.get_meta(mark, False):
        return []
    queued = {t[0] for t in todo}
    redo = _embed_again(catalog, index_dir, [r for r in catalog.files("ok") if r.id not in queued and r.error], mark)
    if redo:
        logger.info("embedding again %d video(s) indexed in part before damaged packets were passed over", len(redo))
    report.retried, report.unchanged = report.retried + len(redo), max(0, report.unchanged - len(redo))
    return redo


def _reread_past_holes(catalog: Catalog, index_dir: Path, todo, report: BuildReport, progress: bool) -> list:
    """Once per index: the MPEG-TS recordings holding a stretch of zeros (a download or a copy with holes, a disk's
    bad sectors read back as zeros: :func:`vtr.data.video.stalls_demuxer`), of an index built before reading went on
    past it (:func:`vtr.data.video.demuxed`). Their packets ended there, with no error: the rest of the file had no
    windows. Embedded again, counted as re-timed. Each such file's packets are read (no decoding). The catalog's
    ``holes_read_past`` mark says this was done (or that every file was embedded so)."""
    from vtr.data.video import stalls_demuxer

    return _retime_once(catalog, index_dir, todo, report, progress, "holes_read_past",
                        "TS recordings with a stretch of zeros", TS_EXTENSIONS, stalls_demuxer,
                        "reading went on past it")


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
        try:
            changed = store.hold(ids, catalog.iter_vectors)
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
    write_manifest(index_dir, manifest)
    return store


def index_status(index: str) -> dict:
    """Counts, settings and failed files of an index folder (see :meth:`index.catalog.Catalog.summary`), and
    ``missing_roots``: the recorded folders that are not there now (a drive not mounted, a folder moved)."""
    index_dir = Path(index)
    manifest = read_manifest(index_dir)
    if manifest is None or not is_index(index_dir):
        raise VtrError(f"{index_dir} is not an index folder (no {MANIFEST} / {CATALOG})")
    catalog = Catalog.for_reading(index_dir / CATALOG)
    try:
        return status_of(index_dir, manifest, catalog)
    finally:
        catalog.close()


def status_of(index_dir, manifest: dict, catalog: Catalog) -> dict:
    """:func:`index_status` of an opened catalog (what ``VideoIndex.status`` answers too)."""
    summary = catalog.summary()
    missing = [r for r in summary["roots"] if not os.path.exists(r)]  # a root may be one video
    return {"index": str(index_dir), "manifest": manifest, **summary, "missing_roots": missing,
            "read_only": read_only(index_dir)}
