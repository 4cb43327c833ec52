"""The catalog: one sqlite file (``catalog.sqlite``) holding what was indexed, window by window.

Tables::

    files(id, path UNIQUE, size, mtime, hash, duration, fps, width, height, status, error, indexed_at)
        status: 'pending' (to embed; left by an interrupted build), 'ok', or 'failed' (error says why)
    windows(id, file_id -> files.id, start, end, embedding)
        id is the FAISS vector id (AUTOINCREMENT: ids are never reused, so a stale vector can never be
        mistaken for a new one); embedding is the float32 vector, so ``vectors.faiss`` can always be rebuilt
        from the catalog and a crash never loses finished work
    chunks(file_id -> files.id, chunk, n_chunks, windows, planned, partial)
        the chunks of a file whose windows are committed (a long file is committed chunk by chunk, so a killed
        build resumes inside it); partial says why a chunk of a damaged file has fewer windows than planned
    meta(key, value)
        roots (JSON list of the folders that were scanned), excluded (JSON list of the paths inside them that
        ``vtr index remove`` took out: scans leave them out)
    recorded(file_id -> files.id, time, source)
        when an indexed video was recorded (seconds since the epoch) and where that came from: its tags, its name
        or the file's time (see :mod:`index.dates`); filled after each build for the files that have none yet
    pictures(path UNIQUE, size, mtime, video)
        the pictures the last scan read (photos, GIFs, APNGs: see :func:`index.scan.is_still_picture`) and whether
        each holds a video: the next scan takes that without reading the file again while its size and
        modification time are the same (meta ``pictures_version`` says which scan read them)

A file indexed in part (damaged or cut short in the middle: the windows that decode are indexed) has status 'ok'
and its ``error`` says what is missing and why.

Every change is one sqlite transaction (commit per chunk of up to 16 windows while building), so an interrupted
build leaves the catalog as it was after the last committed chunk. The database runs in WAL mode so searches can
read while a build writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    hash TEXT,
    duration REAL,
    fps REAL,
    width INTEGER,
    height INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    indexed_at REAL
);
CREATE INDEX IF NOT EXISTS files_hash ON files(hash);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    end REAL NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS windows_file ON windows(file_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS recorded (
    file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
    time REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pictures (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    video INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS timed_by_count (
    file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS chunks (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL,
    windows INTEGER NOT NULL,
    planned INTEGER NOT NULL,
    partial TEXT,
    PRIMARY KEY (file_id, chunk)
);
"""

HASH_CHUNK = 1 << 20  # 1 MiB


def quick_hash(path: str | os.PathLike, chunk: int = HASH_CHUNK) -> str:
    """Content hash used to recognise renamed files: sha256 of the size, the first MiB and the last MiB.

    Cheap on large videos (reads at most 2 MiB); two different videos with the same size and the same first and
    last MiB would collide, which does not happen with real recordings.
    """
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(chunk))
        if size > 2 * chunk:
            f.seek(size - chunk)
            digest.update(f.read(chunk))
        elif size > chunk:
            digest.update(f.read())
    return digest.hexdigest()


@dataclass
class FileRow:
    id: int
    path: str
    size: int
    mtime: float
    hash: str | None
    duration: float | None
    fps: float | None
    width: int | None
    height: int | None
    status: str
    error: str | None
    indexed_at: float | None


@dataclass
class WindowRow:
    id: int
    file_id: int
    start: float
    end: float


_FILE_COLS = "id, path, size, mtime, hash, duration, fps, width, height, status, error, indexed_at"


def writable(catalog: str | os.PathLike) -> bool:
    """Whether this process may change ``catalog`` (and create sqlite's ``-wal`` and ``-shm`` files beside it)."""
    catalog = Path(catalog)
    return os.access(catalog.parent, os.W_OK) and (not catalog.exists() or os.access(catalog, os.W_OK))


