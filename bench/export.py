"""What exporting a moment costs, and what it keeps of the source: an 8 s moment at 12.3-20.3 s (between keyframes,
as moments are) exported as ``vtr search --export`` and the app's "Export mp4" do it, two ways side by side in one run.

Transcoded (every export before 2026-12-07, and now those of videos :func:`vtr.data.cut.exported_as_is` refuses):
decoded, encoded by x264 ``veryfast`` crf 23 at most 1920 wide, the sound to AAC. The export now: a video in H.264
that every player plays, up to 1080p, as its own packets from the keyframe before the moment, shown from the moment's
first frame to its end by the MP4's edit list (:func:`vtr.data.cut.copy_clip`, ``exact``); the sound copied, or
encoded to AAC where it is a camera's PCM. As recorded (``--export-as recorded``, the app's "Export as recorded"):
any video in a codec an MP4 carries, its own packets the same way, whatever its size (the 4K source) or codec (the
HEVC one). Sources are :mod:`bench.preview`'s (a moving picture as H.264, a keyframe each second; one as HEVC),
written in the run. Each row is the median of ``--repeats`` exports, each into an empty folder, after
one to warm up; "frames" is the frames a player shows (FFmpeg's decoder, which honours the edit list), "PSNR" theirs
against the source's frames at the same times ("same pixels": every one decodes to the source's pixels).

    python -m bench.export                      # 1080p30, 1080p60, 4K60, 1080p30 with PCM sound, 1080p30 HEVC
    python -m bench.export --sources 1080p30 --repeats 5
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vtr  # noqa: E402,F401  (vtr's thread settings before torch or PyAV start threads)
from bench import write_results  # noqa: E402
from bench.preview import SOURCES, parse_args, written_sources  # noqa: E402,F401  (SOURCES: the tests add theirs)

START, END = 12.3, 20.3


def _shown(path: Path, near: float | None = None):
    """(second, frame) of each frame of ``path`` a player shows, in order (FFmpeg's decoder honours an edit list);
    ``near``: from the keyframe at or before that second on."""
    import av

    with av.open(str(path)) as c:
        if near is not None:
            c.seek(int(near * av.time_base), backward=True)
        for f in c.decode(video=0):
            if f.time is not None:
                yield float(f.time), f


def _luma(frame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """The stored luma plane of ``frame`` (8-bit), scaled to ``width`` x ``height`` where given: not a conversion to
    grey, which follows each file's colour tags (a source that says none, a clip that says BT.709) and differs by
    up to 28 levels where the stored luma is the same."""
    if (width, height) != (None, None) and (width, height) != (frame.width, frame.height) or frame.format.name not in (
            "yuv420p", "yuvj420p"):
        frame = frame.reformat(width=width or frame.width, height=height or frame.height, format="yuv420p")
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:frame.height, :frame.width]


def _psnr(clip: Path, source: Path, first: float) -> float:
    """The PSNR (dB, of the mean squared error over all frames, of the stored luma) of the clip's frames against the
    source's shown at the same second (``first``: the source's second of the clip's 0), the clip scaled to the
    source's size where it is smaller; ``inf`` where every one is the same. Both are read once, side by side."""
    errors = []
    frames = _shown(source, near=first)
    _, ref = next(frames)
    for at, f in _shown(clip):
        for t_next, ref_next in frames:  # the source's frame shown at the clip frame's second
            if t_next > first + at + 1e-3:
                frames = itertools.chain([(t_next, ref_next)], frames)
                break
            ref = ref_next
        want = _luma(ref)
        got = _luma(f, *want.shape[::-1])
        errors.append(float(np.mean((got.astype(np.float64) - want) ** 2)))
    mse = float(np.mean(errors)) if errors else float("nan")
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def export_seconds(path: Path, how: str, repeats: int) -> dict:
    """The median seconds of ``repeats`` exports of the moment at :data:`START`-:data:`END` of ``path`` (each into an
    empty folder, after one to warm up), how it was made, and what it shows. ``how``: "transcoded" (every video
    transcoded, as before), "now" (:func:`vtr.data.cut.export_clips` as it is) or "recorded" (``export_as``)."""
    import av

    import vtr.data.cut as cut

    times, kept = [], None
    as_before = mock.patch.object(cut, "exported_as_is", lambda *a, **k: False)
    with as_before if how == "transcoded" else nullcontext():
        for run in range(repeats + 1):
            with tempfile.TemporaryDirectory() as folder:
                t = time.perf_counter()
                [(clip, error)] = cut.export_clips([(str(path), START, END)], folder,
                                                   export_as="recorded" if how == "recorded" else "h264")
                if error:
                    raise RuntimeError(f"export of {path.name} failed: {error}")
                if run:
                    times.append(time.perf_counter() - t)
                if run == repeats:  # the last one kept, to look at
                    kept = Path(tempfile.mkdtemp()) / Path(clip).name
                    Path(clip).replace(kept)
    with av.open(str(kept)) as c:
        packets = sum(1 for p in c.demux(video=0) if p.size)
        size = kept.stat().st_size / 1e6
        width = c.streams.video[0].codec_context.width
        sound = c.streams.audio[0].codec_context.name if c.streams.audio else None
    shown = sum(1 for _ in _shown(kept))
    first = next(t for t, _ in _shown(path, near=START) if t >= START - 1e-6)  # the clip's 0: its first frame
    # copied: it holds the frames from the keyframe before the moment, hidden (a transcode holds the shown ones only)
    row = {"s": statistics.median(times), "frames": shown, "packets": packets, "mb": size, "width": width,
           "sound": sound, "copied": packets > shown}
    psnr = _psnr(kept, path, first)
    row.update(same_pixels=psnr == float("inf"), psnr=None if psnr == float("inf") else psnr)  # JSON has no inf
    kept.unlink()
    kept.parent.rmdir()
    return row


def _db(row: dict) -> str:
    return "same pixels" if row["same_pixels"] else f"{row['psnr']:.1f}"


def _made(row: dict, source_sound: str | None) -> str:
    """How an export was made: transcoded, or copied (its sound encoded to AAC where the source's is in a codec an
    MP4 does not carry as it is, as PCM)."""
    from vtr.data.cut import sound_copied

    if not row["copied"]:
        return "transcoded"
    return "copied" if sound_copied("mp4", source_sound) else "copied, sound to AAC"


def main(argv=None) -> int:
    args, names = parse_args(__doc__, argv, seconds=24.0, results="export.json")
    if args.seconds < END + 1:
        raise SystemExit(f"--seconds must be at least {END + 1:g} (the moment is at {START:g}-{END:g} s)")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, sound in written_sources(names, tmp, args.seconds):
            before = export_seconds(path, "transcoded", args.repeats)
            now = export_seconds(path, "now", args.repeats)
            recorded = export_seconds(path, "recorded", args.repeats)
            rows.append({"source": name, "source_sound": sound, "transcoded": before, "now": now,
                         "speedup": before["s"] / now["s"], "recorded": recorded,
                         "recorded_speedup": before["s"] / recorded["s"]})
            print(rows[-1], flush=True)
    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"\nexport of the moment at {START:g}-{END:g} s; median of {args.repeats}; {load}")
    print("\n| source | transcoded: s | frames | MB | PSNR dB | the export now: s | how | frames | MB | PSNR dB | "
          "transcoded / now | as recorded: s | how | wide | MB | PSNR dB | transcoded / as recorded |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        b, n, a = r["transcoded"], r["now"], r["recorded"]
        print(f"| {r['source']} | {b['s']:.2f} | {b['frames']} | {b['mb']:.1f} | {_db(b)} | {n['s']:.3f} | "
              f"{_made(n, r['source_sound'])} | {n['frames']} | {n['mb']:.1f} | {_db(n)} | {r['speedup']:.1f}x | "
              f"{a['s']:.3f} | {_made(a, r['source_sound'])} | {a['width']} | {a['mb']:.1f} | {_db(a)} | "
              f"{r['recorded_speedup']:.1f}x |")
    write_results(args.out, {"seconds": args.seconds, "repeats": args.repeats, "moment": [START, END], "load": load,
                             "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
