"""The evaluation's disk cache: named arrays of a fixed number of rows (``numpy`` memmaps, not RAM: MSRVTT's video
tokens are 1000 × 1568 × 576), filled a chunk of rows at a time, each chunk committed by an atomically renamed
marker after its rows are flushed, so an interrupted run resumes where it stopped and never recomputes a committed
batch. A cache folder is keyed (:func:`cache_key`) by the model's weights, the dataset, the annotation file's
sha256, the frame count, the text length, the precision and the cache dtype."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from vtr.atomic import atomic_path, write_bytes_atomic
from vtr.errors import VtrError


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