def _files_of(path: Path) -> tuple:
    """What a writer of the catalog at ``path`` changes: the file itself, and sqlite's ``-wal`` and ``-shm`` files,
    which appear when a build opens it."""
    out = []
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def _connect_readonly(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection, and whether it is ``immutable`` (see below)."""
    if not path.is_file():
        raise FileNotFoundError(f"no catalog at {path}")
    # sqlite's ``-shm`` file is there while a build in another process (its owner's watch) has the catalog open:
    # ``mode=ro`` then reads the catalog as that build commits to it. Without it, a reader that may not create it
    # cannot use ``mode=ro``, and nothing writes the catalog now (nor can, on a read-only mount): ``immutable=1``
    # reads it without locks and never sees a change: :meth:`Catalog.data_version` opens it again when its files
    # change (a build started later).
    shm = path.with_name(path.name + "-shm")
    mode = "mode=ro" if shm.exists() else "immutable=1"
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?{mode}", uri=True, isolation_level=None, timeout=60)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # A catalog written by an older vtr lacks the newer tables, which a writable open creates; here they are empty
    # temporary tables (in memory), so the queries that read them find nothing, as they would before its update.
    for statement in SCHEMA.split(";"):
        words = statement.split()
        if words[:5] == ["CREATE", "TABLE", "IF", "NOT", "EXISTS"] and words[5] not in tables:
            conn.execute(statement.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
    conn.execute("PRAGMA foreign_keys=ON")
    return conn, mode == "immutable=1"


class Catalog:
    """Thin typed access to ``catalog.sqlite``. Use ``with catalog.transaction():`` around multi-step changes."""

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        """readonly: open an existing catalog for reading only, as :meth:`for_reading` does where the index's
        folder cannot be written; any change then raises ``sqlite3.OperationalError``."""
        self.path = Path(path)
        self.readonly = readonly
        self._depth = 0
        self._immutable: tuple | None = None  # an immutable connection: the files it was opened on
        self._reopened = 0
        if readonly:
            self._open_readonly()
            return
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    @classmethod
    def for_reading(cls, path: str | os.PathLike) -> "Catalog":
        """The catalog for a process that only reads it (searches, status): opened as a build opens it where its
        folder can be written, read-only where it cannot (an index on a read-only share, mount or disc, or one
        another user built and this one may only read)."""
        path = Path(path)
        return cls(path, readonly=not writable(path))

    def _open_readonly(self) -> None:
        files = _files_of(self.path)  # before: a change while connecting is seen by the next check
        self.conn, immutable = _connect_readonly(self.path)
        self._immutable = files if immutable else None

    def close(self):
        self.conn.close()

    def data_version(self) -> int:
        """sqlite's ``PRAGMA data_version``: it changes when another connection (another process's build, a cron
        update) commits a change to the catalog, and only then; this connection's own commits leave it. An
        immutable read-only connection (opened while nothing wrote the catalog) sees no change: when the catalog's
        files change it is opened again, which counts as a new version. Before, a reader of an index it may not
        write (another user's, one on a share) never saw a build begun after it opened, and read without locks a
        file that build was changing."""
        if self._immutable is not None and _files_of(self.path) != self._immutable:
            self.conn.close()
            self._open_readonly()
            self._reopened += 1
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0]) + (self._reopened << 32)

    # ------------------------------------------------------------------------------------------ transactions
    class _Tx:
        def __init__(self, cat):
            self.cat = cat

        def __enter__(self):
            if self.cat._depth == 0:
                self.cat.conn.execute("BEGIN IMMEDIATE")
            self.cat._depth += 1
            return self.cat

        def __exit__(self, exc_type, exc, tb):
            self.cat._depth -= 1
            if self.cat._depth == 0:
                self.cat.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            return False

    def transaction(self):
        return Catalog._Tx(self)

    # ---------------------------------------------------------------------------------------------- meta
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --------------------------------------------------------------------------------------------- files
    def files(self, status: str | None = None) -> list[FileRow]:
        sql = f"SELECT {_FILE_COLS} FROM files"
        args: tuple = ()
        if status:
            sql += " WHERE status=?"
            args = (status,)
        return [FileRow(*r) for r in self.conn.execute(sql + " ORDER BY path", args)]

    def file_by_path(self, path: str) -> FileRow | None:
        r = self.conn.execute(f"SELECT {_FILE_COLS} FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(*r) if r else None

    def files_by_content(self, hash_: str | None, size: int) -> list[FileRow]:
        """The indexed files (status ok) with this quick hash and size: one video kept under several paths."""
        if not hash_:
            return []
        return [FileRow(*r) for r in self.conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE hash=? AND size=? AND status='ok' ORDER BY id", (hash_, int(size)))]

    def file_by_id(self, file_id: int) -> FileRow | None:
        r = self.conn.execute(f"SELECT {_FILE_COLS} FROM files WHERE id=?", (file_id,)).fetchone()
        return FileRow(*r) if r else None

    def upsert_pending(self, path: str, size: int, mtime: float, hash_: str | None) -> int:
        """Mark a file as to-be-embedded (drops its old windows); returns its id."""
        row = self.file_by_path(path)
        if row is None:
            cur = self.conn.execute(
                "INSERT INTO files(path, size, mtime, hash, status) VALUES (?, ?, ?, ?, 'pending')",
                (path, size, mtime, hash_))
            return int(cur.lastrowid)
        self._drop_windows(row.id)
        self.conn.execute(
            "UPDATE files SET size=?, mtime=?, hash=?, status='pending', error=NULL, duration=NULL, fps=NULL, "
            "width=NULL, height=NULL, indexed_at=NULL WHERE id=?", (size, mtime, hash_, row.id))
        return row.id

    def touch(self, file_id: int, path: str, size: int, mtime: float) -> None:
        """Same content at a new path and/or with a new mtime (renamed or touched): keep the windows (its
        recording date is read again: a name can carry one)."""
        self.conn.execute("UPDATE files SET path=?, size=?, mtime=? WHERE id=?", (path, size, mtime, file_id))
        self.conn.execute("DELETE FROM recorded WHERE file_id=?", (file_id,))

    def delete_file(self, file_id: int) -> list[int]:
        """Remove a file and its windows; returns the removed window (vector) ids."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM windows WHERE file_id=?", (file_id,))]
        self._drop_windows(file_id)
        self.conn.execute("DELETE FROM files WHERE id=?", (file_id,))
        return ids

    def _drop_windows(self, file_id: int) -> None:
        self.conn.execute("DELETE FROM windows WHERE file_id=?", (file_id,))
        self.conn.execute("DELETE FROM recorded WHERE file_id=?", (file_id,))
        self.conn.execute("DELETE FROM chunks WHERE file_id=?", (file_id,))

    def mark_failed(self, file_id: int, error: str) -> None:
        self._drop_windows(file_id)
        self.conn.execute("UPDATE files SET status='failed', error=?, indexed_at=? WHERE id=?",
                          (error, time.time(), file_id))

    def finish_file(self, file_id: int, meta: dict, windows: list[tuple[float, float]], vectors: np.ndarray) -> list[int]:
        """Store a file's metadata and its windows with their vectors (status ok); returns the window ids."""
        self._drop_windows(file_id)
        self._set_timing(file_id, meta)
        self.conn.execute(
            "UPDATE files SET duration=?, fps=?, width=?, height=?, status='ok', error=NULL, indexed_at=? WHERE id=?",
            (meta["duration"], meta["fps"], meta["width"], meta["height"], time.time(), file_id))
        return self._insert_windows(file_id, windows, vectors)

    def copy_file(self, source_id: int, file_id: int) -> list[tuple[int, int]]:
        """Give ``file_id`` (a copy of ``source_id``'s content) that file's metadata, windows and vectors (status
        ok); returns ``[(source window id, new window id)]``."""
        self._drop_windows(file_id)
        self.conn.execute(
            "UPDATE files SET (duration, fps, width, height, status, error, indexed_at) = "
            "(SELECT duration, fps, width, height, 'ok', error, ? FROM files WHERE id=?) WHERE id=?",
            (time.time(), source_id, file_id))
        self.conn.execute("DELETE FROM timed_by_count WHERE file_id=?", (file_id,))
        self.conn.execute("INSERT INTO timed_by_count(file_id) SELECT ? FROM timed_by_count WHERE file_id=?",
                          (file_id, source_id))
        pairs = []
        for wid, start, end, vec in self.conn.execute(
                "SELECT id, start, end, embedding FROM windows WHERE file_id=? ORDER BY start, id",
                (source_id,)).fetchall():
            cur = self.conn.execute("INSERT INTO windows(file_id, start, end, embedding) VALUES (?, ?, ?, ?)",
                                    (file_id, start, end, vec))
            pairs.append((int(wid), int(cur.lastrowid)))
        return pairs

    def _set_timing(self, file_id: int, meta: dict) -> None:
        """Record whether the file's frames are timed by count (``meta["timed_by_count"]``: its timestamps jump, or
        a raw stream has none: :func:`vtr.data.video.discontinuous`)."""
        if meta.get("timed_by_count"):
            self.conn.execute("INSERT OR IGNORE INTO timed_by_count(file_id) VALUES (?)", (file_id,))
        else:
            self.conn.execute("DELETE FROM timed_by_count WHERE file_id=?", (file_id,))

    def timed_by_count(self, path: str) -> bool | None:
        """Whether the indexed video at ``path`` has its frames timed by count (its timestamps jump, or it has
        none), as its reader found when the index embedded it: previews and exports then need not read all its
        packets to tell. None where the index does not know (a video it does not hold as indexed, or an index whose
        videos were embedded before this was recorded: no ``jumps_timed_by_count`` mark)."""
        row = self.conn.execute("SELECT f.id, t.file_id FROM files f LEFT JOIN timed_by_count t ON t.file_id = f.id "
                                "WHERE f.path=? AND f.status='ok'", (path,)).fetchone()
        if row is None or not self.get_meta("jumps_timed_by_count", False):
            return None
        return row[1] is not None

    def _insert_windows(self, file_id: int, windows, vectors) -> list[int]:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = []
        for (start, end), vec in zip(windows, vectors):
            cur = self.conn.execute("INSERT INTO windows(file_id, start, end, embedding) VALUES (?, ?, ?, ?)",
                                    (file_id, float(start), float(end), vec.tobytes()))
            ids.append(int(cur.lastrowid))
        return ids

    def add_chunk(self, file_id: int, chunk: int, n_chunks: int, meta: dict, windows: list[tuple[float, float]],
                  vectors: np.ndarray, planned: int, partial: str | None = None) -> list[int]:
        """Store one chunk of a file being built (the file stays 'pending'); returns its window ids."""
        self.conn.execute("UPDATE files SET duration=?, fps=?, width=?, height=? WHERE id=?",
                          (meta["duration"], meta["fps"], meta["width"], meta["height"], file_id))
        self._set_timing(file_id, meta)
        self.conn.execute("INSERT INTO chunks(file_id, chunk, n_chunks, windows, planned, partial) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (file_id, chunk, n_chunks, len(windows), planned, partial))
        return self._insert_windows(file_id, windows, vectors)

    def committed_chunks(self, file_id: int) -> dict[int, tuple[int, int, int, str | None]]:
        """``{chunk: (n_chunks, windows, planned, partial)}`` of the chunks of ``file_id`` already stored."""
        return {r[0]: tuple(r[1:]) for r in self.conn.execute(
            "SELECT chunk, n_chunks, windows, planned, partial FROM chunks WHERE file_id=?", (file_id,))}

    def finish_chunks(self, file_id: int) -> tuple[int, str | None]:
        """Every chunk of ``file_id`` is stored: mark it 'ok' (with what is missing, for a damaged file), or
        'failed' when no window at all could be decoded. Returns ``(windows, partial reason or None)``."""
        chunks = self.committed_chunks(file_id)
        windows = sum(c[1] for c in chunks.values())
        planned = sum(c[2] for c in chunks.values())
        reasons = [c[3] for _, c in sorted(chunks.items()) if c[3]]
        # (a file cut short had its windows planned on what is there: nothing to count)
        reason = (f"{reasons[0]}; {windows} of {planned} windows indexed" if windows < planned else reasons[0]) \
            if reasons else None
        if windows == 0:
            self.mark_failed(file_id, reasons[0] if reasons else "no window could be decoded")
            return 0, reason
        self.conn.execute("UPDATE files SET status='ok', error=?, indexed_at=? WHERE id=?",
                          (reason, time.time(), file_id))
        self.conn.execute("DELETE FROM chunks WHERE file_id=?", (file_id,))
        return windows, reason

    # ------------------------------------------------------------------------------------------- windows
    def windows_of(self, file_id: int) -> list[WindowRow]:
        return [WindowRow(*r) for r in self.conn.execute(
            "SELECT id, file_id, start, end FROM windows WHERE file_id=? ORDER BY start", (file_id,))]

    def window_ids(self, after: int | None = None) -> np.ndarray:
        """Every window id, ascending; ``after``: only those above it (ids are never reused: ``AUTOINCREMENT``, so
        these are the windows added since a window ``after`` was)."""
        if after is not None:  # a range of the table's own b-tree: only the new rows' pages
            cursor = self.conn.execute("SELECT id FROM windows WHERE id > ? ORDER BY id", (int(after),))
            return np.fromiter((r[0] for r in cursor), dtype=np.int64)
        # Not ORDER BY id: that walks the table, whose pages hold every vector (2 KiB a window at 512-d); sqlite
        # reads all ids from the file index instead, a fraction of the pages (100,000 windows: 139 → 25 ms, by hand)
        ids = np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM windows")), dtype=np.int64)
        ids.sort()
        return ids

    def window_span(self) -> tuple[int, int]:
        """``(count, largest id)`` of the windows (``(0, 0)`` when there are none)."""
        count, top = self.conn.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM windows").fetchone()
        return int(count), int(top)

    def window_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM windows").fetchone()[0])

    def windows_by_ids(self, ids: Iterable[int]) -> dict[int, tuple[WindowRow, FileRow]]:
        ids = [int(i) for i in ids]
        out: dict[int, tuple[WindowRow, FileRow]] = {}
        for k in range(0, len(ids), 500):
            part = ids[k:k + 500]
            q = ",".join("?" * len(part))
            for r in self.conn.execute(
                    f"SELECT w.id, w.file_id, w.start, w.end, {', '.join('f.' + c.strip() for c in _FILE_COLS.split(','))} "
                    f"FROM windows w JOIN files f ON f.id = w.file_id WHERE w.id IN ({q})", part):
                out[r[0]] = (WindowRow(*r[:4]), FileRow(*r[4:]))
        return out

    def iter_vectors(self, ids: Iterable[int] | None = None, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids int64 [n], vectors float32 [n, E])`` chunks, all windows or only ``ids``."""
        if ids is None:
            cursor = self.conn.execute("SELECT id, embedding FROM windows ORDER BY id")
            rows = iter(lambda: cursor.fetchmany(chunk), [])
        else:
            ids = sorted(int(i) for i in ids)

            def gen():
                for k in range(0, len(ids), 500):
                    part = ids[k:k + 500]
                    yield self.conn.execute(
                        f"SELECT id, embedding FROM windows WHERE id IN ({','.join('?' * len(part))}) ORDER BY id",
                        part).fetchall()
            rows = gen()
        buf_ids, buf_vecs = [], []
        for batch in rows:
            for wid, blob in batch:
                buf_ids.append(wid)
                buf_vecs.append(np.frombuffer(blob, dtype=np.float32))
            if len(buf_ids) >= chunk:
                yield np.asarray(buf_ids, np.int64), np.stack(buf_vecs)
                buf_ids, buf_vecs = [], []
        if buf_ids:
            yield np.asarray(buf_ids, np.int64), np.stack(buf_vecs)

    def vectors_of(self, file_id: int) -> np.ndarray:
        rows = self.conn.execute("SELECT embedding FROM windows WHERE file_id=? ORDER BY start", (file_id,)).fetchall()
        return np.stack([np.frombuffer(b, dtype=np.float32) for (b,) in rows]) if rows else np.zeros((0, 0), np.float32)

    # ------------------------------------------------------------------------------------- recording dates
    def without_recorded(self) -> list[FileRow]:
        """The indexed files (status ok) whose recording date was not read yet."""
        return [FileRow(*r) for r in self.conn.execute(
            f"SELECT {', '.join('f.' + c.strip() for c in _FILE_COLS.split(','))} FROM files f "
            "LEFT JOIN recorded r ON r.file_id = f.id WHERE f.status='ok' AND r.file_id IS NULL ORDER BY f.id")]

    def set_recorded(self, file_id: int, when: float, source: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO recorded(file_id, time, source) VALUES (?, ?, ?)",
                          (file_id, float(when), source))

    def recorded_of(self, file_ids: Iterable[int]) -> dict[int, tuple[float, str]]:
        """``{file_id: (seconds since the epoch, source)}`` for those of ``file_ids`` whose date is known."""
        ids = sorted({int(i) for i in file_ids})
        out = {}
        for k in range(0, len(ids), 500):
            part = ids[k:k + 500]
            out.update({r[0]: (r[1], r[2]) for r in self.conn.execute(
                f"SELECT file_id, time, source FROM recorded WHERE file_id IN ({','.join('?' * len(part))})", part)})
        return out

    # ------------------------------------------------------------------------------------------------ pictures
    def pictures(self) -> dict[str, tuple[int, float, bool]]:
        """``{path: (size, mtime, holds a video)}`` of the pictures the last scan read."""
        return {path: (size, mtime, bool(video))
                for path, size, mtime, video in self.conn.execute("SELECT path, size, mtime, video FROM pictures")}

    def keep_pictures(self, found: Iterable[tuple[str, int, float, bool]], forgotten: Iterable[str] = ()) -> None:
        """Forget the pictures at ``forgotten`` (those under the folders a scan read again), then keep ``found``:
        ``(path, size, mtime, holds a video)`` of each picture that scan read."""
        self.conn.executemany("DELETE FROM pictures WHERE path=?", ((p,) for p in forgotten))
        self.conn.executemany("INSERT OR REPLACE INTO pictures(path, size, mtime, video) VALUES (?, ?, ?, ?)",
                              ((p, size, mtime, int(video)) for p, size, mtime, video in found))

    def window_ids_matching(self, path_glob: str | None = None, min_duration: float | None = None,
                            max_duration: float | None = None, since: float | None = None,
                            until: float | None = None) -> np.ndarray:
        """Ids of the windows whose file matches the filters (path glob in sqlite GLOB syntax; recorded at or after
        ``since`` and before ``until``, seconds since the epoch: a file whose date is not known yet matches
        neither)."""
        conditions = [("f.path GLOB ?", path_glob or None), ("f.duration >= ?", min_duration),
                      ("f.duration <= ?", max_duration),
                      ("f.id IN (SELECT file_id FROM recorded WHERE time >= ?)", since),
                      ("f.id IN (SELECT file_id FROM recorded WHERE time < ?)", until)]
        where = ["f.status='ok'"] + [sql for sql, value in conditions if value is not None]
        args = [value if isinstance(value, str) else float(value) for _, value in conditions if value is not None]
        rows = self.conn.execute(
            f"SELECT w.id FROM windows w JOIN files f ON f.id = w.file_id WHERE {' AND '.join(where)}", args)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def summary(self) -> dict:
        """What ``vtr index status`` shows: ``files``/``windows`` indexed, ``hours`` of video, ``roots`` (the folders
        scanned) and ``excluded`` (paths inside them left out), ``failed`` and ``partial`` as ``[(path, reason)]``,
        ``pending`` paths (left by an interrupted build), ``recorded``: how many videos have their recording date from
        their tags (``metadata``), their ``name``, their ``file``'s time, or none yet (``unknown``), and the
        ``first`` and ``last`` date (seconds since the epoch, None without any); ``last_indexed``: when the last
        video was indexed or failed (seconds since the epoch, None before any); ``pictures``: how many pictures the
        scans ``read`` (photos, GIFs, APNGs) and how many of them hold a video (``with_video``: motion photos and
        animations, indexed)."""
        counts = self.counts()
        seconds = self.conn.execute("SELECT COALESCE(SUM(duration), 0) FROM files WHERE status='ok'").fetchone()[0]
        by_source = dict(self.conn.execute(
            "SELECT r.source, COUNT(*) FROM recorded r JOIN files f ON f.id = r.file_id WHERE f.status='ok' "
            "GROUP BY r.source").fetchall())
        first, last = self.conn.execute(
            "SELECT MIN(r.time), MAX(r.time) FROM recorded r JOIN files f ON f.id = r.file_id "
            "WHERE f.status='ok'").fetchone()
        dates = {"metadata": by_source.get("metadata", 0), "name": by_source.get("name", 0),
                 "file": by_source.get("file", 0), "first": first, "last": last}
        dates["unknown"] = counts["ok"] - dates["metadata"] - dates["name"] - dates["file"]
        read, with_video = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(video), 0) FROM pictures").fetchone()
        return {"roots": self.get_meta("roots", []), "excluded": self.get_meta("excluded", []),
                "files": counts["ok"], "windows": counts["windows"], "recorded": dates,
                "failed": [(r.path, r.error) for r in self.files("failed")],
                "partial": [(r.path, r.error) for r in self.files("ok") if r.error],
                "pending": [r.path for r in self.files("pending")], "hours": seconds / 3600.0,
                "pictures": {"read": int(read), "with_video": int(with_video)},
                "last_indexed": self.conn.execute(
                    "SELECT MAX(indexed_at) FROM files WHERE status IN ('ok', 'failed')").fetchone()[0]}

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("ok", "failed", "pending")}
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM files GROUP BY status"):
            out[status] = n
        out["partial"] = int(self.conn.execute(
            "SELECT COUNT(*) FROM files WHERE status='ok' AND error IS NOT NULL").fetchone()[0])
        out["windows"] = self.window_count()
        return out
