"""What a recording whose timestamps jump costs to index and to preview, decoded from the keyframe before each frame
(``vtr.data.video.CountTable``) and, side by side, from the start of the file as before.

A TV recording that resumed, or recordings joined end to end (``cat a.ts b.ts``), cannot be sought by time: its
frames are timed by count. Before the table, every read decoded it from its start: each chunk of the index's windows
(the index opens a file again for each) and each preview. One run writes an H.264/AAC MPEG-TS of ``--minutes``
(``--width`` × ``--height``, 25 fps, a keyframe every ``--keyint`` frames, a new scene every 7 s) in ``--parts``
parts whose clocks jump (forward, then back to the first part's), and the same pictures and sound without jumps;
then times, each from empty in-process caches (as a new process starts):

- ``packets read``: the reader's clock (every packet demuxed, none decoded), which finds the jumps and the table;
- ``index decode``: every chunk of the index's windows (``index.decode.decode_chunk``, ``--policy``);
- ``preview near the end``: a 4 s cut (``vtr.data.cut.cut_clip``) ending 2 s before the end.

Rows: the file without jumps; the joined one from the keyframe before; the joined one from its start
(``CountTable.entry`` made to find no keyframe, which is what the code did before). The bench checks that the
index's windows and the preview's frames are the same both ways.

    python -m bench.jumps                      # 10 minutes of 640x360 in 3 parts
    python -m bench.jumps --minutes 3 --policy stride
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402

FPS = 25


def write_recording(path: Path, seconds: int, parts: int, starts: list[int] | None, width: int, height: int,
                    keyint: int) -> None:
    """``seconds`` of H.264/AAC MPEG-TS in ``parts`` parts, part ``i``'s clock starting at ``starts[i]`` s (None: where
    the part before ends, one recording without jumps); frames made as they are written (an hour does not fit in
    memory)."""
    import av

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (seconds // 7 + 2, 3))
    bounds = np.linspace(0, seconds, parts + 1).astype(int)
    with open(path, "wb") as out:
        for part in range(parts):
            lo, hi = bounds[part], bounds[part + 1]
            first = 10 + lo if starts is None else starts[part]
            tmp = path.with_suffix(f".part{part}.ts")
            with av.open(str(tmp), "w", format="mpegts") as c:
                video = c.add_stream("libx264", rate=FPS)
                video.width, video.height, video.pix_fmt = width, height, "yuv420p"
                video.options = {"preset": "ultrafast", "crf": "28", "g": str(keyint)}
                video.codec_context.time_base = Fraction(1, FPS)
                audio = c.add_stream("aac", rate=48000, layout="mono")
                box = max(8, height // 6)
                for i in range(lo * FPS, hi * FPS):
                    img = np.empty((height, width, 3), np.uint8)
                    colour = colours[i // (7 * FPS)]
                    img[:] = colour
                    x = (i * 4) % (width - box)
                    img[height // 3: height // 3 + box, x: x + box] = 255 - colour
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts, frame.time_base = first * FPS + i - lo * FPS, Fraction(1, FPS)
                    for packet in video.encode(frame):
                        c.mux(packet)
                for k in range(0, 48000 * (hi - lo), 1024):
                    t = np.arange(k, k + 1024) / 48000
                    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                    chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                    chunk.sample_rate, chunk.pts, chunk.time_base = 48000, first * 48000 + k, Fraction(1, 48000)
                    for packet in audio.encode(chunk):
                        c.mux(packet)
                for stream in (video, audio):
                    for packet in stream.encode():
                        c.mux(packet)
            out.write(tmp.read_bytes())
            tmp.unlink()


def fresh() -> None:
    """Empty the reader's per-process cache of packet times (as a new process starts)."""
    from vtr.data import video

    with video._FRAME_TIMES_LOCK:
        video._FRAME_TIMES.clear()


