"""Which reader returns the frames asked for: decord, PyAV and ``open_video``'s ``auto`` on a zoo of formats.

Each file of the zoo is written with the frame number drawn into every frame (``tests.videos.indexed_frames``:
79 frames, 128×96, 25 fps), then read by random batches of frame indices (seeded, sorted, as evaluation and
training ask for them) through each reader; a frame counts as wrong when the number drawn in it is not the one
asked for. ``auto`` must be right on every file: it reads with decord only where decord is
(:func:`vtr.data.video.decord_unsuited`). When a new decord comes out, this says where it is right now.

    python -m bench.decoders                      # the whole zoo, 6 batches of 8 frames a file
    python -m bench.decoders --formats h264.ts,h264.mp4 --batches 2

Writes ``bench/results/decoders.json`` (``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "decoders.json"
FRAMES, HEIGHT, WIDTH = 79, 96, 128
READERS = ("decord", "pyav", "auto")

#: name -> (encoder, its options, what people have such files from)
ZOO = {
    "h264.mp4": ("libx264", {"bf": "3", "g": "12"}, "phones, cameras, downloads"),
    "h264.mov": ("libx264", {"bf": "3", "g": "12"}, "cameras, Apple"),
    "h264.mkv": ("libx264", {"bf": "8", "g": "40", "b-pyramid": "normal", "open-gop": "1"}, "rips, OBS"),
    "h264.flv": ("libx264", {"bf": "3", "g": "12"}, "old web video"),
    "vp9.webm": ("libvpx-vp9", {"g": "12"}, "browsers, YouTube"),
    "vp8.webm": ("libvpx", {"g": "12"}, "browsers"),
    "hevc_nob.mp4": ("libx265", {"x265-params": "bframes=0:keyint=12:log-level=error"}, "Android phones"),
    "hevc.mp4": ("libx265", {"x265-params": "bframes=4:keyint=12:log-level=error"}, "encoders' defaults"),
    "hevc.mkv": ("libx265", {"x265-params": "bframes=4:keyint=12:log-level=error"}, "rips"),
    "mpeg4.mp4": ("mpeg4", {"bf": "2", "g": "12"}, "old cameras"),
    "mpeg2.mkv": ("mpeg2video", {"bf": "2", "g": "15"}, "DVD rips"),
    "h264.ts": ("libx264", {"bf": "3", "g": "12"}, "camcorders (.mts), TV"),
    "h264_nob.ts": ("libx264", {"bf": "0", "g": "12"}, "IP cameras"),
    "mpeg2.ts": ("mpeg2video", {"bf": "2", "g": "15"}, "DVB TV"),
    "h264.avi": ("libx264", {"bf": "0", "g": "12"}, "old editors"),
    "mpeg4.avi": ("mpeg4", {"bf": "2", "g": "12"}, "XviD/DivX"),
    "mpeg4_nob.avi": ("mpeg4", {"bf": "0", "g": "12"}, "XviD/DivX, datasets"),
    "mjpeg.avi": ("mjpeg", None, "webcams, old cameras"),
    "wmv2.wmv": ("wmv2", {"g": "12"}, "Windows Movie Maker"),
    "mpeg2.mpg": ("mpeg2video", {"bf": "2", "g": "15"}, "DVD (.vob), camcorders"),
    "mpeg1.mpg": ("mpeg1video", {"bf": "2", "g": "15"}, "old web video"),
}
PIX_FMT = {"mjpeg": "yuvj420p"}


def write_zoo(folder: Path, names: list[str]) -> dict:
    """{name: path} of the zoo's files written into ``folder`` (an encoder this FFmpeg lacks: left out, said)."""
    from tests.videos import indexed_frames, write_video

    frames = indexed_frames(FRAMES, HEIGHT, WIDTH)
    paths = {}
    for name in names:
        codec, options, _ = ZOO[name]
        try:
            paths[name] = write_video(folder / name, frames, codec=codec, options=options,
                                      pix_fmt=PIX_FMT.get(codec, "yuv420p"))
        except Exception as e:  # noqa: BLE001 - an FFmpeg build without this encoder
            print(f"{name}: not written ({type(e).__name__}: {e})", file=sys.stderr)
    return paths


def wrong_frames(path, reader: str, batches: list[list[int]]) -> dict:
    """How many of the frames asked for come out as other frames, through one reader."""
    from tests.videos import frame_index_of
    from vtr.data.video import open_video

    try:
        with open_video(path, backend=reader) as r:
            wrong = sum(frame_index_of(f) != i for idx in batches for f, i in zip(r.get_frames(idx).numpy(), idx))
            return {"wrong": int(wrong), "asked": sum(map(len, batches)), "backend": r.backend}
    except Exception as e:  # noqa: BLE001 - a reader that cannot open the file: said in the table
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"}


def run(names: list[str], batches: int, seed: int = 0) -> list[dict]:
    from vtr.data.video import _decord_available, decord_unsuited

    rng = random.Random(seed)
    asked = [sorted(rng.sample(range(FRAMES), 8)) for _ in range(batches)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_zoo(Path(tmp), names)  # before decord is imported: its own FFmpeg breaks PyAV's libvpx encoder
        readers = READERS if _decord_available() else ("pyav", "auto")
        for name, path in paths.items():
            row = {"file": name, "from": ZOO[name][2], "auto_reason": decord_unsuited(path)}
            for reader in readers:
                row[reader] = wrong_frames(path, reader, asked)
            rows.append(row)
    return rows


def cell(result: dict | None) -> str:
    if result is None:
        return "not installed"
    if "error" in result:
        return "cannot open"
    return f"{result['wrong']} / {result['asked']}"


def table(rows: list[dict]) -> str:
    lines = ["| file | people have it from | decord wrong | PyAV wrong | auto wrong | auto reads with |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        auto = r["auto"]
        lines.append(f"| {r['file']} | {r['from']} | {cell(r.get('decord'))} | {cell(r['pyav'])} | {cell(auto)} "
                     f"| {auto.get('backend', '-')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default=",".join(ZOO), help="comma-separated zoo names (default: all)")
    ap.add_argument("--batches", type=int, default=6, help="random batches of 8 frames read from each file")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    names = [n for n in a.formats.split(",") if n]
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        ap.error(f"unknown format(s) {', '.join(unknown)}; the zoo has {', '.join(ZOO)}")
    import av

    rows = run(names, a.batches)
    try:
        import decord
        decord_version = decord.__version__
    except Exception:  # noqa: BLE001 - not installed (x86_64 wheels only)
        decord_version = None
    print(table(rows))
    wrong_auto = [r["file"] for r in rows if r["auto"].get("wrong")]
    out = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": platform.processor() or platform.machine(), "load": os.getloadavg(),
           "decord": decord_version, "pyav": av.__version__, "ffmpeg": av.library_versions.get("libavcodec"),
           "frames": FRAMES, "size": [WIDTH, HEIGHT], "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(f"decord {decord_version}, PyAV {av.__version__}; wrote {a.out}")
    if wrong_auto:
        print(f"auto read other frames than asked in: {', '.join(wrong_auto)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
