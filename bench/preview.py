"""What the app's preview of a moment costs (an 8 s moment at 12-20 s, with the 10 s before and after it, as the app
makes it when the moment is selected), three ways side by side in one run.

Before (2026-12-05): cut to H.264 at most 854 wide, every frame scaled by its own converter (a frame's ``reformat``
builds a swscale context per call), written at the source's rate by x264's ``veryfast``. Transcoded (what
``app.media.make_preview`` does since): one converter for the clip (the same bits), a 60 fps source previewed at 30
(``app.media.PREVIEW_MAX_RATE``, every other frame, each on time), x264's ``superfast``. The app now
(``app.media.moment_preview``): a video every browser plays, as these are, up to 1080p, copied (the source's own
packets from the keyframe before the cut, nothing decoded or encoded); HEVC, and over 1080p, copied for a browser
that says it plays it and its machine decodes it in hardware (``plays``: Safari, Chrome and Edge where the GPU decodes
HEVC and 4K), as measured here, transcoded for the others (the "transcoded" column). Sources are written in the run:
a moving picture (smooth gradients and shapes, as footage is, not noise) as H.264 at 1080p30, 1080p60 and 4K60, a
keyframe each second as phones write, each ``--seconds`` long (at least 30); at 1080p30 with a camera's sound, 48
kHz stereo PCM in a MOV (Canon's, Panasonic's, Fujifilm's), which the app copies with only its sound encoded to AAC;
and at 1080p30 as an iPhone's HEVC with AAC sound in a MOV, in SDR and in HDR (10-bit HLG, the iPhone's default,
whose transcode is tone-mapped; copied for a browser that shows HLG: Safari, Chrome). Each row is the median of
``--repeats`` previews, each into an empty cache, after one to warm up. Also the converter alone: a 4K frame scaled
to 854x480, one context per call against one for all.

``--rev REV`` adds a table of the transcodes alone at commit REV (``git archive``) and in this checkout, side by side:
the preview's (:func:`app.media.make_preview`, 2-30 s) and a whole-size export's (:func:`vtr.data.cut.cut_clip` of
12.3-20.3 s, at most 1920 wide), each timed in a fresh process of its checkout (after a half-second cut that loads
it), the two checkouts taking turns, ``--repeats`` times each; wall and CPU seconds (all the process's threads).

    python -m bench.preview        # 1080p30, 1080p60, 4K60, 1080p30 with PCM sound, 1080p30 HEVC (SDR, HLG)
    python -m bench.preview --sources 4k60 --repeats 5
    python -m bench.preview --sources 1080p30-hevc,1080p30-hlg --rev a2ac3af
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vtr  # noqa: E402,F401  (vtr's thread settings before torch or PyAV start threads)
from bench import write_results  # noqa: E402
from av.video.reformatter import VideoReformatter as _CONVERTER  # noqa: E402  (the real one, which "before" patches)

#: name: (width, height, frames a second, sound codec or None, file type[, video encoder: libx264 unless named])
SOURCES = {"1080p30": (1920, 1080, 30, None, ".mp4"), "1080p60": (1920, 1080, 60, None, ".mp4"),
           "4k60": (3840, 2160, 60, None, ".mp4"), "1080p30-pcm": (1920, 1080, 30, "pcm_s16le", ".MOV"),
           "1080p30-hevc": (1920, 1080, 30, "aac", ".MOV", "libx265"),
           "1080p30-hlg": (1920, 1080, 30, "aac", ".MOV", "libx265", "hlg")}


def write_source(path: Path, width: int, height: int, fps: int, seconds: float, sound: str | None = None,
                 video: str = "libx264", transfer: str | None = None) -> None:
    """``seconds`` of a moving picture as H.264 (x264 ultrafast, crf 20, a keyframe each second; or ``video``, as
    HEVC: x265 likewise): a gradient sliding under a moving box, drawn at a quarter of the size and scaled up (smooth,
    as footage is; drawing 4K frames in numpy took minutes). ``sound``: a codec for 48 kHz stereo sound beside it (a
    tone under noise), written a second at a time between the pictures, as a camera interleaves them. ``transfer``
    ("hlg", "pq"): in 10 bits, tagged HDR as a phone tags it (BT.2020; the pictures are the SDR ones, which is all a
    timing needs)."""
    import av

    from vtr.data.hdr import BT2020_PRIMARIES, HLG, PQ

    w, h = width // 4, height // 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pix_fmt = "yuv420p10le" if transfer else "yuv420p"
    with av.open(str(path), "w") as c:
        s = c.add_stream(video, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = {"preset": "ultrafast", "crf": "20", "g": str(fps)}  # a keyframe each second, as phones write
        if video == "libx265":
            s.options["x265-params"] = "log-level=error"
        if transfer:
            cc = s.codec_context
            cc.color_primaries, cc.colorspace, cc.color_trc = BT2020_PRIMARIES, 9, {"hlg": HLG, "pq": PQ}[transfer]
        a = c.add_stream(sound, rate=48000, layout="stereo") if sound else None
        rng = np.random.default_rng(0)
        for i in range(int(seconds * fps)):
            if a is not None and i % fps == 0:  # the next second of sound
                t = np.arange(48000) / 48000 + i // fps
                wave = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(48000)).astype(np.float32)
                sf = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
                sf.sample_rate, sf.pts = 48000, (i // fps) * 48000
                for packet in a.encode(sf):
                    c.mux(packet)
            shift = i * w / 480
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = (127 + 100 * np.sin((xx + shift) / w * 6.28)).astype(np.uint8)
            img[..., 1] = (127 + 100 * np.cos(yy / h * 6.28 + i / fps)).astype(np.uint8)
            img[..., 2] = ((xx + yy + shift) / (w + h) * 255 % 256).astype(np.uint8)
            x = int((i * 2 * w / 480) % (w - w // 8))
            img[h // 3: h // 3 + h // 8, x: x + w // 8] = (240, 240, 240)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(width=width, height=height,
                                                                             format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in s.encode(frame):
                c.mux(packet)
        for stream in (s, a) if a is not None else (s,):
            for packet in stream.encode():
                c.mux(packet)


class _ConverterPerCall:
    """A frame's own ``reformat``: a swscale context built per call (what the cut did before)."""

    def reformat(self, frame, *args, **kwargs):
        return _CONVERTER().reformat(frame, *args, **kwargs)


