"""What reading an animated WebP costs, beside the same frames as an animated GIF and as an H.264 MP4.

FFmpeg decodes no animated WebP, so vtr draws its frames (``vtr.data.webp``: each frame's image decoded by FFmpeg,
put on the canvas) and writes them as an APNG in memory that every reader opens (``vtr.data.sources.ffmpeg_input``,
kept for the next opens of the same file). This times, per animation (a median of ``--repeats``, each from empty
caches, as a new process starts):

- ``draw``: the canvases alone (:func:`vtr.data.webp.composited_frames`);
- ``draw + APNG``: :func:`vtr.data.webp.as_apng`, what the first open of a file pays;
- ``read``: ``open_video`` and every frame as RGB, as the index's build reads a file (WebP, GIF, MP4 side by side;
  the WebP's includes its APNG).

The animations are drawn here (a moving disc over a gradient, smooth as a sticker or a screen capture is), encoded
by libwebp's animation encoder (lossy, its defaults), FFmpeg's GIF encoder (a 256-colour palette) and x264.

    python -m bench.animations                  # a 512x512 sticker, a 480x270 clip and a 720p one
    python -m bench.animations --cases sticker --repeats 2
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

from bench import write_results  # noqa: E402

#: name -> (width, height, frames, frames a second)
CASES = {"sticker": (512, 512, 75, 25), "clip": (480, 270, 90, 15), "720p": (1280, 720, 100, 25)}


def frames_of(width: int, height: int, count: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: a disc crossing a still gradient."""
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 96)], -1).astype(np.uint8)
    out = np.repeat(background[None], count, 0)
    r = min(width, height) // 6
    for i in range(count):
        cx = r + (width - 2 * r) * i // max(count - 1, 1)
        out[i][(xx - cx) ** 2 + (yy - height // 2) ** 2 < r * r] = (250, 220, 40)
    return out


def write(path: Path, frames: np.ndarray, fps: int) -> Path:
    from tests.videos import write_animated_webp, write_video

    if path.suffix == ".webp":
        return write_animated_webp(path, frames, fps=fps)
    if path.suffix == ".gif":
        return write_video(path, frames, fps=fps, codec="gif", pix_fmt="rgb8")
    return write_video(path, frames, fps=fps)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "animations.json"))
    args = ap.parse_args(argv)

    import vtr.data.sources as sources
    from vtr.data.video import open_video
    from vtr.data.webp import as_apng, composited_frames

    load_before = os.getloadavg()[0]
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}: {', '.join(CASES)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            width, height, count, fps = CASES[case]
            frames = frames_of(width, height, count)
            files = {ext: write(Path(tmp) / f"{case}.{ext}", frames, fps) for ext in ("webp", "gif", "mp4")}
            data = files["webp"].read_bytes()
            times: dict[str, list[float]] = {}

            def timed(name, fn):
                sources._webp_as_apng.cache_clear()  # as a new process
                sources._webp_file_as_apng.cache_clear()
                t = time.perf_counter()
                fn()
                times.setdefault(name, []).append(1e3 * (time.perf_counter() - t))

            def read_all(path):
                with open_video(str(path)) as reader:
                    got = reader.get_frames(range(reader.clock().num_frames))
                assert got.shape[0] == count, (path, got.shape)

            for _ in range(args.repeats):
                timed("draw", lambda: sum(1 for _ in composited_frames(data)))
                timed("draw + APNG", lambda: as_apng(data))
                for ext, path in files.items():
                    timed(f"read {ext}", lambda path=path: read_all(path))
            results[case] = {"size": [width, height], "frames": count, "fps": fps,
                             "bytes": {ext: p.stat().st_size for ext, p in files.items()}, "ms": times}

    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"median of {args.repeats}; {os.cpu_count()} CPUs; {load}")
    print("\n| animation | frames | draw ms | draw + APNG ms | read WebP ms | read GIF ms | read MP4 ms | WebP / GIF |"
          "\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, r in results.items():
        ms = {name: statistics.median(v) for name, v in r["ms"].items()}
        w, h = r["size"]
        print(f"| {case} ({w}x{h}) | {r['frames']} | {ms['draw']:.0f} | {ms['draw + APNG']:.0f} | "
              f"{ms['read webp']:.0f} | {ms['read gif']:.0f} | {ms['read mp4']:.0f} | "
              f"{ms['read webp'] / ms['read gif']:.2f} |")
    write_results(args.out, {"repeats": args.repeats, "load": load, "cases": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
