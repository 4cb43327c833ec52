"""How videos are FOUND: index folders of personal video collections, and search over them.

    from index import build_index, VideoIndex
    build_index(["~/Videos"], "~/videos.idx")                 # create or update incrementally
    with VideoIndex("~/videos.idx") as idx:
        for seg in idx.search("a dog catches a frisbee", k=5):
            print(seg.path, seg.start, seg.end, seg.score)

Modules: :mod:`index.layout` (the folder's files and manifest), :mod:`index.scan` (finding files),
:mod:`index.windows` (windowing), :mod:`index.decode` (decoding workers), :mod:`index.embed` (decoded windows →
vectors), :mod:`index.catalog` (sqlite), :mod:`index.store` (FAISS), :mod:`index.build` (build/update),
:mod:`index.search`, :mod:`index.watch` (updates as videos arrive), :mod:`index.dates` (recording dates),
:mod:`index.distributed` (``torchrun -m index.distributed``), :mod:`index.commands` (CLI verbs).
Heavy imports (torch, faiss) happen inside the functions that need them.
"""


from __future__ import annotations

import vtr  # noqa: F401  (first: sets OpenMP's wait policy before torch loads)

__all__ = ["build_index", "update_index", "remove_from_index", "index_status", "check_writable", "check_creatable",
           "VideoIndex", "Segment", "search", "date_filters", "dates_summary", "pictures_summary", "local_day",
           "local_time", "Settling", "watch_index", "timed_by_count"]


def build_index(dirs, index, **kwargs):
    """See :func:`index.build.build_index`."""
    from index.build import build_index as _build

    return _build(dirs, index, **kwargs)


def update_index(index, **kwargs):
    """Re-scan the folders recorded in the index; see :func:`index.build.build_index`."""
    from index.build import build_index as _build

    return _build(None, index, **kwargs)


def remove_from_index(paths, index):
    """Take folders or videos out of the index (the files stay); see :func:`index.build.remove_from_index`."""
    from index.build import remove_from_index as _remove

    return _remove(paths, index)


def index_status(index):
    from index.build import index_status as _status

    return _status(index)


def check_creatable(index):
    """VtrError unless a new index could be created at ``index`` (see :func:`index.build.check_creatable`)."""
    from pathlib import Path

    from index.build import check_creatable as _check

    _check(Path(index))


def check_writable(index):
    """VtrError unless this process may change the index (see :func:`index.build.read_only`)."""
    from pathlib import Path

    from index.build import check_writable as _check

    _check(Path(index))


def timed_by_count(index, path) -> bool | None:
    """Whether the index found the timestamps of its video at ``path`` jumping (or none: a raw stream), so that its
    frames are timed by count (:meth:`index.catalog.Catalog.timed_by_count`); None where it does not know (or there
    is no index)."""
    from pathlib import Path

    from index.catalog import Catalog
    from index.layout import CATALOG

    try:  # read-only: a catalog opened to be written waits for a build's transaction (a preview must not)
        catalog = Catalog(Path(index) / CATALOG, readonly=True)
    except Exception:  # noqa: BLE001 - no readable catalog: not known
        return None
    try:
        return catalog.timed_by_count(str(path))
    finally:
        catalog.close()


def search(index, query, k=10, **kwargs):
    from index.search import search as _search

    return _search(index, query, k=k, **kwargs)


def __getattr__(name):
    if name in ("VideoIndex", "Segment"):
        import index.search as _s

        return getattr(_s, name)
    if name in ("Settling", "watch_index", "check_interval"):  # keeping an index up to date (index.watch)
        import index.watch as _w

        return getattr(_w, name)
    if name in ("date_filters", "dates_summary", "local_day", "local_time"):  # dates as people write them (index.dates)
        import index.dates as _d

        return getattr(_d, name)
    if name == "pictures_summary":  # what the scan read of photos and GIFs (index.scan)
        import index.scan as _scan

        return _scan.pictures_summary
    raise AttributeError(name)