def preview_seconds(path: Path, how: str, repeats: int) -> tuple[float, int, float, bool]:
    """(median seconds, frames in the preview, its MB, whether it was copied) of ``repeats`` previews of the moment at
    12-20 s of ``path`` (:meth:`app.service.IndexService.preview`: from ``CONTEXT_S`` before to ``CONTEXT_S`` after),
    each into an empty cache, after one to warm up. ``how``: "before" (a converter per frame, at the source's rate,
    ``veryfast``), "transcoded" (:func:`app.media.make_preview`) or "app" (:func:`app.media.moment_preview`, as the
    app makes it for a browser that plays every kind of video some browsers play, :data:`app.media.PLAYED_IF_SAID`,
    shows their HDR, on a machine that decodes them in hardware at 4K, :data:`app.media.MEDIA_ASKED`: copied up to
    4K, HDR too)."""
    import av

    import app.media
    from app.media import make_preview, moment_preview
    from app.service import CONTEXT_S

    start, end = 12.0, 20.0
    cut = max(0.0, start - CONTEXT_S)
    times, frames, size, copied = [], 0, 0.0, False
    plays = frozenset(app.media.PLAYED_IF_SAID) | {question["word"] for question in app.media.MEDIA_ASKED}
    patches = (mock.patch("av.video.reformatter.VideoReformatter", _ConverterPerCall),
               mock.patch.object(app.media, "PREVIEW_MAX_RATE", None),
               mock.patch.object(app.media, "PREVIEW_PRESET", "veryfast")) if how == "before" else (nullcontext(),) * 3
    with patches[0], patches[1], patches[2]:
        for run in range(repeats + 1):
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                if how == "app":
                    out, _ = moment_preview(str(path), cut, end, cache, tail_s=CONTEXT_S,
                                            max_seconds=end - cut + CONTEXT_S, plays=plays)
                    copied = out.name.endswith(".copy.mp4")
                else:
                    out = make_preview(str(path), cut, end, cache, tail_s=CONTEXT_S, max_seconds=end - cut + CONTEXT_S)
                if run:
                    times.append(time.perf_counter() - t)
                with av.open(str(out)) as c:
                    frames = sum(1 for _ in c.demux(video=0)) - 1
                size = out.stat().st_size / 1e6
    return statistics.median(times), frames, size, copied


