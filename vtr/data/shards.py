"""WebDataset shards for pretraining: a writer in the video2dataset layout and a resumable training reader.

**Layout** (what video2dataset writes, pretraining.md §4): ``{shard:05d}.tar`` holding samples keyed by a
9-digit ``__key__`` with ``key.mp4`` (video bytes, any container: ``.mp4/.webm/.mkv/.avi/.mov``),
``key.txt`` (caption) and ``key.json`` (metadata: caption, source file, duration, ...); images as
``key.jpg``/``key.png`` + ``key.txt`` + ``key.json``. A video with several captions is one sample: its ``.txt``
holds the first, its ``.json`` all of them (``captions``), and the reader takes one of them at each visit. Next
to each shard, ``{shard:05d}_stats.json``: ``{"shard", "count", "successes", "failed", "failures": [{"key",
"file", "reason"}]}``. Row ``i`` of the caption file gets key ``i`` and goes to shard ``i // per_shard`` (failed
rows leave gaps, as in video2dataset).

**Reader** (:func:`make_train_loader`): per rank, an endless stream of batches whose order is a pure function of
``(seed, rank, step)``, so a run resumed from a checkpoint sees exactly the batches it would have seen:

- The stream of a (rank, logical worker) pair is a sequence of *chunks*; chunk ``c`` reads ``shards_per_chunk``
  shards drawn with replacement (``resampled``: no rank ever runs out of data, and no shard split across nodes
  can make ranks hang) by an RNG seeded with ``(seed, rank, worker, c)``, interleaves them and passes them through
  a shuffle buffer seeded the same way.
- Each sample's frame sampling ("rand" segments) and crop/flip draw from an RNG seeded with the sample's position
  ``(seed, rank, worker, c, i)``; video is decoded from the sample's bytes (no temp file).
- Each batch carries the position after its last raw sample; :class:`TrainLoader` records the positions of the
  batches the training loop consumed (``state_dict()``), and a new loader started from that state replays only the
  current chunk's raw bytes (no decoding) to get back to the same place.
- Batches are built inside the DataLoader workers; batch ``s`` comes from logical worker ``s % W``, and a loader
  resumed at step ``S`` rotates its workers by ``S`` so the order is the same for any start step.
- A fixed epoch length (``steps_per_epoch``, like ``wds.with_epoch``) so every rank takes the same number of steps.
- A sample that fails to read or decode is skipped, logged and counted (``TrainLoader.num_corrupt``), never fatal.
- The DataLoader's workers live as long as the loader (one iterator across epochs, which yields the same batches
  as starting each epoch from the recorded positions). With ``decode_cache_mb`` they keep short clips decoded:
  a clip of at most ``CACHE_MAX_FRAME_RATIO`` × ``num_frames`` frames is decoded whole (uint8, source size) the
  first time it is read, while it fits in the rank's budget (split between its workers), and later reads of it
  sample their frames from memory instead of decoding: the same frames, as the decoder is deterministic. On a
  2-core machine the demo's decoding took as much time as its training step.

Images are 1-frame videos; a stream holds one modality (``"video"`` or ``"image"``) so batches stack; samples of
the other modality are skipped (not counted as corrupt). A ``key.gif`` (or ``.png``, ``.webp``, ...) of several frames
is a video (TGIF's clips are animated GIFs), one of a single frame an image.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import random
import signal
import time
from itertools import islice
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from vtr.atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from vtr.data.animation import is_animation
from vtr.data.extensions import ANIMATION_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vtr.errors import VtrError

logger = logging.getLogger(__name__)


def _fields(extensions, first: tuple) -> tuple:
    """``first``, then the other ``extensions`` without their dots, sorted."""
    return first + tuple(sorted(e.lstrip(".") for e in extensions if e.lstrip(".") not in first))


#: What a shard's sample may hold, as the field names of its media (the file's extension, lower case): every video and
#: photo file vtr reads (:mod:`vtr.data.extensions`), the video2dataset layout's first. An extension-less caption
#: row takes the first of these it finds.
VIDEO_EXTS = _fields(VIDEO_EXTENSIONS, first=("mp4", "webm", "mkv", "avi", "mov"))
IMAGE_EXTS = _fields(IMAGE_EXTENSIONS, first=("jpg", "jpeg", "png", "webp"))
#: Picture fields that hold a video when animated (an animated GIF, as TGIF's clips are): read as one, frames over time.
ANIMATION_FIELDS = frozenset(e.lstrip(".") for e in ANIMATION_EXTENSIONS)
MEDIA_COLUMNS = ("video", "videoid", "video_id", "path", "file", "filename", "image", "image_id")
CAPTION_COLUMNS = ("caption", "text", "name", "title")
CACHE_MAX_FRAME_RATIO = 4  # a clip is cached only when decoding all its frames is at most this many times the work


# ============================================================================================================
# Writer
# ============================================================================================================


def read_captions(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``.csv`` (with a header), ``.jsonl`` or ``.json`` caption file, as dicts. A ``.json`` file is a
    JSON list of objects: the annotation files of the reference code (UMT, VideoMamba: WebVid, CC3M, ...).

    Each row needs a media column (``video``, ``videoid``, ``path``, ``file``, ``filename``, ``image``, ...) and a
    caption column (``caption``, ``text``, ``name``, ``title``); other columns are kept as metadata. A row's
    caption may be a list of captions (the reference's files for MSRVTT, ActivityNet, COCO, ...): it keeps its
    non-empty strings (one becomes a plain caption), and the row becomes one sample that holds its media once.
    :func:`iter_captions` gives the same rows one at a time.
    """
    return list(iter_captions(path))


