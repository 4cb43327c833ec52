"""What the index's scan pays for a phone's camera folder, now that it reads photos to find motion photos
(``index.scan``, ``vtr.data.motion_photo``): every JPEG's XMP and tail on the first scan, nothing but a ``stat`` once
the index keeps what it read (``Catalog.pictures``).

A folder of ``--photos`` plain JPEGs (a ``--width`` × ``--height`` photo after a 30 KB EXIF segment, as a phone's
EXIF with its thumbnail) and ``--motion`` motion photos (a Pixel's layout: XMP directory, MP4 appended). Timed, the
median of ``--repeats`` (each from empty in-process caches, as a new process starts):

- ``videos only``: the scan as it was before (video and animation extensions: no photo read);
- ``first scan``: every photo read (files in the page cache);
- ``first scan, cold``: the same after dropping the page cache (``--cold``, needs root: writes
  ``/proc/sys/vm/drop_caches``);
- ``next scan``: the verdicts of the first one known, as ``vtr index update`` passes them.

Each scan must find exactly the motion photos (the bench checks it).

    python -m bench.camera_scan                      # 2,000 photos and 200 motion photos
    python -m bench.camera_scan --photos 200 --motion 20 --repeats 3 --cold
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402


def make_folder(folder: Path, photos: int, motion: int, width: int, height: int) -> None:
    """The camera folder: ``photos`` plain JPEGs, then ``motion`` Pixel motion photos (tests/videos.py's writers)."""
    from tests.videos import indexed_frames, write_jpeg, write_motion_photo

    rng = np.random.default_rng(0)
    jpeg = write_jpeg(folder / "base.jpg", rng.integers(0, 256, (height, width, 3), np.uint8)).read_bytes()
    exif = b"Exif\0\0" + rng.integers(0, 256, 30_000, np.uint8).tobytes()
    plain = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(exif)) + exif + jpeg[2:]
    (folder / "base.jpg").unlink()
    for i in range(photos):
        (folder / f"IMG_{i:05d}.jpg").write_bytes(plain)
    frames = indexed_frames(20, 96, 128)
    mp = write_motion_photo(folder / "mp.jpg", frames[10], frames).read_bytes()
    (folder / "mp.jpg").unlink()
    for i in range(motion):
        (folder / f"PXL_{i:05d}.MP.jpg").write_bytes(mp)


def drop_page_cache() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--motion", type=int, default=200)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also time a first scan after dropping the page cache (root)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "camera_scan.json"))
    args = ap.parse_args(argv)

    import index.scan as scan
    import vtr.data.motion_photo as motion_photo
    from vtr.data.extensions import ANIMATION_EXTENSIONS, VIDEO_EXTENSIONS

    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Camera"
        folder.mkdir()
        make_folder(folder, args.photos, args.motion, args.width, args.height)
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20

        def timed(name, cold=False, **kwargs):
            motion_photo._embedded.cache_clear()  # as a new process
            scan._still.cache_clear()
            if cold:
                drop_page_cache()
            pictures: list = []
            t = time.perf_counter()
            found = scan.scan_folders([str(folder)], pictures=pictures, **kwargs)
            times.setdefault(name, []).append(1e3 * (time.perf_counter() - t))
            want = 0 if name == "videos only" else args.motion
            assert len(found) == want, f"{name}: found {len(found)} videos, not the {want} motion photos"
            return pictures

        for _ in range(args.repeats):
            timed("videos only", extensions=VIDEO_EXTENSIONS | ANIMATION_EXTENSIONS)
            known = {p: (size, mtime, video) for p, size, mtime, video in timed("first scan")}
            if args.cold:
                timed("first scan, cold", cold=True)
            timed("next scan", known_pictures=known)

    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    n = args.photos + args.motion
    print(f"{args.photos} photos ({args.width}x{args.height} after 30 KB of EXIF) and {args.motion} motion photos, "
          f"{size_mb:.0f} MiB; median of {args.repeats}; {load}")
    rows = [(name, statistics.median(ms), min(ms)) for name, ms in times.items()]
    width = max(len(name) for name, _, _ in rows)
    print(f"\n| scan of the folder | median ms | min ms | µs a picture |\n|{'-' * (width + 2)}|---:|---:|---:|")
    for name, median, best in rows:
        print(f"| {name:<{width}} | {median:.1f} | {best:.1f} | {1e3 * median / n:.1f} |")
    write_results(args.out, {"photos": args.photos, "motion": args.motion, "size": [args.width, args.height],
                             "repeats": args.repeats, "load": load, "ms": times})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