def converter_ms(path: Path, n: int = 40) -> tuple[float, float, bool]:
    """(ms a frame with a context per call, ms with one for all, same bits) scaling ``n`` frames of ``path`` to 854x480
    as the preview does."""
    import av
    from av.video.reformatter import VideoReformatter

    with av.open(str(path)) as c:
        frames = [f for _, f in zip(range(n), c.decode(video=0))]
    kw = {"width": 854, "height": 480, "format": "yuv420p", "src_color_range": "MPEG", "dst_color_range": "MPEG"}
    t = time.perf_counter()
    each = [f.reformat(**kw).to_ndarray() for f in frames]
    per_call = (time.perf_counter() - t) / n * 1000
    one = VideoReformatter()
    t = time.perf_counter()
    shared = [one.reformat(f, **kw).to_ndarray() for f in frames]
    shared_ms = (time.perf_counter() - t) / n * 1000
    return per_call, shared_ms, all(np.array_equal(a, b) for a, b in zip(each, shared))


#: A transcode timed in a process of its own checkout (``python -c``, run there): what ("preview" or "export"), the
#: source, its span, and the preview's tail (seconds it adds after the span); prints [wall s, CPU s, the file of the
#: vtr it ran]
_TRANSCODE_WORKER = """
import json, sys, tempfile, time
from pathlib import Path
import vtr
from app.media import make_preview
from vtr.data.cut import cut_clip
what, path, start, end, tail = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
def timed(start, end):
    with tempfile.TemporaryDirectory() as folder:
        t, c = time.perf_counter(), time.process_time()
        if what == "preview":
            make_preview(path, start, end, folder, tail_s=tail, max_seconds=end - start + tail)
        else:
            cut_clip(path, start, end, Path(folder) / "clip.mp4")
        return [time.perf_counter() - t, time.process_time() - c]
timed(0.0, 0.5)
print(json.dumps(timed(start, end) + [vtr.__file__]))
"""


def transcodes_side_by_side(path: Path, rev: str, repeats: int) -> list[dict]:
    """For the preview's and an export's transcode of ``path``: the median wall and CPU seconds at ``rev`` and in this
    checkout, each run in a fresh process of its checkout, the two taking turns ``repeats`` times; and the vtr each
    ran (``rev_vtr``, ``now_vtr``)."""
    import json
    import subprocess

    from app.service import CONTEXT_S
    from bench import export
    from bench.encoder import checkout_of

    # the preview's span as the app asks for it (the moment at 12-20 s from CONTEXT_S before it; the preview adds
    # CONTEXT_S after it), and bench.export's moment
    spans = {"preview": (12.0 - CONTEXT_S, 20.0), "export": (export.START, export.END)}
    rows = []
    for what, (start, end) in spans.items():
        times = {rev: [], ".": []}
        for _ in range(repeats):
            for tree in (rev, "."):
                folder = checkout_of(tree)
                env = dict(os.environ, PYTHONPATH=str(folder))
                done = subprocess.run([sys.executable, "-c", _TRANSCODE_WORKER, what, str(path), str(start), str(end),
                                       str(CONTEXT_S)],
                                      cwd=folder, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"bench.preview: the {what} at {tree} failed: {done.stderr.strip()[-2000:]}")
                times[tree].append(json.loads(done.stdout.strip().splitlines()[-1]))
        (rev_s, rev_cpu), (now_s, now_cpu) = ([statistics.median(col) for col in list(zip(*times[t]))[:2]]
                                              for t in (rev, "."))
        cut = [start, end + CONTEXT_S] if what == "preview" else [start, end]
        rows.append({"what": what, "span": cut, "rev_s": rev_s, "rev_cpu_s": rev_cpu, "now_s": now_s,
                     "now_cpu_s": now_cpu, "speedup": rev_s / now_s, "rev_vtr": times[rev][0][2],
                     "now_vtr": times["."][0][2]})
    return rows


def how(row: dict) -> str:
    """How the app made a row's preview: transcoded, or copied (with its sound encoded where it is in a codec not
    every browser plays in an MP4, as PCM)."""
    from vtr.data.cut import sound_copied

    if not row["copied"]:
        return "transcoded"
    return "copied" if sound_copied("mp4", row["sound"]) else "copied, sound to AAC"


