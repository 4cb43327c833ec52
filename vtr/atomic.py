"""Write-then-rename: a reader (or a crash) never sees a half-written file.

Every file vtr writes for another stage or a later run (checkpoints, model folders, index manifest and
thumbnails, shards, eval caches and results, previews) goes through here::

    with atomic_path(out / "vectors.faiss") as tmp:   # any writer that takes a path
        faiss.write_index(index, str(tmp))
    write_json_atomic(out / "manifest.json", manifest)
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it is renamed over ``path``,
    otherwise removed (``path`` keeps its old content).

    The temporary name ends in ``.tmp``, so a glob for the finished files (``*.tar``, ``*.json``) never picks up
    one left by a killed process; writers that pick a format from the suffix need it given (PyAV's ``format=``,
    ``np.save`` to an open file). It carries the process and thread ids: concurrent writers never share one.
    fsync: flush the file to disk before the rename (for files a resumed run trusts after a power loss).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent))
