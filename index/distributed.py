"""Embedding a collection on many processes / machines, then merging into one index folder.

    torchrun --nnodes N --nproc-per-node G -m index.distributed DIR... --out SHARDS --model NAME [--index IDX]
    python -m index.distributed merge SHARDS --index IDX [--factory "IVF4096,Flat"]

(``-m index.embed`` runs this too: the name the command had before the embedding loop moved into that module.)

Every rank scans the same folders (sorted, so every rank sees the same list) and takes files ``rank::world``.
Each rank writes its own shard into ``SHARDS`` (clip-retrieval's layout: embeddings + metadata, each stage
re-runnable alone)::

    SHARDS/info.json                 the index manifest the shards were made with (written by rank 0)
    SHARDS/shard-00003.npy           float32 [n, E]: rank 3's window vectors, in metadata order
    SHARDS/shard-00003.jsonl         one line per window: path, size, mtime, hash, duration, fps, width, height,
                                     start, end, thumbnail (base64 JPEG)
    SHARDS/failed-00003.jsonl        one line per failed file: path, size, mtime, reason

With ``--index``, rank 0 merges after a barrier: the catalog gets every file and window, and ``vectors.faiss`` is
built from it (an IVF index is trained on a sample and filled chunk by chunk when the collection is large).
Each rank encodes on its own GPU when it has one (``cuda:LOCAL_RANK``). The process group is gloo's either way, with
a two-day timeout: it exchanges no tensors, and only waits at that barrier for the rank with the most video.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from index.build import check_writable, make_index_folder, read_recording_dates, sync_store
from index.catalog import Catalog, quick_hash
from index.decode import DecodeSettings, FileFailure
from index.embed import DEFAULT_MODEL, embed_files, load_model
from index.layout import CATALOG, manifest_for, write_manifest, write_thumbnail
from index.policies import DEFAULT_POLICY, POLICIES, check_policy
from index.scan import scan_folders
from index.windows import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S
from vtr.atomic import atomic_path, write_json_atomic, write_text_atomic
from vtr.errors import VtrError
from vtr.extras import require

logger = logging.getLogger(__name__)


def _rank_world() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def embed_shard(dirs: list[str], out: str, model=DEFAULT_MODEL, rank: int = 0, world: int = 1,
                window_s: float = DEFAULT_WINDOW_S, stride_s: float = DEFAULT_STRIDE_S, batch_size: int | None = None,
                workers: int | None = None, timeout_s: float = 120.0, device: str | None = None, progress: bool = True,
                precision: str | None = None, window_policy: str = DEFAULT_POLICY) -> dict:
    """Embed this rank's share of the files under ``dirs`` into ``out/shard-{rank}.{npy,jsonl}``, windows planned by
    ``window_policy`` (:mod:`index.policies`), as ``vtr index build`` does."""
    from vtr.precision import resolve_precision

    check_policy(window_policy)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    m = load_model(model, device)
    precision = resolve_precision(precision, next(m.parameters()).device, m)
    manifest = manifest_for(m, window_s, stride_s, precision, window_policy)
    if rank == 0:
        write_json_atomic(out_dir / "info.json", {**manifest, "roots": [os.path.abspath(d) for d in dirs],
                                                  "world_size": world})
    scanned = scan_folders(dirs)
    mine = scanned[rank::world]
    settings = DecodeSettings(num_frames=manifest["num_frames"], img_size=manifest["img_size"], window_s=window_s,
                              stride_s=stride_s, antialias=manifest["antialias"], window_policy=window_policy)
    by_key = {i: f for i, f in enumerate(mine)}
    todo = [(i, f.path) for i, f in by_key.items() if not f.error]
    failed = [{"path": f.path, "size": f.size, "mtime": f.mtime, "reason": f.error} for f in mine if f.error]
    lines, vectors = [], []
    for item in embed_files(m, todo, settings, batch_size=batch_size, workers=workers, timeout_s=timeout_s,
                            progress=progress and rank == 0, precision=precision):
        f = by_key[item.key]
        if isinstance(item, FileFailure):
            failed.append({"path": f.path, "size": f.size, "mtime": f.mtime, "reason": item.reason})
            continue
        h = quick_hash(f.path)
        for k, (start, end) in enumerate(item.windows):
            thumb = item.thumbnails[k] if k < len(item.thumbnails) else b""
            lines.append({"path": f.path, "size": f.size, "mtime": f.mtime, "hash": h, **item.meta,
                          "start": start, "end": end, "thumbnail": base64.b64encode(thumb).decode()})
        vectors.append(item.vectors)
    stem = out_dir / f"shard-{rank:05d}"
    array = np.concatenate(vectors) if vectors else np.zeros((0, manifest["embed_dim"]), np.float32)
    with atomic_path(stem.with_suffix(".npy")) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array.astype(np.float32))
    _write_lines(stem.with_suffix(".jsonl"), lines)
    _write_lines(out_dir / f"failed-{rank:05d}.jsonl", failed)
    return {"rank": rank, "files": len(mine), "windows": len(lines), "failed": len(failed)}


def _write_lines(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def _read_lines(path: Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def merge_shards(shards: str, index: str, factory: str | None = None) -> dict:
    """Build a new index folder from the shards in ``shards`` (see the module docstring)."""
    shard_dir, index_dir = Path(shards), Path(index)
    info_path = shard_dir / "info.json"
    if not info_path.is_file():
        raise VtrError(f"{shard_dir} holds no shards (no info.json); run `torchrun ... -m index.distributed` first")
    info = json.loads(info_path.read_text())
    world = int(info.get("world_size", 1))
    missing = [r for r in range(world) if not (shard_dir / f"shard-{r:05d}.jsonl").is_file()]
    if missing:
        raise VtrError(f"{shard_dir}: shards of ranks {missing} are missing (did those ranks fail?)")
    require("faiss")
    make_index_folder(index_dir)
    check_writable(index_dir)
    if (index_dir / CATALOG).is_file():
        raise VtrError(f"{index_dir} already holds an index; merge into a new folder")
    roots = info.pop("roots", [])
    info.pop("world_size", None)
    manifest = dict(info)
    if factory:
        manifest["factory_override"] = factory
    write_manifest(index_dir, manifest)
    catalog = Catalog(index_dir / CATALOG)
    n_files = n_windows = n_failed = 0
    try:
        with catalog.transaction():
            catalog.set_meta("roots", roots)
        for rank in range(world):
            rows = _read_lines(shard_dir / f"shard-{rank:05d}.jsonl")
            vecs = np.load(shard_dir / f"shard-{rank:05d}.npy")
            groups: dict[str, list[int]] = {}
            for i, r in enumerate(rows):
                groups.setdefault(r["path"], []).append(i)
            for path, idx in groups.items():
                r = rows[idx[0]]
                with catalog.transaction():
                    fid = catalog.upsert_pending(path, r["size"], r["mtime"], r["hash"])
                    ids = catalog.finish_file(fid, r, [(rows[i]["start"], rows[i]["end"]) for i in idx], vecs[idx])
                    for wid, i in zip(ids, idx):
                        if rows[i]["thumbnail"]:
                            write_thumbnail(index_dir, wid, base64.b64decode(rows[i]["thumbnail"]))
                n_files += 1
                n_windows += len(idx)
            for r in _read_lines(shard_dir / f"failed-{rank:05d}.jsonl"):
                with catalog.transaction():
                    fid = catalog.upsert_pending(r["path"], r["size"], r["mtime"], None)
                    catalog.mark_failed(fid, r["reason"])
                n_failed += 1
        read_recording_dates(catalog)
        store = sync_store(catalog, index_dir, manifest)
    finally:
        catalog.close()
    return {"index": str(index_dir), "files": n_files, "windows": n_windows, "failed": n_failed,
            "factory": store.factory}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from vtr.cli import setup_logging

    setup_logging()
    if argv and argv[0] == "merge":
        p = argparse.ArgumentParser(prog="python -m index.distributed merge")
        p.add_argument("shards")
        p.add_argument("--index", required=True)
        p.add_argument("--factory", default=None)
        a = p.parse_args(argv[1:])
        try:
            print(json.dumps(merge_shards(a.shards, a.index, a.factory)))
        except VtrError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    p = argparse.ArgumentParser(prog="torchrun ... -m index.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+")
    p.add_argument("--out", required=True, help="shard folder")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--index", default=None, help="merge into this new index folder when every rank is done")
    p.add_argument("--factory", default=None)
    p.add_argument("--window-s", type=float, default=DEFAULT_WINDOW_S)
    p.add_argument("--stride-s", type=float, default=DEFAULT_STRIDE_S)
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per encoder batch (default: 4 on a CPU, 16 on a GPU)")
    p.add_argument("--workers", type=int, default=None,
                   help="decode processes per rank (default: 2, more while the encoder waits for them)")
    p.add_argument("--timeout-s", type=float, default=120.0)
    p.add_argument("--window-policy", default=DEFAULT_POLICY, choices=POLICIES,
                   help="shots (windows inside shots, static ones reuse a vector) or stride (index.policies)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="encoder precision (auto: bf16 on CUDA or a native-bf16 CPU where it measures faster, "
                        "else fp32)")
    a = p.parse_args(argv)
    rank, world, local_rank = _rank_world()
    import torch

    dist = None
    device = None
    if world > 1:
        import torch.distributed as dist

        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        else:
            device = "cpu"
        # The group only waits at the end, for the rank with the most video: gloo needs no GPU for that, and the
        # wait can be hours (files are split by name, not length), far past the 10 or 30 minutes of the defaults.
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))
    try:
        stats = embed_shard(a.dirs, a.out, a.model, rank, world, a.window_s, a.stride_s, a.batch_size, a.workers,
                            a.timeout_s, device, precision=a.precision, window_policy=a.window_policy)
        logger.info("rank %d: %s", rank, stats)
        if dist is not None:
            dist.barrier()
        if a.index and rank == 0:
            print(json.dumps(merge_shards(a.out, a.index, a.factory)))
    except VtrError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist is not None:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