def parse_args(doc: str, argv, seconds: float, results: str,
               rev: bool = False) -> tuple[argparse.Namespace, list[str]]:
    """The options of a bench over :data:`SOURCES` (``--sources``, ``--seconds``, ``--repeats``, ``--out``: its JSON,
    ``results`` under bench/results by default; ``rev``: ``--rev`` too), and the sources named."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--sources", default=",".join(SOURCES), help=f"of {', '.join(SOURCES)}")
    ap.add_argument("--seconds", type=float, default=seconds)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / results))
    if rev:
        ap.add_argument("--rev", default=None,
                        help="also time the transcodes alone at this commit and here, side by side")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        ap.error(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    return args, names


def written_sources(names: list[str], folder, seconds: float):
    """(name, path, sound codec or None) of each source of ``names`` as it is written into ``folder``."""
    for name in names:
        width, height, fps, sound, ext, *video = SOURCES[name]
        path = Path(folder) / f"{name}{ext}"
        t = time.perf_counter()
        write_source(path, width, height, fps, seconds, sound, *video)
        print(f"wrote {name} ({seconds:.0f} s) in {time.perf_counter() - t:.0f} s", flush=True)
        yield name, path, sound


def main(argv=None) -> int:
    args, names = parse_args(__doc__, argv, seconds=32.0, results="preview.json", rev=True)
    load_before = os.getloadavg()[0]
    rows, converter, side_by_side = [], None, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, sound in written_sources(names, tmp, args.seconds):
            if args.rev:
                for row in transcodes_side_by_side(path, args.rev, args.repeats):
                    side_by_side.append(dict(row, source=name))
                    print(side_by_side[-1], flush=True)
            before, before_frames, _, _ = preview_seconds(path, "before", args.repeats)
            now, now_frames, now_mb, _ = preview_seconds(path, "transcoded", args.repeats)
            app_s, app_frames, app_mb, copied = preview_seconds(path, "app", args.repeats)
            rows.append({"source": name, "sound": sound, "before_s": before, "before_frames": before_frames,
                         "now_s": now, "now_frames": now_frames, "now_mb": now_mb, "speedup": before / now,
                         "app_s": app_s, "app_frames": app_frames, "app_mb": app_mb, "copied": copied,
                         "app_speedup": now / app_s})
            print(rows[-1], flush=True)
            if name == "4k60" or converter is None:
                per_call, shared, same = converter_ms(path)
                converter = {"source": name, "per_call_ms": per_call, "shared_ms": shared, "same_bits": same}
    load = f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"\npreview of the moment at 12-20 s (cut 2-30 s); the app for a browser that plays HEVC and shows HDR, "
          f"on a GPU that decodes 4K; median of {args.repeats}; {load}")
    print("\n| source | before: s | frames | transcoded: s | frames | MB | the app now: s | how | frames | MB | "
          "before / transcoded | transcoded / the app now |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {r['before_s']:.2f} | {r['before_frames']} | {r['now_s']:.2f} | {r['now_frames']} | "
              f"{r['now_mb']:.1f} | {r['app_s']:.3f} | {how(r)} | "
              f"{r['app_frames']} | {r['app_mb']:.1f} | {r['speedup']:.2f}x | {r['app_speedup']:.1f}x |")
    if converter:
        print(f"\nscaling a {converter['source']} frame to 854x480: {converter['per_call_ms']:.2f} ms with a context "
              f"per call, {converter['shared_ms']:.2f} ms with one for all (same bits: {converter['same_bits']})")
    if side_by_side:
        print(f"\nthe transcodes alone at {args.rev} and here, each in a fresh process, taking turns; median of "
              f"{args.repeats}")
        print(f"\n| source | transcode | span s | at {args.rev}: s | CPU s | here: s | CPU s | {args.rev} / here |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for r in side_by_side:
            print(f"| {r['source']} | {r['what']} | {r['span'][0]:g}-{r['span'][1]:g} | {r['rev_s']:.2f} | "
                  f"{r['rev_cpu_s']:.2f} | {r['now_s']:.2f} | {r['now_cpu_s']:.2f} | {r['speedup']:.2f}x |")
    write_results(args.out, {"seconds": args.seconds, "repeats": args.repeats, "load": load, "rows": rows,
                             "converter": converter, "rev": args.rev, "side_by_side": side_by_side})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
