"""Filtered search (a folder, a duration, recording dates): the allowed windows scored from the catalog's vectors,
as every filtered search did, against the store filtering them itself (``VectorStore.search_allowed_exactly``: Flat,
and IVF…,Flat with every list probed), side by side on one catalog. Both are exact: the bench checks that they
return the same windows.

A catalog of ``--windows`` windows (512-d unit vectors, 50 per file, one recording date a day), a Flat store and
the IVF store ``choose_factory`` picks for that many (above 50,000; for fewer, the one it picks for 50,000), both
holding the same vectors. Filters that keep all,
half and a twentieth of the windows, by date. p50 of ``--repeats`` queries, one at a time; machine load reported.

    python -m bench.filtered_search                     # 100,000 windows
    python -m bench.filtered_search --windows 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_FILE = 50
DIM = 512
DAY = 86400.0
START = 1.6e9


def make_catalog(path, n_windows: int, seed: int = 0):
    """A catalog of ``n_windows`` random unit vectors, ``PER_FILE`` to a file, file ``f`` recorded on day ``f``."""
    from index.catalog import Catalog

    catalog = Catalog(path)
    rng = np.random.default_rng(seed)
    meta = {"duration": 8.0 * PER_FILE, "fps": 25.0, "width": 1280, "height": 720}
    with catalog.transaction():
        for f in range((n_windows + PER_FILE - 1) // PER_FILE):
            n = min(PER_FILE, n_windows - f * PER_FILE)
            vecs = rng.standard_normal((n, DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            fid = catalog.upsert_pending(f"/videos/{f:06d}.mp4", 1000 + f, 0.0, f"hash{f}")
            catalog.finish_file(fid, meta, [(8.0 * i, 8.0 * i + 8.0) for i in range(n)], vecs)
            catalog.set_recorded(fid, START + f * DAY, "metadata")
    return catalog


def catalog_scored(catalog, q, k, allowed):
    """The way every filtered search went before: each allowed window's vector read from the catalog, scored."""
    ids, scores = [], []
    for chunk_ids, vecs in catalog.iter_vectors(allowed):
        ids.append(chunk_ids)
        scores.append(vecs @ q)
    ids, scores = np.concatenate(ids), np.concatenate(scores)
    top = np.argsort(-scores, kind="stable")[:k]
    return scores[top], ids[top]


def p50_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    from bench import write_results
    from index.store import EXACT_MAX, VectorStore, choose_factory

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "filtered_search.json"))
    args = p.parse_args(argv)

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="vtr_filtered_"))
    catalog = make_catalog(work / "catalog.sqlite", args.windows)
    chunks = lambda: catalog.iter_vectors()  # noqa: E731
    nlist = int(choose_factory(max(args.windows, EXACT_MAX))[3:].split(",")[0])
    ivf_factory = f"IVF{min(nlist, max(1, args.windows // 40))},Flat"  # a small run: 40 training vectors a list
    stores = {"Flat": VectorStore.build(DIM, chunks, args.windows, "Flat"),
              ivf_factory: VectorStore.build(DIM, chunks, args.windows, ivf_factory)}
    q = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    days = (args.windows + PER_FILE - 1) // PER_FILE
    rows = []
    for keep in (1.0, 0.5, 0.05):
        since = START + (1 - keep) * days * DAY - 1
        allowed = catalog.window_ids_matching(since=since)
        _, expected = catalog_scored(catalog, q, args.k, allowed)
        row = {"kept": len(allowed), "catalog_ms": p50_ms(lambda: catalog_scored(catalog, q, args.k, allowed),
                                                          args.repeats),
               "ids_ms": p50_ms(lambda: catalog.window_ids_matching(since=since), args.repeats)}
        for name, store in stores.items():
            _, got = store.search_allowed_exactly(q[None], args.k, allowed)
            if list(got[0]) != list(expected):
                raise SystemExit(f"bench.filtered_search: {name} returned other windows than the catalog's scores")
            row[f"{name}_ms"] = p50_ms(lambda s=store: s.search_allowed_exactly(q[None], args.k, allowed),
                                       args.repeats)
        rows.append(row)
    load_after = os.getloadavg()
    catalog.close()

    print(f"{args.windows} windows, k={args.k}, p50 of {args.repeats}; load {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {os.cpu_count()} CPUs")
    print(f"| windows kept | allowed ids (SQL) ms | catalog scored ms | Flat ms | {ivf_factory} ms | catalog / Flat |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kept']} | {r['ids_ms']:.1f} | {r['catalog_ms']:.1f} | {r['Flat_ms']:.1f} | "
              f"{r[ivf_factory + '_ms']:.1f} | {r['catalog_ms'] / r['Flat_ms']:.0f}x |")
    print(f"(every row: the same {args.k} windows from all three)")
    write_results(args.out, {"machine": {"cpus": os.cpu_count(), "load_before": load_before,
                                         "load_after": load_after},
                             "windows": args.windows, "k": args.k, "ivf": ivf_factory, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
