"""The FAISS store: ``vectors.faiss``, inner-product search over window vectors keyed by catalog window ids.

Index types are faiss factory strings; the ids are the catalog's window ids (IVF indexes store them natively;
other types are wrapped in ``IDMap2``, because ``IDMap`` cannot remove from IVF lists without corrupting its map):

- fewer than ``EXACT_MAX`` (50,000) vectors: ``Flat`` (exact search; at 100k x 512 a query is still ~10 ms);
- more: ``IVF{nlist},Flat`` with ``nlist`` the power of two nearest ``4 * sqrt(n)`` (4096 at 1M), trained on a
  sample of at most ``40 * nlist`` vectors (10 k-means iterations), searched with ``nprobe`` (default ``DEFAULT_NPROBE``);
- any factory string on request (``HNSW32,Flat``, ``IVF1024,SQ8``...). HNSW cannot remove vectors: a deletion
  rebuilds it from the catalog.

The file on disk is always the CPU index (``faiss.write_index`` to a temporary name, then ``os.replace``), so it
loads anywhere. :meth:`VectorStore.to_gpu` copies it to a GPU when faiss was built with GPU support and a GPU is
visible (faiss-gpu); everything works the same on faiss-cpu.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from vtr.atomic import atomic_path

logger = logging.getLogger(__name__)

EXACT_MAX = 50_000
DEFAULT_NPROBE = 32
DEFAULT_EF_SEARCH = 256
TRAIN_PER_LIST = 40  # faiss warns below 39 training points per list


SMALL_BATCH = 20  # faiss switches flat search to BLAS from 20 queries on
GPU_MAX_K = 2048  # faiss's GPU indexes return at most this many neighbours per query; beyond, the CPU index answers


def _faiss():
    try:
        import faiss
    except ImportError as e:
        from vtr.extras import not_installed

        raise not_installed("faiss") from e
    return faiss


def choose_factory(n: int) -> str:
    """Factory string (without the IDMap2 prefix) for a collection of ``n`` vectors."""
    if n < EXACT_MAX:
        return "Flat"
    nlist = 2 ** int(round(math.log2(4 * math.sqrt(n))))
    return f"IVF{max(nlist, 256)},Flat"


def gpu_available() -> bool:
    """True when this faiss has GPU support (faiss-gpu) and sees at least one GPU."""
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorStore:
    """An ``IndexIDMap2`` over a factory-built index, with inner-product metric."""

    def __init__(self, index, factory: str):
        self.index = index  # the CPU IndexIDMap2
        self.factory = factory
        self._gpu = None  # (gpu inner index, id array) when moved to a GPU
        self.set_search_params()

    # ----------------------------------------------------------------------------------------- creation
    @classmethod
    def empty(cls, dim: int, factory: str = "Flat") -> "VectorStore":
        faiss = _faiss()
        prefix = "" if factory.startswith("IVF") else "IDMap2,"
        return cls(faiss.index_factory(int(dim), prefix + factory, faiss.METRIC_INNER_PRODUCT), factory)

    @property
    def _idmap(self) -> bool:
        return isinstance(self.index, _faiss().IndexIDMap2)

    @classmethod
    def build(cls, dim: int, chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], n: int,
              factory: str | None = None) -> "VectorStore":
        """Build from ``chunks()`` (a callable returning an iterator of ``(ids, vectors)``; called twice when the
        index needs training: once to draw the training sample, once to add), ``n`` vectors in all."""
        factory = factory or choose_factory(n)
        store = cls.empty(dim, factory)
        if not store.index.is_trained:
            store.train(_training_sample(chunks(), store.training_size(n)))
        for ids, vecs in chunks():
            store.add(ids, vecs)
        return store

    def training_size(self, n: int) -> int:
        ivf = self._ivf()
        per = TRAIN_PER_LIST * ivf.nlist if ivf is not None else 100_000
        return min(n, per)

    def train(self, sample: np.ndarray) -> None:
        ivf = self._ivf()
        if ivf is not None and len(sample) < ivf.nlist:
            raise ValueError(f"{self.factory} needs at least {ivf.nlist} training vectors, got {len(sample)}")
        if ivf is not None:
            ivf.cp.niter = 10  # k-means iterations: 10 reach the recall of the default 25 at a fraction of the time
        self.index.train(np.ascontiguousarray(sample, dtype=np.float32))

    # ------------------------------------------------------------------------------------------ editing
    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """All stored ids (any order)."""
        faiss = _faiss()
        if self._idmap:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        ivf = self._ivf()
        invlists = ivf.invlists
        parts = [np.zeros(0, np.int64)]
        for lst in range(ivf.nlist):
            size = invlists.list_size(lst)
            if size:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).astype(np.int64).copy())
        return np.concatenate(parts)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        self._gpu = None

    def hold(self, ids: np.ndarray, vectors: Callable[[np.ndarray], Iterator[tuple[np.ndarray, np.ndarray]]]) -> bool:
        """Make the store hold exactly ``ids`` (sorted ascending, unique): the others removed, the missing ones added
        from ``vectors(missing)`` (chunks of ``(ids, vectors)``, as :meth:`index.catalog.Catalog.iter_vectors`
        gives them). Returns whether it changed. Raises RuntimeError when some must go from an index that cannot
        remove (HNSW)."""
        present = np.sort(self.ids())
        if len(present) == len(ids) and np.array_equal(present, ids):
            return False
        self.remove(not_in(present, ids))
        for chunk_ids, vecs in vectors(not_in(ids, present)):
            self.add(chunk_ids, vecs)
        return True

    def remove(self, ids: Iterable[int]) -> int:
        """Remove vectors by id; raises RuntimeError for index types that cannot remove (HNSW)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids) == 0:
            return 0
        self._gpu = None
        return int(self.index.remove_ids(ids))

    def _ivf(self):
        faiss = _faiss()
        try:
            return faiss.extract_index_ivf(self.index)
        except RuntimeError:
            return None

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Search breadth of approximate indexes: IVF ``nprobe``, HNSW ``efSearch`` (no effect on Flat)."""
        faiss = _faiss()
        ps = faiss.ParameterSpace()
        if self._ivf() is not None:
            ps.set_index_parameter(self.index, "nprobe", int(nprobe or DEFAULT_NPROBE))
        if "HNSW" in self.factory:
            ps.set_index_parameter(self.index, "efSearch", int(ef_search or DEFAULT_EF_SEARCH))
        self._gpu = None

    # ------------------------------------------------------------------------------------------ searching
    def search_allowed_exactly(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray):
        """Exact top ``k`` among ``allowed_ids`` (``(scores [Q, k], ids [Q, k])``, missing results id -1) for the
        stores that keep their vectors as they are: Flat (the allowed ids scanned) and IVF…,Flat (every list
        probed, so no allowed vector is missed); None for the others (HNSW, PQ, SQ), whose filtered search is
        approximate. On CPU. A date or folder filter keeping 100,000 windows: 20 ms here against 371 ms for
        scoring them read from the catalog (``python -m bench.filtered_search``, bench/README.md)."""
        faiss = _faiss()
        inner = faiss.downcast_index(self.index.index) if self._idmap else faiss.downcast_index(self.index)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
        if isinstance(inner, faiss.IndexFlat):
            params = faiss.SearchParameters(sel=sel)
        elif isinstance(inner, faiss.IndexIVFFlat) and not self._idmap:
            params = faiss.SearchParametersIVF(sel=sel, nprobe=int(inner.nlist))
        else:
            return None
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.index.search(q, int(k), params=params)

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None):
        """``queries [Q, E]`` → ``(scores [Q, k], ids [Q, k])``; missing results are id -1.

        allowed_ids: only these ids may be returned (faiss IDSelector; CPU only).
        """
        faiss = _faiss()
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = int(k)
        if allowed_ids is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            params = None
            ivf = self._ivf()
            if ivf is not None:
                params = faiss.SearchParametersIVF(sel=sel, nprobe=int(ivf.nprobe))
            elif "HNSW" in self.factory and self._idmap:
                hnsw = faiss.downcast_index(self.index.index)
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=int(hnsw.hnsw.efSearch))
            else:
                params = faiss.SearchParameters(sel=sel)
            return self.index.search(q, k, params=params)
        if self._gpu is not None and k <= GPU_MAX_K:
            inner, id_map = self._gpu
            scores, pos = inner.search(q, k)
            if id_map is None:
                return scores, pos
            ids = np.where(pos >= 0, id_map[np.clip(pos, 0, None)], -1)
            return scores, ids
        if self.factory == "Flat" and len(q) < SMALL_BATCH:
            # A few queries over a flat index: OpenMP start-up costs more than a second thread saves (measured on
            # 2 cores, 100k x 512: p50 12.9 ms on one thread vs 19 ms on two). The OpenMP setting is per calling
            # thread, so concurrent searches from other threads keep theirs.
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                return self.index.search(q, k)
            finally:
                faiss.omp_set_num_threads(threads)
        return self.index.search(q, k)

    def to_gpu(self, device: int = 0) -> bool:
        """Search on a GPU from now on (edits drop back to CPU). Returns False, logging why, when not possible."""
        faiss = _faiss()
        if not gpu_available():
            return False
        try:
            res = faiss.StandardGpuResources()
            cpu = faiss.downcast_index(self.index.index) if self._idmap else self.index
            inner = faiss.index_cpu_to_gpu(res, device, cpu)
        except Exception as e:  # e.g. HNSW has no GPU implementation
            logger.warning("cannot move %s to the GPU (%s); searching on CPU", self.factory, e)
            return False
        self._gpu = (inner, self.ids() if self._idmap else None)
        self._gpu_res = res  # the resources must outlive the index
        return True

    # ---------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the CPU index atomically (temporary file + rename)."""
        faiss = _faiss()
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))

    def nprobe(self) -> int | None:
        ivf = self._ivf()
        return int(ivf.nprobe) if ivf is not None else None

    @classmethod
    def load(cls, path: str | os.PathLike, factory: str) -> "VectorStore":
        faiss = _faiss()
        return cls(faiss.read_index(str(path)), factory)


def not_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ids of sorted ``a`` that sorted ``b`` lacks (``np.setdiff1d`` without its hashing of both: 100,000 ids
    in a few ms instead of 40)."""
    if len(b) == 0:
        return a
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return a[b[at] != a]


def _training_sample(chunks: Iterator[tuple[np.ndarray, np.ndarray]], size: int, seed: int = 0) -> np.ndarray:
    """Reservoir-free sampling: keep a random ``size``-subset of the first up to ``4 * size`` vectors."""
    rng = np.random.default_rng(seed)
    got, total = [], 0
    for _, vecs in chunks:
        got.append(vecs)
        total += len(vecs)
        if total >= 4 * size:
            break
    allv = np.concatenate(got) if got else np.zeros((0, 0), np.float32)
    if len(allv) > size:
        allv = allv[rng.choice(len(allv), size, replace=False)]
    return allv