def index_decode(path: Path, policy: str):
    """(seconds, [(window, frames checksum)]) of decoding every chunk of ``path``'s windows."""
    from index.decode import DecodeSettings, decode_chunk

    settings = DecodeSettings(window_policy=policy, thumbnails=False)
    t, chunk, chunks, windows = time.perf_counter(), 0, 1, []
    while chunk < chunks:
        result = decode_chunk(str(path), chunk, settings)
        chunks, chunk = result.n_chunks, chunk + 1
        windows += [(w, int(f.astype(np.int64).sum())) for w, f in zip(result.windows, result.frames)]
    return time.perf_counter() - t, windows


def preview(path: Path, start: float, stop: float, out: Path):
    """(seconds, the clip's frames' mean levels) of cutting ``[start, stop)`` of ``path``."""
    import av

    from vtr.data.cut import cut_clip

    t = time.perf_counter()
    cut_clip(str(path), start, stop, out)
    seconds = time.perf_counter() - t
    with av.open(str(out)) as c:
        levels = [round(float(f.to_ndarray(format="gray").mean()), 1) for f in c.decode(video=0)]
    return seconds, levels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--parts", type=int, default=3)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--keyint", type=int, default=25)
    ap.add_argument("--policy", default="shots", choices=["shots", "stride"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "jumps.json"))
    args = ap.parse_args(argv)

    from vtr.data.video import CountTable, open_video

    seconds = int(args.minutes * 60)
    starts = [[1000, 60000, 1000, 60000][i % 4] + 100 * i for i in range(args.parts)]
    load_before = os.getloadavg()[0]
    rows, checks = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        plain, joined = Path(tmp) / "plain.ts", Path(tmp) / "joined.ts"
        t = time.perf_counter()
        write_recording(plain, seconds, args.parts, None, args.width, args.height, args.keyint)
        write_recording(joined, seconds, args.parts, starts, args.width, args.height, args.keyint)
        print(f"wrote 2 x {seconds} s of {args.width}x{args.height} in {time.perf_counter() - t:.0f} s", flush=True)
        cut = (seconds - 6.0, seconds - 2.0)
        for name, path, from_start in (("without jumps", plain, False), ("joined, from the keyframe before", joined,
                                                                           False),
                                       ("joined, from the start (before)", joined, True)):
            patch = (mock.patch.object(CountTable, "entry", lambda self, frame: None) if from_start
                     else contextlib.nullcontext())
            with patch:
                fresh()
                t = time.perf_counter()
                with open_video(str(path), backend="pyav") as reader:
                    reader.clock()
                    jumps = reader.timed_by_count
                packets_s = time.perf_counter() - t
                fresh()
                index_s, windows = index_decode(path, args.policy)
                fresh()
                preview_s, levels = preview(path, *cut, Path(tmp) / "cut.mp4")
            row = {"file": name, "timed_by_count": jumps, "packets_s": packets_s, "index_decode_s": index_s,
                   "windows": len(windows), "preview_s": preview_s, "preview_frames": len(levels)}
            rows.append(row)
            checks[name] = (windows, levels)
            print(row, flush=True)
    same = checks["joined, from the keyframe before"] == checks["joined, from the start (before)"]
    assert same, "decoding from the keyframe before gave other windows or preview frames than from the start"
    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"\n{seconds} s of {args.width}x{args.height} H.264/AAC MPEG-TS, 25 fps, a keyframe every {args.keyint} "
          f"frames, {args.parts} parts; index windows: {args.policy}; {load}; windows and preview frames the same "
          "both ways")
    print("\n| file | timed by count | packets read s | index decode s | windows | preview near the end s |\n"
          "|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['file']} | {'yes' if r['timed_by_count'] else 'no'} | {r['packets_s']:.2f} | "
              f"{r['index_decode_s']:.1f} | {r['windows']} | {r['preview_s']:.2f} |")
    write_results(args.out, {"seconds": seconds, "size": [args.width, args.height], "keyint": args.keyint,
                             "parts": args.parts, "policy": args.policy, "load": load, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
