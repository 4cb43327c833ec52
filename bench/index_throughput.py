"""Index throughput: minutes of wall time per hour of video, vtr (VideoMamba-M) beside a frame-CLIP baseline.

For each resolution (generated footage: textured shots with hard cuts, some static, H.264 at 24 fps) and each
precision, in ONE run so the ratios share the machine's load:

- ``vtr build``     per window policy (``stride``, ``shots``: :mod:`index.policies`; ``shots-2pass``: shots in two
                    decoding passes, the default before the twenty-eighth round): decode (worker processes)
                    + encode every window (``enc``: windows that ran the encoder) with the release-size model
                    (``videomamba_middle_bert``, random weights: speed does not depend on them) through
                    :func:`index.embed.embed_files`, exactly what ``vtr index build`` runs between its catalog
                    commits (model loading and the FAISS sync are excluded: a fixed cost, not per hour);
- ``vtr decode``    decoding alone (one thread, this process): window planning, frames, model-size resize,
                    thumbnails; what the decode workers must keep up with;
- ``vtr encoder``   the encoder alone on pre-decoded windows (:class:`index.embed.WindowEmbedder`), the ceiling
                    the build is compared with (``build/enc``: fraction of it the build reaches; ``after 1st``:
                    the same from the end of the build's first encoder call (one chunk, up to 16 windows) on,
                    without its fixed start of worker spawn, first decode and first encoder call, which an hour
                    of video amortises; blank when the footage is a single chunk);
- ``frame-CLIP``    ViT-B/32 (built here in torch: width 768, 12 layers, 32² patches) on one frame per second,
                    decoded and resized in this process, the usual frame-CLIP indexing recipe.

``min/h`` = wall seconds / video seconds × 60. ``cpu/h`` is the same from CPU seconds (this process and its
decode workers), less sensitive to other users of a shared machine. The load average is printed with each row.

    python -m bench.index_throughput --quick        # 720p, 16 s of footage
    python -m bench.index_throughput                # 720p and 1080p, 32 s each

On 2 idle cores the default run should take about 10 minutes (estimated from the encoder's 2.4-4.2 s per window;
on the loaded machine it was measured on, 16 s of footage at two resolutions took about 13 minutes).
    python -m bench.index_throughput --resolutions 360p,720p,1080p,2160p --seconds 60
    python -m bench.index_throughput --resolutions 1080p --codecs h264,hevc-hlg   # beside an iPhone's HDR HEVC
    python -m bench.index_throughput --resolutions 720p --mbits 8 --grain 3        # at a phone's bitrate
    python -m bench.index_throughput --policies shots,shots-2pass --decode-only    # one decoding pass or two

Writes ``bench/results/index_throughput.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

if "torch" not in sys.modules:  # before torch loads (see vtr/__init__.py): idle OpenMP threads must not spin
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "index_throughput.json"
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
FPS = 24


# ------------------------------------------------------------------------------------------------- footage
SHOTS = (3.0, 10.0)  # seconds a shot of the default footage lasts (uniform): edited footage, a cut every 6.5 s
STATIC = 1 / 3  # chance that a shot of the default footage does not move


#: The footage's codecs (``--codecs``): x264's H.264 (every round before the twenty-seventh), and a phone's HDR as an
#: iPhone records it by default (10-bit HEVC tagged HLG and BT.2020, a keyframe each second): encoder, pixel format,
#: extra options, (primaries, matrix, transfer) or None
CODECS = {"h264": ("libx264", "yuv420p", {}, None),
          "hevc-hlg": ("libx265", "yuv420p10le", {"x265-params": f"keyint={FPS}:log-level=error"}, (9, 9, 18))}


def make_footage(path: Path, seconds: float, width: int, height: int, seed: int = 0,
                 preset: str = "ultrafast", shots: tuple = SHOTS, static: float = STATIC,
                 codec: str = "h264", mbits: float | None = None, grain: float = 0.0) -> Path:
    """Footage (H.264 unless ``codec`` says) of shots ``shots`` seconds long (3-10 s) with hard cuts: each shot a random
    texture over its own colour cast, panning or (a ``static`` share, one in three) static. Textures are drawn at 1/8
    resolution and upscaled, so generation stays cheap at 4K. ``preset``: x264's (x265's); ``ultrafast`` (what every
    round before the eleventh measured) has no B-frames and no deblocking filter, so it decodes faster than ordinary
    footage; ``veryfast`` and slower have both. Long shots that all move (``--shots 60-120 --static 0``) stand for a
    phone's single takes: the window count of the shots policy then follows the length alone, and no window is reused.
    ``codec``: of :data:`CODECS` (an HDR one holds the same pictures, only tagged HDR: all a timing needs, as they are
    decoded and tone-mapped all the same). ``mbits``: encoded at that average bitrate (Mbit/s) instead of crf 23, which
    gives these textures a fraction of a phone's (0.2-0.5 Mbit/s at 720p-1080p against a phone's 8-20): decoding costs
    more the more bits it reads. ``grain``: a camera sensor's noise over every frame (its standard deviation in code
    values; 8 noise frames drawn once and taken in turn, shifted), which is what makes a phone's bitrate."""
    import av

    encoder, pix_fmt, options, colours = CODECS[codec]

    rng = np.random.default_rng(seed)
    noise = (np.clip(np.random.default_rng([seed, 1]).normal(0, grain, (8, height, width, 3)), -127, 127)
             .astype(np.int16) if grain else None)  # (its own generator: the same shots with or without it)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": preset, **options, **({} if mbits else {"crf": "23"})}
        if mbits:
            stream.bit_rate = int(mbits * 1e6)
        if colours:
            cc = stream.codec_context
            cc.color_primaries, cc.colorspace, cc.color_trc = colours
        t = 0
        total = int(seconds * FPS)
        while t < total:
            shot = min(total - t, int(rng.uniform(*shots) * FPS))
            tint = rng.integers(0, 256, 3)
            small = (rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)) // 2 + tint // 2).astype(np.uint8)
            base = np.repeat(np.repeat(small, 8, 0), 8, 1)[:height, :width]
            speed = 0 if rng.random() < static else int(rng.integers(2, 9))
            for i in range(shot):
                frame = np.roll(base, speed * i, axis=1) if speed else base
                if noise is not None:
                    grainy = noise[(t + i) % len(noise)]
                    frame = np.clip(frame + np.roll(grainy, (t + i) // len(noise), axis=0), 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            t += shot
        for packet in stream.encode():
            container.mux(packet)
    return path


# ------------------------------------------------------------------------------------------- frame-CLIP
def build_frame_clip():
    """ViT-B/32 image tower of CLIP (patch 32, width 768, 12 layers, 12 heads, 512-d projection), random weights."""
    import torch
    import torch.nn as nn

    class ViTB32(nn.Module):
        def __init__(self, width=768, layers=12, heads=12, patch=32, image=224, out_dim=512):
            super().__init__()
            self.conv = nn.Conv2d(3, width, patch, patch, bias=False)
            self.cls = nn.Parameter(torch.randn(width) * 0.02)
            self.pos = nn.Parameter(torch.randn((image // patch) ** 2 + 1, width) * 0.01)
            self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
            layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.proj = nn.Linear(width, out_dim, bias=False)

        def forward(self, x):  # x: [B, 3, 224, 224] -> [B, 512]
            x = self.conv(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.pos
            x = self.blocks(self.ln_pre(x))
            return self.proj(self.ln_post(x[:, 0]))

    return ViTB32().eval()


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run_frame_clip(model, path: Path, precision: str, batch: int = 16, device: str = "cpu") -> dict:
    """Decode one frame per second (in this process), resize to 224², normalise, embed in batches."""
    import torch

    from vtr.data.transforms import normalize, resize_uint8
    from vtr.data.video import open_video
    from vtr.precision import autocast

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    t0, c0 = time.perf_counter(), time.process_time()
    with open_video(str(path)) as reader:
        idx = [int(round(s * reader.fps)) for s in range(int(reader.duration))]
        idx = [i for i in idx if i < reader.num_frames]
        frames = reader.get_frames(idx).permute(0, 3, 1, 2).contiguous()
    decode_s = time.perf_counter() - t0
    with torch.inference_mode(), autocast(precision, device):
        for k in range(0, len(frames), batch):
            x = resize_uint8(frames[k:k + batch], (224, 224))
            model(normalize(x, mean, std).to(device))
    _sync(device)
    return {"frames": len(idx), "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "decode_s": decode_s}


# ------------------------------------------------------------------------------------------------- vtr
def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_vtr_build(model, path: Path, precision: str, batch: int, workers: int, policy: str = "stride",
                  decoder_threads: int = 1, backend: str = "pyav") -> dict:
    from index.embed import WindowEmbedder, embed_files, make_pool
    from index.decode import DecodeSettings, FileFailure

    pre = model.preprocess
    policy, one_pass = policy_of(policy)
    settings = DecodeSettings(num_frames=pre.num_frames, img_size=pre.img_size, window_policy=policy,
                              decoder_threads=decoder_threads, antialias=pre.antialias, video_backend=backend,
                              one_pass=one_pass)
    embedder = _TimedEmbedder(WindowEmbedder(model, batch, precision, reuse_duplicates=policy == "shots"))
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu_s()
    pool = make_pool(model, settings, workers)  # as a build makes it: on a GPU an automatic pool starts at its cap
    items = list(embed_files(model, [(0, str(path))], settings, batch_size=batch, workers=workers, progress=False,
                             embedder=embedder, pool=pool))
    wall = time.perf_counter() - t0
    failed = [i for i in items if isinstance(i, FileFailure)]
    if failed:
        raise RuntimeError(f"build failed: {failed[0].reason}")
    calls = embedder.calls  # [(end time, windows encoded by the call)]
    return {"windows": len(items[0].windows), "reused": embedder.reused, "wall_s": wall,
            "peak_workers": pool.peak_workers,
            "cpu_s": time.process_time() - c0 + _children_cpu_s() - k0,
            # the fixed start (worker spawn, the first chunk's decode, the encoder's first call) and what follows it
            "start_s": calls[0][0] - t0 if calls else None,
            "after_first_s": calls[-1][0] - calls[0][0] if len(calls) > 1 else None,
            "after_first_encoded": sum(n for _, n in calls[1:])}


class _TimedEmbedder:
    """A WindowEmbedder that notes when each of its calls (one or more decoded chunks) ends and how many windows the
    call encoded (not reused)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, frames, groups=None):
        before = self.inner.reused
        out = self.inner(frames, groups)
        self.calls.append((time.perf_counter(), len(frames) - (self.inner.reused - before)))
        return out


#: A row's window policy: one of index.policies.POLICIES, or ``shots-2pass``: the shots policy in two decoding passes
#: (cut detection on cheap frames, then the windows' own frames; the default before the twenty-eighth round).
TWO_PASS = "shots-2pass"


def policy_of(name: str) -> tuple[str, bool]:
    """(window policy, one decoding pass) of a ``--policies`` entry."""
    from index.policies import check_policy

    return ("shots", False) if name == TWO_PASS else (check_policy(name), True)


def policies_arg(parser, text: str) -> list[str]:
    """A ``--policies`` value as a list, each entry known (:func:`policy_of`), or the parser's error naming them."""
    from vtr.errors import VtrError

    names = [x for x in text.split(",") if x]
    for name in names:
        try:
            policy_of(name)
        except VtrError as e:
            parser.error(f"{e}, or {TWO_PASS} (shots in two decoding passes)")
    return names


def run_vtr_decode(model, path: Path, policy: str = "stride", decoder_scale: bool = True,
                   detection: str = "cheap", backend: str = "pyav") -> dict:
    """Decoding alone, in this process (one decoding thread, as in a worker): every chunk of the file, the
    window planning (cut detection for ``shots``), the model-size resize and the thumbnails. ``decoder_scale``
    False: full-resolution RGB frames resized by Preprocess alone (the path before issue 14's decoder scaling).
    ``detection``: ``cheap`` (the default, :func:`index.policies.detection_frames`) or ``full`` (every frame decoded
    for cut detection, as before the eleventh round). ``backend``: the windows' decoder (DecodeSettings.video_backend;
    ``decord`` before the fourteenth round)."""
    import torch

    from index import policies
    from index.decode import DecodeSettings, decode_chunk

    if detection not in ("cheap", "full"):
        raise ValueError(f"unknown detection {detection!r}: cheap or full")
    real = policies.detection_frames
    policies.detection_frames = lambda *a, **k: real(*a, **k, cheap=detection == "cheap")

    pre = model.preprocess
    policy, one_pass = policy_of(policy)
    settings = DecodeSettings(num_frames=pre.num_frames, img_size=pre.img_size, window_policy=policy,
                              decoder_scale=decoder_scale, antialias=pre.antialias, video_backend=backend,
                              one_pass=one_pass)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a decode worker runs with
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        first = decode_chunk(str(path), 0, settings)
        windows = len(first.windows)
        for c in range(1, first.n_chunks):
            windows += len(decode_chunk(str(path), c, settings).windows)
        return {"windows": windows, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    finally:
        torch.set_num_threads(threads)
        policies.detection_frames = real


def run_vtr_encoder(model, windows: int, precision: str, batch: int, passes: int = 2) -> dict:
    """The encoder alone on random uint8 windows: seconds per window (best of ``passes`` passes)."""
    from index.embed import WindowEmbedder

    pre = model.preprocess
    embedder = WindowEmbedder(model, batch, precision)
    fake = np.random.default_rng(1).integers(0, 256, (windows, pre.num_frames, 3, pre.img_size, pre.img_size),
                                             dtype=np.uint8)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(passes):
        t0, c0 = time.perf_counter(), time.process_time()
        vectors = embedder(fake)  # returns numpy: already synchronised
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return {"s_per_window": best / windows, "cpu_s_per_window": best_cpu / windows, "vectors": vectors}


def _workers(text: str) -> int | None:
    """``--workers``: a number, or ``auto`` (None: the build's default, a pool that grows while it is waited for)."""
    return None if text == "auto" else int(text)


# ------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", default="720p,1080p", help=f"comma separated, of {', '.join(RESOLUTIONS)}")
    p.add_argument("--seconds", type=float, default=32.0, help="seconds of footage per resolution")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--policies", default="stride,shots",
                   help=f"window policies (index.policies), or {TWO_PASS}: shots in two decoding passes")
    p.add_argument("--batch-size", type=int, default=4, help="windows per encoder batch (vtr)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="decode worker processes (vtr), or auto: 2 and more while the encoder waits (the build's "
                        "default)")
    p.add_argument("--thread-variants", default="",
                   help="extra vtr build rows with other decode threading, WORKERSxCODEC_THREADS comma separated, "
                        "e.g. 2x0 (two workers, FFmpeg's automatic codec threads: the settings before issue 14)")
    p.add_argument("--encoder-batches", default="",
                   help="encoder-alone rows at these batch sizes too (s/window per batch), e.g. 1,2,4")
    p.add_argument("--decode-only", action="store_true", help="only the decode rows (no model runs)")
    p.add_argument("--no-decoder-scale-rows", action="store_true",
                   help="skip the decode-only rows without decoder scaling")
    p.add_argument("--model", default="videomamba_middle_bert", help="architecture, random weights")
    p.add_argument("--device", default="cpu", help="torch device of both encoders (decoding stays on CPU)")
    p.add_argument("--no-baseline", action="store_true", help="skip frame-CLIP")
    p.add_argument("--footage-dir", default=None, help="where generated footage is kept (default: a temp folder)")
    p.add_argument("--preset", default="ultrafast",
                   help="x264 preset of the generated footage: ultrafast (no B-frames, no deblocking: the earlier "
                        "rounds' footage) or e.g. veryfast (both, as ordinary footage has)")
    p.add_argument("--shots", default="3-10",
                   help="MIN-MAX seconds a shot of the generated footage lasts: 3-10 (the default, edited footage), "
                        "e.g. 60-120 for single takes")
    p.add_argument("--static", type=float, default=STATIC, help="share of static shots in the generated footage")
    p.add_argument("--detection", default="cheap",
                   help=f"cut detection of the {TWO_PASS} policy's decode-only rows, comma separated: cheap (the "
                        "default: unreferenced frames and the loop filter skipped) and/or full (every frame)")
    p.add_argument("--decode-backends", default="pyav",
                   help="decoders of the decode-only and build rows, comma separated: pyav (the index's) "
                        "and/or decord (the index's before the fourteenth round) or auto")
    p.add_argument("--codecs", default="h264", help=f"footage codecs, comma separated, of {', '.join(CODECS)}")
    p.add_argument("--grain", type=float, default=0.0,
                   help="a camera's sensor noise over the footage, its standard deviation in code values (e.g. 3)")
    p.add_argument("--mbits", type=float, default=None,
                   help="footage at this average bitrate, Mbit/s (a phone's: 8-20), instead of crf 23")
    p.add_argument("--quick", action="store_true", help="720p only, 16 s of footage")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    if a.quick:
        a.resolutions, a.seconds = "720p", 16.0
    resolutions = [r for r in a.resolutions.split(",") if r]
    precisions = [x for x in a.precisions.split(",") if x]
    policies = policies_arg(p, a.policies)
    detections = [x for x in a.detection.split(",") if x]
    backends = [x for x in a.decode_backends.split(",") if x]
    for b_ in backends:
        if b_ not in ("pyav", "decord", "auto"):
            p.error(f"unknown --decode-backends entry {b_!r}: pyav, decord or auto")
    try:
        shots = tuple(float(x) for x in a.shots.split("-"))
        if len(shots) != 2 or not 0 < shots[0] <= shots[1]:
            raise ValueError
    except ValueError:
        p.error(f"--shots {a.shots!r}: expected MIN-MAX seconds, e.g. 3-10")
    if not 0 <= a.static <= 1:
        p.error(f"--static {a.static}: a share between 0 and 1")
    for d in detections:
        if d not in ("cheap", "full"):
            p.error(f"unknown --detection {d!r}: cheap or full")
    for r in resolutions:
        if r not in RESOLUTIONS:
            p.error(f"unknown resolution {r!r}")
    codecs = [x for x in a.codecs.split(",") if x]
    for c in codecs:
        if c not in CODECS:
            p.error(f"unknown --codecs entry {c!r}: {', '.join(CODECS)}")

    import torch

    import vtr
    from vtr.precision import cpu_has_native_bf16

    footage = Path(a.footage_dir or tempfile.mkdtemp(prefix="vtr-bench-footage-"))
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(), "device": a.device,
                          "loadavg_at_start": os.getloadavg()},
              "args": vars(a), "rows": []}
    torch.manual_seed(0)
    model = vtr.create_model(a.model).to(a.device).eval()
    model.index_source = a.model
    clip = None if a.no_baseline else build_frame_clip().to(a.device)

    # encoder alone, per precision (and bf16 vs fp32 agreement of the same windows)
    enc = {}
    if a.decode_only:
        precisions, clip = [], None
    for prec in precisions:
        # two batches a pass, best of three: one batch of one pass was the reference until the eleventh round, and
        # a build's steady rate came out up to 1.2x above it
        enc[prec] = run_vtr_encoder(model, 2 * a.batch_size, prec, a.batch_size, passes=3)
    if "fp32" in enc:
        ref = enc["fp32"]["vectors"]
        for prec, e in enc.items():
            v = e["vectors"]
            cos = (v * ref).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ref, axis=1)
            e["cos_vs_fp32_min"] = float(cos.min())
    for prec, e in enc.items():
        e.pop("vectors")
        print(f"[encoder] {prec}: {e['s_per_window']:.2f} s/window (CPU {e['cpu_s_per_window']:.2f})"
              + (f", cosine vs fp32 >= {e['cos_vs_fp32_min']:.5f}" if "cos_vs_fp32_min" in e else "")
              + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    report["encoder"] = enc
    # per-window cost by batch size, precisions alternated batch by batch
    report["encoder_batches"] = []
    for bs in [int(x) for x in a.encoder_batches.split(",") if x]:
        for prec in precisions:
            e = run_vtr_encoder(model, bs, prec, bs)
            e.pop("vectors")
            e.update(batch=bs, precision=prec, loadavg=os.getloadavg()[0])
            report["encoder_batches"].append(e)
            print(f"[encoder] batch {bs} {prec}: {e['s_per_window']:.2f} s/window (CPU {e['cpu_s_per_window']:.2f})"
                  f"  load {e['loadavg']:.1f}", flush=True)
    variants = [tuple(int(x) for x in v.split("x")) for v in a.thread_variants.split(",") if v]

    for res, codec in [(r_, c_) for r_ in resolutions for c_ in codecs]:
        w, h = RESOLUTIONS[res]
        tag = "" if a.preset == "ultrafast" else f"_{a.preset}"
        if shots != SHOTS or a.static != STATIC:
            tag += f"_shots{a.shots}_static{a.static:g}"
        if a.mbits:
            tag += f"_{a.mbits:g}mbits"
        if a.grain:
            tag += f"_grain{a.grain:g}"
        path = footage / f"footage_v2_{res}_{int(a.seconds)}s{tag}{'' if codec == 'h264' else '_' + codec}.mp4"
        if codec != "h264":  # the rows' resolution says the codec too
            res = f"{res} {codec}"
        if not path.is_file():
            t0 = time.perf_counter()
            make_footage(path, a.seconds, w, h, preset=a.preset, shots=shots, static=a.static, codec=codec,
                         mbits=a.mbits, grain=a.grain)
            print(f"[footage] {res}: {a.seconds:g} s generated in {time.perf_counter() - t0:.1f} s", flush=True)
        for policy, scale, det, be in [(p_, s_, d_, b_) for p_ in policies
                                       for s_ in ((True,) if a.no_decoder_scale_rows else (True, False))
                                       for d_ in (detections if p_ == TWO_PASS else ["cheap"]) for b_ in backends]:
            d = run_vtr_decode(model, path, policy, decoder_scale=scale, detection=det, backend=be)
            row = {"system": "vtr decode only" + ("" if scale else " (full-res)")
                             + (" (full detection)" if det == "full" else "")
                             + ("" if be == "pyav" else f" ({be})"), "resolution": res,
                   "precision": "-", "policy": policy,
                   "video_s": a.seconds, "units": d["windows"], "wall_s": d["wall_s"], "cpu_s": d["cpu_s"],
                   "min_per_hour": d["wall_s"] / a.seconds * 60, "cpu_min_per_hour": d["cpu_s"] / a.seconds * 60,
                   "loadavg": os.getloadavg()[0]}
            report["rows"].append(row)
            print(f"[decode] {res} {policy} scale={scale} detection={det} {be}: {d['windows']} windows decoded in "
                  f"{d['wall_s']:.1f} s -> "
                  f"{row['min_per_hour']:.1f} min/h  load {row['loadavg']:.1f}", flush=True)
        for prec in precisions:
            for policy, (workers, codec), be in [(p_, v, b_) for p_ in policies for v in [(a.workers, 1)] + variants
                                                 for b_ in backends]:
                b = run_vtr_build(model, path, prec, a.batch_size, workers, policy, decoder_threads=codec, backend=be)
                e = enc[prec]
                encoded = b["windows"] - b["reused"]
                enc_s = e["s_per_window"] * encoded
                name = ("vtr build" + ("" if (workers, codec) == (a.workers, 1) else f" {workers}w×{codec or 'auto'}t")
                        + ("" if be == "pyav" else f" ({be})"))
                row = {"system": name, "resolution": res, "precision": prec, "policy": policy,
                       "workers": "auto" if workers is None else workers, "peak_workers": b["peak_workers"],
                       "decoder_threads": codec,
                       "video_s": a.seconds, "units": b["windows"], "encoded": encoded, "wall_s": b["wall_s"],
                       "cpu_s": b["cpu_s"], "min_per_hour": b["wall_s"] / a.seconds * 60,
                       "cpu_min_per_hour": b["cpu_s"] / a.seconds * 60,
                       "encoder_alone_min_per_hour": enc_s / a.seconds * 60, "build_vs_encoder": enc_s / b["wall_s"],
                       "start_s": b["start_s"],
                       # after the first chunk: the rate an hour of video runs at, without the fixed start
                       "build_vs_encoder_after_start": (e["s_per_window"] * b["after_first_encoded"]
                                                        / b["after_first_s"]) if b["after_first_s"] else None,
                       "loadavg": os.getloadavg()[0]}
                report["rows"].append(row)
                steady = row["build_vs_encoder_after_start"]
                print(f"[vtr] {name} {res} {prec} {policy}: {b['windows']} windows ({encoded} encoded) in {b['wall_s']:.1f} s "
                      f"-> {row['min_per_hour']:.1f} min/h (encoder alone {row['encoder_alone_min_per_hour']:.1f}; "
                      f"build reaches {100 * row['build_vs_encoder']:.0f}%"
                      + (f", {100 * steady:.0f}% after its first chunk at {b['start_s']:.1f} s" if steady else "")
                      + f")  load {row['loadavg']:.1f}", flush=True)
            if clip is not None:
                c = run_frame_clip(clip, path, prec, device=a.device)
                row = {"system": "frame-CLIP B/32 1fps", "resolution": res, "precision": prec, "policy": "1 fps",
                       "video_s": a.seconds, "units": c["frames"], "wall_s": c["wall_s"], "cpu_s": c["cpu_s"],
                       "min_per_hour": c["wall_s"] / a.seconds * 60, "cpu_min_per_hour": c["cpu_s"] / a.seconds * 60,
                       "decode_s": c["decode_s"], "loadavg": os.getloadavg()[0]}
                report["rows"].append(row)
                print(f"[clip] {res} {prec}: {c['frames']} frames in {c['wall_s']:.1f} s -> "
                      f"{row['min_per_hour']:.1f} min/h  load {row['loadavg']:.1f}", flush=True)

    report["machine"]["loadavg_at_end"] = os.getloadavg()
    print_table(report)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


def print_table(report: dict) -> None:
    print(f"\n{'system':34s} {'res':>6s} {'prec':>5s} {'policy':>7s} {'units':>6s} {'enc':>4s} {'wall s':>7s} "
          f"{'min/h':>7s} "
          f"{'cpu/h':>7s} {'enc min/h':>9s} {'build/enc':>9s} {'after 1st':>9s} {'load':>5s}")
    for r in report["rows"]:
        enc = f"{r['encoder_alone_min_per_hour']:9.1f}" if "encoder_alone_min_per_hour" in r else f"{'':9s}"
        ratio = f"{100 * r['build_vs_encoder']:8.0f}%" if "build_vs_encoder" in r else f"{'':9s}"
        steady = r.get("build_vs_encoder_after_start")
        ratio += f" {100 * steady:8.0f}%" if steady else f" {'':9s}"
        print(f"{r['system']:34s} {r['resolution']:>6s} {r['precision']:>5s} {r['policy']:>7s} {r['units']:6d} "
              f"{r.get('encoded', r['units']):4d} "
              f"{r['wall_s']:7.1f} {r['min_per_hour']:7.1f} {r['cpu_min_per_hour']:7.1f} {enc} {ratio} "
              f"{r['loadavg']:5.1f}")
    m = report["machine"]
    print(f"load average at start {m['loadavg_at_start'][0]:.1f}, at end {m['loadavg_at_end'][0]:.1f} "
          f"({m['cpus']} CPUs, native bf16: {m['native_bf16']})")


if __name__ == "__main__":
    sys.exit(main())
