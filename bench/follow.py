"""What a search pays to follow another process's commits (``VideoIndex._follow``): an open index (the app, a
program) searched while a build in another process (``vtr index update --watch``, a cron update) commits windows
chunk by chunk, or deletes a video.

A Flat index folder of ``--windows`` windows (512-d unit vectors, 50 per file, ``bench.filtered_search``'s catalog)
opened once; a second catalog connection stands for the other process. Timed, one search at a time (p50 of
``--repeats``): a search when nothing changed; after the other connection added one file's 50 windows; after it
deleted one file. Each change is caught up three ways, side by side: every window id compared as the catch-up
was first written (``first written``: the ids read in the table's order, ``np.setdiff1d``), every id compared now
(``whole``: the ids read from the file index, sorted arrays compared by ``searchsorted``), and the count and the
ids above the last one seen (``counted``, ids are never reused). All must leave the store holding exactly the
catalog's windows; the bench checks it.

    python -m bench.follow                      # 100,000 windows
    python -m bench.follow --windows 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402
from bench.filtered_search import DIM, PER_FILE, make_catalog  # noqa: E402


def make_index(folder: Path, n_windows: int) -> None:
    from index.layout import CATALOG, MANIFEST, VECTORS
    from index.store import VectorStore

    catalog = make_catalog(folder / CATALOG, n_windows)
    VectorStore.build(DIM, lambda: catalog.iter_vectors(), n_windows, "Flat").save(folder / VECTORS)
    catalog.close()
    (folder / MANIFEST).write_text(json.dumps({"format": "vtr-index", "model": "none", "weights_checksum": "",
                                               "num_frames": 8, "img_size": 224, "embed_dim": DIM,
                                               "window_s": 8.0, "stride_s": 4.0, "index_factory": "Flat"}))


def add_file(other, n: int, rng) -> int:
    vecs = rng.standard_normal((PER_FILE, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    meta = {"duration": 8.0 * PER_FILE, "fps": 25.0, "width": 1280, "height": 720}
    with other.transaction():
        fid = other.upsert_pending(f"/videos/new{n:06d}.mp4", 10 ** 6 + n, 0.0, f"new{n}")
        other.finish_file(fid, meta, [(8.0 * i, 8.0 * i + 8.0) for i in range(PER_FILE)], vecs)
    return fid


def first_written_catch_up(vi) -> bool:
    """``VideoIndex._catch_up`` as first written (1709542): every id read in the table's order (the pages of every
    vector), ``np.setdiff1d`` both ways."""
    ids = np.fromiter((r[0] for r in vi.catalog.conn.execute("SELECT id FROM windows ORDER BY id")), np.int64)
    present = vi.store.ids()
    if len(present) == len(ids) and np.array_equal(np.sort(present), ids):
        return False
    vi.store.remove(np.setdiff1d(present, ids))
    for chunk_ids, vecs in vi.catalog.iter_vectors(np.setdiff1d(ids, vi.store.ids())):
        vi.store.add(chunk_ids, vecs)
    return True


WAYS = ("first written", "whole", "counted")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "follow.json"))
    args = ap.parse_args(argv)

    from index.catalog import Catalog
    from index.layout import CATALOG
    from index.search import VideoIndex

    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(1)
    q = rng.standard_normal(DIM).astype(np.float32)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_index(folder, args.windows)
        other = Catalog(folder / CATALOG)
        vi = VideoIndex(str(folder), gpu=False)
        vi.search(q, k=10)

        def timed(name, way="counted"):
            if way == "first written":
                vi._catch_up = lambda whole=False: first_written_catch_up(vi)
            elif way == "whole":
                vi._top = None  # forgets the largest id seen: the catch-up compares every id
            t = time.perf_counter()
            vi.search(q, k=10)
            times.setdefault(name, []).append(1e3 * (time.perf_counter() - t))
            if way == "first written":
                del vi._catch_up  # the class's own again; it does not know the largest id any more
                vi._top = None
            held, catalog = np.sort(vi.store.ids()), other.window_ids()
            assert np.array_equal(held, catalog), f"{name}: the store does not hold the catalog's windows"

        added = []
        for r in range(args.repeats):
            timed("nothing changed")
            for way in WAYS:
                added.append(add_file(other, len(added), rng))
                timed(f"one file added ({PER_FILE} windows), {way}", way)
                with other.transaction():
                    other.delete_file(added.pop(0))
                timed(f"one file deleted, {way}", way)
        vi.close()
        other.close()

    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"{args.windows} windows, p50 of {args.repeats}; {load}")
    rows = [(name, statistics.median(ms), min(ms)) for name, ms in times.items()]
    width = max(len(name) for name, _, _ in rows)
    print(f"\n| search (vector query, k=10) | p50 ms | min ms |\n|{'-' * (width + 2)}|---:|---:|")
    for name, p50, best in rows:
        print(f"| {name:<{width}} | {p50:.2f} | {best:.2f} |")
    ratio = {what: statistics.median(times[f"{what}, first written"]) / statistics.median(times[f"{what}, counted"])
             for what in (f"one file added ({PER_FILE} windows)", "one file deleted")}
    for what, x in ratio.items():
        print(f"{what}: first written / counted = {x:.1f}x")
    write_results(args.out, {"windows": args.windows, "repeats": args.repeats, "load": load,
                             "ms": {name: ms for name, ms in times.items()}, "ratio_first_written_over_counted": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
