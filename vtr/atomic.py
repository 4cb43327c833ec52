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
import stat
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

    The finished file has the permissions ``open()`` would give it: an overwritten file keeps its own, a new one
    gets 0o666 less the umask. Some writers create their file 0o600 whatever the umask (safetensors >= 0.8 writes
    through a private temporary file: safetensors/safetensors#782), which made a model folder unreadable to the
    other users of a lab server or to a container's non-root user.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        _give_mode(tmp, path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | os.PathLike, pattern: str = "*") -> None:
    """Remove the temporaries of :func:`atomic_path` (names ``pattern`` + ``.<pid>-<thread>.tmp``) under ``folder``
    whose writer process is gone (killed while writing: a shard is often gigabytes). Those of a process still
    running, or of another user's, are left."""
    for tmp in Path(folder).glob(f"{pattern}.*-*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError):  # not one of these names, or another user's process
            continue


def _give_mode(tmp: Path, path: Path) -> None:
    """chmod ``tmp`` (a file) to ``path``'s mode if it exists, else to what a new file gets under the umask."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()
        if tmp.is_file() and stat.S_IMODE(tmp.stat().st_mode) != mode:
            os.chmod(tmp, mode)
    except OSError:  # a file system without permission bits (some network or FAT mounts): keep what was written
        pass


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can only be read by
    setting it, which would race with threads that create files meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent))