def iter_captions(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of :func:`read_captions`, read as they are used: a ``.csv`` or ``.jsonl`` file is never held in
    memory whole (held as dicts, WebVid-10M's rows took about 8 GB: 0.75 KB a row). A ``.json`` list is parsed
    whole, as JSON must be."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".csv", ".json"):
        raise VtrError(f"caption file must be .csv, .jsonl or .json (a JSON list, as the reference code's "
                       f"annotation files), got {path.name}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            if path.suffix == ".csv":
                yield from csv.DictReader(f)
                return
            if path.suffix == ".json":
                try:
                    rows = json.load(f)
                except json.JSONDecodeError as e:
                    raise VtrError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(rows, list):
                    raise VtrError(f"{path}: a .json caption file is a JSON list of objects (one per video or "
                                   f"image), not a JSON {type(rows).__name__}")
                yield from _caption_lists(rows)
                return
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise VtrError(f"{path}, line {number}: not a JSON object ({e.msg})") from None
                    yield from _caption_lists([row])
    except UnicodeDecodeError as e:
        raise VtrError(f"{path}: not UTF-8 text (byte {e.start}); save the caption file as UTF-8") from None


def _caption_lists(rows: list) -> list:
    """Rows whose caption column holds a list keep its non-empty strings: one becomes a plain caption, none ""
    (the row is skipped as one without a caption). Each such row is one sample with its media once, the reader
    picking a caption at each visit; one sample per caption held MSRVTT's training videos 20 times over, and
    repeated the row's other lists whole (an ActivityNet row's timestamps, which match its captions one to one)."""
    out = []
    for row in rows:
        column = next((c for c in CAPTION_COLUMNS if isinstance(row, dict) and row.get(c) not in (None, "")), None)
        if column is not None and isinstance(row[column], list):
            captions = [c for c in row[column] if isinstance(c, str) and c.strip()]
            row = {**row, column: captions if len(captions) > 1 else "".join(captions)}
        out.append(row)
    return out


def _captions(row: dict) -> list[str]:
    """The captions of a caption file's row (see :func:`_caption_lists`), [] when it has none."""
    for c in CAPTION_COLUMNS:
        value = row.get(c)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
        if value not in (None, "", []):
            return [str(value)]
    return []


def _pick(row: dict, columns: Sequence[str]) -> str | None:
    for c in columns:
        if row.get(c) not in (None, ""):
            return str(row[c])
    return None


def _resolve_media(videos_dir: Path, name: str) -> Path | None:
    """``name`` relative to ``videos_dir``; without an extension, the first ``name.<video/image ext>`` found."""
    p = Path(name) if os.path.isabs(name) else videos_dir / name
    if p.is_file():
        return p
    if not p.suffix:
        for ext in VIDEO_EXTS + IMAGE_EXTS:
            q = p.with_name(p.name + "." + ext)
            if q.is_file():
                return q
    return None


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes (jpg/png/webp) to uint8 [H, W, 3] RGB with PyAV (no PIL dependency), upright: a photo
    tagged with an EXIF orientation (a phone's portrait shot) is turned as a viewer shows it
    (:func:`vtr.data.image.read_image`)."""
    from vtr.data.image import read_image

    return read_image(data)


def _validate(data: bytes, ext: str, name: str) -> dict:
    """Open the media with the training reader; returns metadata or raises with the reason."""
    if ext in IMAGE_EXTS and not (ext in ANIMATION_FIELDS and is_animation(data)):
        img = decode_image(data)
        return {"height": int(img.shape[0]), "width": int(img.shape[1])}
    from vtr.data.video import open_video

    with open_video(data, name=name) as reader:
        if reader.num_frames < 1:
            raise ValueError("no frames")
        reader.get_frames([0, reader.num_frames - 1])  # decodes: a header-only file fails here
        return {"duration": round(reader.duration, 3), "num_frames": int(reader.num_frames),
                "fps": float(reader.fps), "height": int(reader.height), "width": int(reader.width)}


def write_shard(shard: int, rows: list[tuple[int, dict]], videos_dir: str | os.PathLike, out: str | os.PathLike,
                fingerprint: str | None = None, progress=None) -> dict:
    """Write shard ``shard`` from ``(row_index, row)`` pairs; returns (and writes) its stats, which keep
    ``fingerprint`` (:func:`rows_fingerprint`). progress: called after each row with the rows skipped so far."""
    import webdataset as wds

    videos_dir, out = Path(videos_dir), Path(out)
    start = time.time()
    failures, successes = [], 0
    with atomic_path(out / f"{shard:05d}.tar") as tmp, wds.TarWriter(str(tmp)) as sink:
        for index, row in rows:
            key = f"{index:09d}"
            media = _pick(row, MEDIA_COLUMNS)
            captions = _captions(row)
            try:
                if media is None:
                    raise ValueError(f"row has no media column {MEDIA_COLUMNS}")
                if not captions:
                    raise ValueError(f"row has no caption (an empty one, or no column {CAPTION_COLUMNS})")
                path = _resolve_media(videos_dir, media)
                if path is None:
                    raise FileNotFoundError(f"no such file: {media}")
                ext = path.suffix.lower().lstrip(".")
                if ext not in VIDEO_EXTS + IMAGE_EXTS:
                    raise ValueError(f"unsupported extension .{ext}")
                data = path.read_bytes()
                meta = _validate(data, ext, str(path))
            except Exception as e:  # noqa: BLE001 - any broken input is skipped and counted, never fatal
                reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
                failures.append({"key": key, "file": media, "reason": reason})
                logger.debug("skipping row %d (%s): %s", index, media, reason)  # summed up by make_shards
            else:
                extra = {k: v for k, v in row.items() if k not in MEDIA_COLUMNS and k not in CAPTION_COLUMNS}
                several = {"captions": captions} if len(captions) > 1 else {}
                meta = {"key": key, "caption": captions[0], **several, "file": media, **meta, **extra}
                sink.write({"__key__": key, ext: data, "txt": captions[0], "json": meta})
                successes += 1
            if progress is not None:
                progress(len(failures))
    stats = {"shard": shard, "count": len(rows), "successes": successes, "failed": len(failures),
             "failures": failures, "start_time": start, "end_time": time.time(), "fingerprint": fingerprint}
    write_json_atomic(out / f"{shard:05d}_stats.json", stats)  # after the tar: a shard with stats is whole
    return stats


def _make_shard(shard: int, rows: list[tuple[int, dict]], videos_dir: str, out: str, progress=None) -> tuple:
    """``(stats, kept)``: the stats of shard ``shard``, kept (True) when an earlier run wrote it whole from the same
    rows and files, else written now. The fingerprint is taken here, in the pool's processes, shard by shard: taken
    for every shard before the first was written, it stat'ed each row's file with nothing on the screen (1.9 s per
    100,000 rows on a local disk with a warm cache: over 3 minutes for WebVid-10M's 10.7 million, more on a share)."""
    fingerprint = rows_fingerprint(rows, Path(videos_dir))
    stats = _kept_stats(Path(out), shard, fingerprint)
    if stats is not None:
        return stats, True
    return write_shard(shard, rows, videos_dir, out, fingerprint, progress=progress), False


def _make_shard_star(args):
    return _make_shard(*args)


def rows_fingerprint(rows: list[tuple[int, dict]], videos_dir: Path) -> str:
    """What a shard is made of: its rows (index and every column), the media folder, and the size and time of each
    row's file (a file fixed, added or replaced changes it). A shard whose stats hold the same fingerprint is kept
    by the next ``make_shards`` into the same folder."""
    digest = hashlib.sha256(str(videos_dir.resolve()).encode())
    for index, row in rows:
        media = _pick(row, MEDIA_COLUMNS) if isinstance(row, dict) else None
        path = _resolve_media(videos_dir, media) if media else None
        try:
            st = path.stat() if path is not None else None
        except OSError:
            st = None
        digest.update(json.dumps([index, row, [st.st_size, st.st_mtime_ns] if st else None], sort_keys=True,
                                 default=str).encode())
    return digest.hexdigest()


def _kept_stats(out: Path, shard: int, fingerprint: str) -> dict | None:
    """The stats of shard ``shard`` under ``out`` when an earlier run wrote it whole from the same rows."""
    try:
        stats = json.loads((out / f"{shard:05d}_stats.json").read_text())
    except (OSError, ValueError):
        return None
    return stats if stats.get("fingerprint") == fingerprint and (out / f"{shard:05d}.tar").is_file() else None


def _ignore_interrupts() -> None:
    """A pool worker leaves Ctrl+C to the parent, which stops the pool (no traceback from every worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_shards(videos: str | os.PathLike, captions: str | os.PathLike, out: str | os.PathLike,
                per_shard: int = 1000, processes: int = 1, progress: bool = False) -> dict:
    """Write the caption file's rows into ``{shard:05d}.tar`` + ``{shard:05d}_stats.json`` under ``out``.

    A shard that an earlier run (one stopped by Ctrl+C, a crash) wrote whole from the same rows and files is kept
    (:func:`rows_fingerprint`), so running the command again goes on where it stopped. Returns the totals
    ``{"shards", "count", "successes", "failed"}`` (also written to ``out/stats.json``) and ``"kept"``, the shards
    kept. progress: a bar over the rows.
    """
    if per_shard < 1 or processes < 1:
        raise VtrError(f"per_shard (--per-shard) and processes (--processes) must be at least 1, not {per_shard} and "
                       f"{processes}")
    # A first pass counts the rows (the bar's total, the shards' number) and finds a usable one, without keeping
    # them: a caption file that cannot make a sample, or a broken line anywhere, is said before anything is written.
    total_rows, usable, columns = 0, False, set()
    for row in iter_captions(captions):
        total_rows += 1
        if not usable and isinstance(row, dict):
            usable = bool(_pick(row, MEDIA_COLUMNS) and _captions(row))
            columns.update(row)
    if not usable:
        raise VtrError(f"{captions}: no row names both a media file (a column {', '.join(MEDIA_COLUMNS)}) and a "
                       f"caption (a column {', '.join(CAPTION_COLUMNS)}); "
                       + (f"its columns: {', '.join(sorted(columns))}" if columns else "it has no rows"))
    from tqdm import tqdm

    out, videos = Path(out), Path(videos)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, "[0-9][0-9][0-9][0-9][0-9]*")  # half-written shards and stats of killed runs
    n_shards = -(-total_rows // per_shard)
    _warn_of_other_shards(out, n_shards)

    def jobs():  # the second pass: one shard's rows at a time
        rows = enumerate(iter_captions(captions))
        for shard in range(n_shards):
            yield shard, list(islice(rows, per_shard)), str(videos), str(out)

    kept, written = [], []
    bar = tqdm(total=total_rows, desc="shards", unit="rows", disable=not progress)

    def shown(skipped_here: int = 0, rows: int = 1) -> None:  # rows done; skipped_here: in the shard being written
        skipped = sum(s["failed"] for s in kept + written) + skipped_here
        if skipped:
            bar.set_postfix(skipped=skipped, kept=len(kept), refresh=False)
        elif kept:
            bar.set_postfix(kept=len(kept), refresh=False)
        bar.update(rows)

    def done(stats: dict, was_kept: bool, rows: int) -> None:
        (kept if was_kept else written).append(_slim(stats))
        shown(rows=rows)

    try:
        if processes > 1 and n_shards > 1:
            import multiprocessing as mp
            import threading

            # The pool's feeder thread takes jobs from the generator as it is given room: at most two a process
            # wait their turn, so the rows in memory are those of a few shards, not of the whole file.
            room, stop = threading.Semaphore(2 * processes), threading.Event()

            def bounded(jobs):
                for job in jobs:
                    while not room.acquire(timeout=0.1):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    yield job

            with mp.get_context("spawn").Pool(processes, initializer=_ignore_interrupts) as pool:
                try:
                    for stats, was_kept in pool.imap_unordered(_make_shard_star, bounded(jobs())):
                        room.release()
                        done(stats, was_kept, stats["count"])
                finally:
                    stop.set()  # a feeder waiting for room ends, so that the pool can stop (Ctrl+C)
        else:
            for job in jobs():
                start = bar.n
                stats, was_kept = _make_shard(*job, progress=shown)
                done(stats, was_kept, stats["count"] - (bar.n - start))  # the rows a written shard did not show
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted with {len(kept) + len(written)} of {n_shards} shards whole in {out}: "
                                "the same command goes on from there") from None
    finally:
        bar.close()
    stats = sorted(kept + written, key=lambda s: s["shard"])
    total = {"shards": len(stats), "count": sum(s["count"] for s in stats),
             "successes": sum(s["successes"] for s in stats), "failed": sum(s["failed"] for s in stats)}
    write_json_atomic(out / "stats.json", total)
    _say_skipped(stats, total, out)
    return {**total, "kept": len(kept)}


def _slim(stats: dict) -> dict:
    """A shard's stats as :func:`make_shards` keeps them until the end: its counts, its failures counted by kind and
    the first of them (every failure is in its stats file; held for every shard, a WebVid download's dead links
    took hundreds of MB)."""
    kinds: dict[str, int] = {}
    for f in stats["failures"]:
        kind = f["reason"].split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {**{k: stats[k] for k in ("shard", "count", "successes", "failed")}, "kinds": kinds,
            "first": stats["failures"][0] if stats["failures"] else None}


def _say_skipped(stats: list[dict], total: dict, out: Path) -> None:
    """One warning for the rows skipped, by reason, with the first of them (``stats``: :func:`_slim`'s, by shard): a
    line per row flooded the terminal (a WebVid download with its dead links skips thousands)."""
    first = next((s["first"] for s in stats if s["first"] is not None), None)
    if first is None:
        return
    kinds: dict[str, int] = {}
    for s in stats:
        for kind, n in s["kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    logger.warning("%d of %d rows skipped (%s); the first, key %s (%s): %s. Every row's reason is in %s",
                   total["failed"], total["count"], ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items(),
                                                                                         key=lambda kv: -kv[1])),
                   first["key"], first["file"], first["reason"], out / "*_stats.json")


def _warn_of_other_shards(out: Path, shards: int) -> None:
    """Shards numbered past this caption file's, from an earlier run over more rows: a training run reads every
    shard of the folder, so they are named (not deleted: they are the user's)."""
    extra = sorted(p.name for p in out.glob("[0-9][0-9][0-9][0-9][0-9].tar") if int(p.name[:5]) >= shards)
    if extra:
        logger.warning("%s also holds %d shard(s) that this caption file does not make (%s%s), from an earlier run "
                       "over more rows: training reads every shard in the folder, so delete them if they are not "
                       "wanted", out, len(extra), ", ".join(extra[:3]), ", ..." if len(extra) > 3 else "")


def shards_make_command(videos: str = "", captions: str = "", out: str = "", per_shard: int = 1000,
                        processes: int = 1) -> int:
    """Write video/image + caption pairs into WebDataset shards (video2dataset layout) for pretraining.

    videos: folder holding the media files named in the caption file (required)
    captions: .csv (with header), .jsonl or .json (a JSON list, as the reference code's annotation files); a media
              column (video, videoid, path, file, image) and a caption column, or a list of captions (required)
    out: output folder for {shard:05d}.tar and {shard:05d}_stats.json (required)
    per_shard: rows per shard
    processes: shards written in parallel
    """
    missing = [f"--{name}" for name, value in (("videos", videos), ("captions", captions), ("out", out)) if not value]
    if missing:
        raise VtrError(f"shards make needs {', '.join(missing)}")
    if not os.path.isdir(videos):
        raise VtrError(f"--videos {videos}: not a folder")
    if not os.path.isfile(captions):
        raise VtrError(f"--captions {captions}: file not found")
    total = make_shards(videos, captions, out, per_shard=per_shard, processes=processes, progress=True)
    shards = (f"{total['shards']} shards in {out}: {total['shards'] - total['kept']} written, {total['kept']} kept as "
              "an earlier run wrote them from the same rows and files;" if total["kept"]
              else f"wrote {total['shards']} shards to {out}:")
    print(f"{shards} {total['successes']} samples, {total['failed']} skipped (see *_stats.json)")
    if not total["successes"]:  # shards without a sample would only fail later, in training
        raise VtrError(f"no sample written: every row of {captions} was skipped; each row's reason is in the "
                       f"*_stats.json files under {out} (media files are looked up under --videos {videos})")
    return 0


# ============================================================================================================
# Reader
# ============================================================================================================


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Shard paths from a list, a brace pattern (``dir/{00000..00009}.tar``), a glob, a folder (all ``*.tar``), or
    several of those joined by ``::``."""
    if not isinstance(spec, str):
        return [u for s in spec for u in expand_shards(s)]
    import braceexpand

    urls = []
    for part in spec.split("::"):
        part = part.strip()
        if not part:
            continue
        if os.path.isdir(part):
            urls += sorted(glob.glob(os.path.join(part, "*.tar")))
            continue
        for u in braceexpand.braceexpand(part):
            urls += sorted(glob.glob(u)) if any(ch in u for ch in "*?[") else [u]
    return urls


def _seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of the integers given."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _raw_samples(url: str, on_error) -> Iterator[dict]:
    """Samples (dicts of extension -> bytes, plus ``__key__``/``__url__``) of one tar file."""
    import webdataset as wds

    def handler(exn):
        on_error(f"{url}: {type(exn).__name__}: {exn}")
        return True

    try:
        stream = [{"url": url, "stream": open(url, "rb")}]
    except OSError as e:
        on_error(f"{url}: {e}")
        return
    try:
        files = wds.tariterators.tar_file_expander(stream, handler=handler)
        yield from wds.tariterators.group_by_keys(files, handler=handler)
    finally:
        stream[0]["stream"].close()


def _media(sample: dict) -> tuple[str, str] | None:
    """``(modality, field)`` of a raw sample's media: a video field, else a picture field, which holds a video when
    it is an animation (:data:`ANIMATION_FIELDS`); None without media."""
    ext = next((e for e in VIDEO_EXTS if e in sample), None)
    if ext is not None:
        return "video", ext
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None:
        return None
    return ("video" if ext in ANIMATION_FIELDS and is_animation(bytes(sample[ext])) else "image"), ext


class ShardStream(torch.utils.data.IterableDataset):
    """One rank's endless stream of batches; see the module docstring for the order and the resume design.

    Each item is a dict: ``frames`` float32 [B, T, 3, S, S] (T = 1 for images), ``input_ids`` / ``attention_mask``
    [B, L], ``keys`` (list of str), ``__pos__`` ``(worker, chunk, offset, corrupt_so_far)``.
    """

    def __init__(self, urls, tokenizer, batch_size: int, num_frames: int = 8, img_size: int = 224,
                 max_txt_l: int = 32, modality: str = "video", seed: int = 0, rank: int = 0,
                 shards_per_chunk: int = 4, shuffle_buffer: int = 500, mean=None, std=None,
                 transform_scale=(0.5, 1.0), flip_p: float = 0.5, preprocess=None, decode_cache_mb: float = 0):
        super().__init__()
        from vtr.models.retrieval import Preprocess

        self.urls = expand_shards(urls)
        if not self.urls:
            raise ValueError(f"no shards found for {urls!r}")
        if modality not in ("video", "image"):
            raise ValueError(f"modality must be 'video' or 'image', got {modality!r}")
        if preprocess is None:  # the model's preprocessing owns resize, normalise and tokenise; build one
            kw = {k: tuple(v) for k, v in (("mean", mean), ("std", std)) if v is not None}
            preprocess = Preprocess(num_frames=num_frames, img_size=img_size, max_txt_l=max_txt_l, **kw)
        self.preprocess = preprocess
        self.tokenizer, self.batch_size, self.num_frames = tokenizer, batch_size, num_frames
        self.max_txt_l = preprocess.max_txt_l
        self.modality, self.seed, self.rank = modality, seed, rank
        self.shards_per_chunk, self.shuffle_buffer = shards_per_chunk, shuffle_buffer
        self.transform = preprocess.train_transform(scale=transform_scale, flip_p=flip_p)
        self.num_workers = 1
        self.start_step = 0
        self.positions: dict[int, tuple[int, int, int]] = {}  # logical worker -> (chunk, offset, corrupt)
        if decode_cache_mb < 0:
            raise ValueError(f"decode_cache_mb must be >= 0, got {decode_cache_mb}")
        self.decode_cache_bytes = int(decode_cache_mb * 2**20)
        self._clips: dict[tuple[str, str], torch.Tensor] = {}  # (shard, key) -> uint8 [F, 3, H, W], per process
        self.cache_used = self.cache_hits = self.cache_misses = 0

    def set_position(self, step: int, positions: dict, num_workers: int) -> None:
        """Where each logical worker resumes (called by :class:`TrainLoader` when it starts its workers)."""
        self.start_step, self.positions, self.num_workers = step, dict(positions), max(1, num_workers)

    # ------------------------------------------------------------------------------------------- raw order
    def chunk_shards(self, worker: int, chunk: int) -> list[str]:
        rng = random.Random(_seed(self.seed, self.rank, worker, chunk, 0))
        return [rng.choice(self.urls) for _ in range(self.shards_per_chunk)]

    def chunk_samples(self, worker: int, chunk: int, on_error) -> Iterator[dict]:
        """The raw (undecoded) samples of a chunk, in their shuffled order; a pure function of its arguments."""
        rng = random.Random(_seed(self.seed, self.rank, worker, chunk, 1))
        streams = [_raw_samples(u, on_error) for u in self.chunk_shards(worker, chunk)]
        buffer: list[dict] = []
        while streams:
            i = rng.randrange(len(streams))
            try:
                sample = next(streams[i])
            except StopIteration:
                streams.pop(i)
                continue
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                j = rng.randrange(len(buffer))
                buffer[j], buffer[-1] = buffer[-1], buffer[j]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    # ------------------------------------------------------------------------------------------- decoding
    def decode(self, sample: dict, sample_seed: int, field: str) -> tuple[torch.Tensor, str]:
        """Frames float32 [T, 3, S, S] and the normalised caption of one raw sample, its media in ``field`` (of this
        stream's modality, :func:`_media`); raises when corrupt."""
        from vtr.data.text import normalize_caption
        from vtr.data.video import open_video, sample_frame_indices

        rng = np.random.default_rng(sample_seed)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if self.modality == "video":
            frames = self.video_frames(sample, rng, field)
        else:
            frames = torch.from_numpy(decode_image(bytes(sample[field]))).permute(2, 0, 1)[None].contiguous()
        try:
            meta = json.loads(bytes(sample["json"])) if "json" in sample else {}
        except (UnicodeDecodeError, ValueError):
            if "txt" not in sample:
                raise
            meta = {}  # a sample with its caption in .txt does not need its metadata
        several = meta.get("captions") if isinstance(meta, dict) else None
        if isinstance(several, list) and several and all(isinstance(c, str) for c in several):
            # A video with several captions: one of them at each visit, drawn apart from the frames and the crop
            # (which stay what they would be with one caption).
            caption = several[int(np.random.default_rng([sample_seed, 1]).integers(len(several)))]
        elif "txt" in sample:
            caption = bytes(sample["txt"]).decode("utf-8")
        else:
            caption = meta["caption"]
        return self.transform(frames, generator=gen), normalize_caption(caption)

    def video_frames(self, sample: dict, rng, ext: str) -> torch.Tensor:
        """uint8 [T, 3, H, W] at the sample's "rand" frame indices, from the decoded-clip cache when it holds the
        clip (the same rng draws either way, so a cached and an uncached run see the same frames)."""
        from vtr.data.video import open_video, sample_frame_indices

        key = (sample["__url__"], sample["__key__"])
        clip = self._clips.get(key)
        if clip is not None:
            self.cache_hits += 1
            return clip[sample_frame_indices(self.num_frames, len(clip), "rand", rng=rng)]
        with open_video(bytes(sample[ext]), name=f"{sample['__url__']}:{sample['__key__']}.{ext}") as reader:
            indices = sample_frame_indices(self.num_frames, reader.num_frames, "rand", rng=rng)
            size = reader.num_frames * reader.height * reader.width * 3
            if self.decode_cache_bytes:
                self.cache_misses += 1
            if (reader.num_frames <= CACHE_MAX_FRAME_RATIO * self.num_frames
                    and self.cache_used + size <= self.decode_cache_bytes // self.num_workers):
                try:
                    clip = reader.get_frames(range(reader.num_frames)).permute(0, 3, 1, 2).contiguous()
                except Exception:  # noqa: BLE001 - a frame past the sampled ones is damaged: read as without a cache
                    clip = None
                if clip is not None:
                    self._clips[key] = clip
                    self.cache_used += size
                    return clip[indices]
            return reader.get_frames(indices).permute(0, 3, 1, 2).contiguous()

    def collate(self, items: list) -> dict:
        tokens = self.preprocess.tokenize(self.tokenizer, [c for _, c, _ in items])
        return {"frames": torch.stack([f for f, _, _ in items]), **tokens, "keys": [k for _, _, k in items]}

    # ------------------------------------------------------------------------------------------- iteration
    def worker_batches(self, worker: int, chunk: int, offset: int, corrupt: int) -> Iterator[dict]:
        """Batches of one logical worker from position (chunk, offset); never ends."""
        errors: list[str] = []
        items = []
        while True:
            for i, sample in enumerate(islice(self.chunk_samples(worker, chunk, errors.append), offset, None),
                                       start=offset):
                for err in errors:
                    corrupt += 1
                    logger.warning("skipping corrupt shard data (%d so far): %s", corrupt, err)
                errors.clear()
                media = _media(sample)  # (modality, field): an animated GIF's bytes are read once
                if media is None or media[0] != self.modality:
                    continue
                try:
                    frames, caption = self.decode(sample, _seed(self.seed, self.rank, worker, chunk, 2, i), media[1])
                except Exception as e:  # noqa: BLE001 - a corrupt sample is skipped and counted, never fatal
                    corrupt += 1
                    logger.warning("skipping corrupt sample %s in %s (%d so far): %s: %s", sample.get("__key__"),
                                   sample.get("__url__"), corrupt, type(e).__name__, str(e)[:200])
                    continue
                items.append((frames, caption, sample["__key__"]))
                if len(items) == self.batch_size:
                    batch = self.collate(items)
                    batch["__pos__"] = (worker, chunk, i + 1, corrupt)
                    batch["__cache__"] = (self.cache_hits, self.cache_misses, self.cache_used)
                    items = []
                    yield batch
            for err in errors:
                corrupt += 1
                logger.warning("skipping corrupt shard data (%d so far): %s", corrupt, err)
            errors.clear()
            chunk, offset = chunk + 1, 0

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        physical, n = (info.id, info.num_workers) if info is not None else (0, 1)
        if n != self.num_workers:
            raise RuntimeError(f"stream prepared for {self.num_workers} workers, running in {n}")
        # Rotate so that the first batch of a loader started at step S comes from logical worker S % n.
        worker = (physical + self.start_step) % n
        chunk, offset, corrupt = self.positions.get(worker, (0, 0, 0))
        return self.worker_batches(worker, chunk, offset, corrupt)


def leave_signals_to_the_trainer(worker_id: int) -> None:
    """A loading worker ignores Ctrl+C and SIGTERM, which a terminal (its process group) or a service manager (its
    cgroup) sends it along with the trainer: the trainer finishes its step, which may still need the worker's
    batch, writes a checkpoint and then stops its workers (see ``pretrain.train.StopRequests``). A worker whose
    trainer is gone ends on its own (the DataLoader's watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainLoader:
    """DataLoader over a :class:`ShardStream` with a fixed epoch length (``wds.with_epoch`` semantics: each
    iteration yields ``steps_per_epoch`` batches) and a resumable position (``state_dict`` / ``load_state_dict``).

    ``num_corrupt``: samples skipped so far on this rank (as of the batches consumed).
    """

    def __init__(self, stream: ShardStream, steps_per_epoch: int, num_workers: int = 0, prefetch_factor: int = 2,
                 pin_memory: bool = False):
        self.stream, self.steps_per_epoch, self.num_workers = stream, int(steps_per_epoch), int(num_workers)
        self.prefetch_factor, self.pin_memory = prefetch_factor, pin_memory
        self.step = 0
        self.positions: dict[int, tuple[int, int, int]] = {}
        self.cache: dict[int, tuple[int, int, int]] = {}  # worker -> decoded-clip cache (hits, misses, bytes)
        self._batches = None  # the DataLoader's iterator, kept across epochs (and its workers with it)

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def num_corrupt(self) -> int:
        return sum(p[2] for p in self.positions.values())

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of the samples read so far that came from the decoded-clip cache (None: no cache)."""
        hits, misses = sum(c[0] for c in self.cache.values()), sum(c[1] for c in self.cache.values())
        return hits / (hits + misses) if hits + misses else None

    def __iter__(self):
        if self._batches is None:
            self.stream.set_position(self.step, self.positions, self.num_workers)
            kwargs = ({"prefetch_factor": self.prefetch_factor, "worker_init_fn": leave_signals_to_the_trainer}
                      if self.num_workers else {})
            loader = torch.utils.data.DataLoader(self.stream, batch_size=None, num_workers=self.num_workers,
                                                 pin_memory=self.pin_memory, **kwargs)
            from vtr.data.video import start_loader

            self._batches = start_loader(loader)  # the stream never ends: one iterator serves every epoch
        for _ in range(self.steps_per_epoch):
            batch = next(self._batches)
            worker, chunk, offset, corrupt = batch.pop("__pos__")
            self.positions[int(worker)] = (int(chunk), int(offset), int(corrupt))
            self.cache[int(worker)] = tuple(int(v) for v in batch.pop("__cache__"))
            self.step += 1
            yield batch

    def close(self) -> None:
        """Stop the workers now (and free their decoded clips); iterating again starts new ones at the positions."""
        self._batches = None  # the DataLoader iterator's last reference: it shuts its workers down

    def state_dict(self) -> dict:
        return {"step": self.step, "num_workers": self.num_workers,
                "positions": {int(k): list(v) for k, v in self.positions.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("num_workers", self.num_workers) != self.num_workers:
            logger.warning("loader state was saved with %s workers, now %s: data order will differ from the "
                           "uninterrupted run", state.get("num_workers"), self.num_workers)
        self.step = int(state["step"])
        self.positions = {int(k): tuple(v) for k, v in state.get("positions", {}).items()}
        self._batches = None  # the next epoch starts from these positions


def make_train_loader(urls, tokenizer, batch_size: int, steps_per_epoch: int, num_frames: int = 8,
                      img_size: int = 224, max_txt_l: int = 32, modality: str = "video", seed: int = 0,
                      rank: int = 0, num_workers: int = 2, shards_per_chunk: int = 4, shuffle_buffer: int = 500,
                      mean=None, std=None, state: dict | None = None, crop_scale: float = 0.5,
                      flip_p: float = 0.5, preprocess=None, decode_cache_mb: float = 0) -> TrainLoader:
    """The training reader for one rank: resampled shards, shuffle buffer, decode + "rand" frames + train
    transform + caption normalisation and tokenisation, batches of ``batch_size``, ``steps_per_epoch`` per epoch.

    urls: shard list / brace pattern / folder (see :func:`expand_shards`). state: a ``TrainLoader.state_dict()``
    to resume from. crop_scale: RandomResizedCrop's smallest area fraction (1: no crop); flip_p: horizontal flip
    probability. preprocess: the model's :class:`vtr.models.retrieval.Preprocess` (its size, mean/std, resize
    antialiasing and ``max_txt_l`` win over img_size, max_txt_l, mean, std; num_frames stays per modality).
    decode_cache_mb: memory (MiB, per rank) for keeping short clips decoded between epochs; 0: off (see the
    module docstring). Iterate it once per epoch; every batch is a dict with ``frames`` [B, T, 3, S, S],
    ``input_ids``, ``attention_mask`` [B, max_txt_l] and ``keys``.
    """
    stream = ShardStream(urls, tokenizer, batch_size, num_frames=num_frames, img_size=img_size, max_txt_l=max_txt_l,
                         modality=modality, seed=seed, rank=rank, shards_per_chunk=shards_per_chunk,
                         shuffle_buffer=shuffle_buffer, mean=mean, std=std, transform_scale=(crop_scale, 1.0),
                         flip_p=flip_p, preprocess=preprocess, decode_cache_mb=decode_cache_mb)
    loader = TrainLoader(stream, steps_per_epoch, num_workers=num_workers)
    if state is not None:
        loader.load_state_dict(state)
    return loader


def sample_captions(urls, limit: int = 2000) -> list[str]:
    """Up to ``limit`` captions (normalised as training reads them) from the local shards of ``urls``, an equal share
    from each shard, read from the tar headers and the small caption members only (videos are skipped, not read).
    Shards that are not local files (``pipe:``, URLs) are not sampled."""
    import tarfile

    from vtr.data.text import normalize_caption

    local = [u for u in expand_shards(urls) if os.path.isfile(u)]
    if not local:
        return []
    share = max(1, -(-int(limit) // len(local)))
    captions: list[str] = []
    for url in local[: int(limit)]:
        got: dict[str, str] = {}
        try:
            with tarfile.open(url) as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    key, _, ext = Path(m.name).name.partition(".")
                    if ext not in ("txt", "json") or (ext == "json" and key in got):
                        continue
                    data = tar.extractfile(m).read()
                    try:
                        text = data.decode("utf-8") if ext == "txt" else json.loads(data).get("caption")
                    except (UnicodeDecodeError, ValueError, AttributeError):
                        continue  # a corrupt member: the loader skips that sample too
                    if isinstance(text, str):
                        got[key] = text  # a .txt wins over the .json's caption, as in ShardStream.decode
                    if len(got) > share:
                        break
        except (OSError, tarfile.TarError):
            continue  # the loader reports unreadable shards itself
        captions += [normalize_caption(t) for t in list(got.values())[:share]]
    return captions[: int(limit)]


def count_shard_samples(urls) -> int:
    """Samples in the shards: the ``successes`` of each ``{shard}_stats.json`` next to a tar (its member count
    when the stats file is missing)."""
    import tarfile

    total = 0
    for url in expand_shards(urls):
        stats = Path(url[: -len(".tar")] + "_stats.json") if url.endswith(".tar") else None
        if stats is not None and stats.is_file():
            total += int(json.loads(stats.read_text()).get("successes", 0))
            continue
        if not os.path.isfile(url):
            raise FileNotFoundError(f"shard not found: {url}")
        with tarfile.open(url) as tar:
            total += len({Path(m.name).name.split(".", 1)[0] for m in tar.getmembers() if m.isfile()})
    return total


__all__ = ["read_captions", "iter_captions", "make_shards", "write_shard", "shards_make_command", "decode_image",
           "expand_shards", "ShardStream", "TrainLoader", "make_train_loader", "count_shard_samples", "sample_captions"]
