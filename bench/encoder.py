"""Encoder benchmark: VideoMamba vs quadratic ViT baselines on this machine's CPU (or GPU with --device cuda).

Sections (``--sections``, comma separated; default all):

- ``scan``      ``bench.scan.scan_benchmark()`` when that module exists (the selective-scan engineer's bench).
- ``peak``      the machine's GEMM peak, fp32 and bf16, on a large square matmul.
- ``encoder``   VideoMamba ti/s/m forward, batch 1, 224², per frame count and precision (fp32, bf16 autocast):
                s/clip, clips/s, peak memory, analytic GFLOP and achieved GFLOP/s.
- ``baselines`` two ViTs with VideoMamba-M's parameter count and joint space-time attention: through torch
                SDPA, and with materialised softmax(QKᵀ)V (the paper's Fig. 1 baseline).
- ``breakdown`` where the time of VideoMamba-M 8×224² goes (scan, matmuls, conv, norms, flips/copies/other).
- ``conv``      (not in the default list) the mixer's conv1d + SiLU alone: torch vs the fused numba kernel.
- ``gemms``     (not in the default list) VideoMamba-M's mixer GEMMs at each ``--batch``, fp32: ``F.linear`` (MKL's
                sgemm) vs :func:`vtr.ops.mixer_ops.linear_rows` (oneDNN), alternated call by call.
- ``wide``      (not in the default list) the inference scan kernel alone on one M mixer direction, 1 and 2
                threads, with ``--wide`` variants (``VTR_NUMBA_WIDE``) in fresh processes, alternated, ≥ 3 rounds.
- ``ab``        (not in the default list) VideoMamba-M in one process with the ``--fused`` variants alternated
                forward by forward, per dtype and ``--batch``: ``--sections ab --fused 1,0 --dtypes fp32,bf16``.

``--rev REV`` runs every VideoMamba configuration of the ``encoder`` section at commit REV too (``git archive`` into a
temporary folder, its own ``bench.encoder`` worker), alternated config by config with this checkout's, and prints
their ratio: a side-by-side of two versions of the library in one run.

Every model configuration runs in a fresh subprocess, so peak memory is that process's ``ru_maxrss`` (the whole
process: interpreter, torch, weights, activations) and ``act_mib`` = peak − RSS just before the first forward
(what the forward itself added). On CUDA, ``torch.cuda.max_memory_allocated`` is reported instead.

    python -m bench.encoder --quick                      # a couple of minutes: M at 8 frames + baselines at 8
    python -m bench.encoder --models middle --frames 8 --dtypes fp32,bf16 --sections encoder
    python -m bench.encoder --models middle --frames 8 --dtypes fp32 --sections encoder --wide 1,0 --rounds 3
    python -m bench.encoder --models middle --frames 8 --sections encoder --rev da6cc0b --rounds 3 --repeats 3
    python -m bench.encoder --sections gemms --batch 1,4 --conv-repeats 10   # the mixer's fp32 GEMMs, MKL vs oneDNN
    python -m bench.encoder                              # everything (long: the 64-frame attention baseline alone
                                                         # needs ~12 GiB and minutes)

Writes ``bench/results/encoder.json`` (``--out``) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "encoder.json"
SIZES = {"tiny": (192, 24), "small": (384, 24), "middle": (576, 32)}
PATCHES_224 = 196


# ----------------------------------------------------------------------------------------------- FLOP counts
def videomamba_flops(dim, depth, frames, patches=PATCHES_224, d_state=16, d_conv=4, expand=2, patch_size=16):
    """Forward FLOPs (multiply-add = 2) of VideoMamba, by part: matmuls, depthwise conv, scan, patch embed.

    Scan: 9·L·d_inner·N per direction (mamba_ssm's count: Δ·A, exp, decay, Δ·u·B, state update, C contraction),
    plus D skip and SiLU(z) gate; norms and elementwise activations are ignored (<1%).
    """
    seq = 1 + frames * patches
    di, rank = expand * dim, math.ceil(dim / 16)
    per_layer = {
        # in_proj + out_proj + per direction (x_proj + dt_proj)
        "matmul": (2 * seq * dim * 2 * di + 2 * seq * di * dim
                   + 2 * (2 * seq * di * (rank + 2 * d_state) + 2 * seq * rank * di)),
        "conv": 2 * 2 * seq * di * d_conv,
        "scan": 2 * (9 * seq * di * d_state + 3 * seq * di),
    }
    out = {k: v * depth for k, v in per_layer.items()}
    out["patch_embed"] = 2 * frames * patches * 3 * patch_size ** 2 * dim
    out["total"] = sum(out.values())
    return out


def vit_flops(dim, depth, frames, patches=PATCHES_224, mlp_ratio=4, patch_size=16):
    """Forward FLOPs of a ViT with joint space-time attention over L = 1 + T·P tokens."""
    seq = 1 + frames * patches
    linear = depth * 2 * seq * dim * dim * (3 + 1 + 2 * mlp_ratio)
    attention = depth * 4 * seq * seq * dim
    patch = 2 * frames * patches * 3 * patch_size ** 2 * dim
    return {"matmul": linear, "attention": attention, "patch_embed": patch, "total": linear + attention + patch}


def vit_depth_matching(params_target, dim, mlp_ratio=4):
    per_block = dim * dim * (4 + 2 * mlp_ratio) + dim * (4 + mlp_ratio + 4)
    return max(1, round(params_target / per_block))


# ---------------------------------------------------------------------------------------- ViT baselines
def build_vit(dim, depth, heads, frames, attention, img_size=224, patch_size=16):
    """A plain pre-norm ViT over all T·P patch tokens + cls (joint space-time attention)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            if attention == "sdpa":
                o = F.scaled_dot_product_attention(q, k, v)
            else:  # materialised: the [B, H, L, L] matrix exists in memory
                attn = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
                o = attn.softmax(-1) @ v
            return self.proj(o.transpose(1, 2).reshape(b, n, dim))

    class ViTBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn = nn.LayerNorm(dim), Attention()
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class VideoViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv3d(3, dim, (1, patch_size, patch_size), (1, patch_size, patch_size))
            grid = (img_size // patch_size) ** 2
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.zeros(1, 1 + grid, dim))
            self.tpos = nn.Parameter(torch.zeros(1, frames, dim))
            self.blocks = nn.ModuleList(ViTBlock() for _ in range(depth))
            self.norm = nn.LayerNorm(dim)

        def forward(self, frames_):
            b, t = frames_.shape[:2]
            x = self.patch(frames_.transpose(1, 2)).flatten(3).permute(0, 2, 3, 1)  # [B, T, P, D]
            x = (x + self.pos[:, None, 1:] + self.tpos[:, :t, None]).reshape(b, -1, dim)
            x = torch.cat([(self.cls + self.pos[:, :1]).expand(b, -1, -1), x], 1)
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)

    return VideoViT()


# ------------------------------------------------------------------------------------------ one config
def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_config(spec):
    """Build one model, time its forward; runs inside a fresh worker process. Returns a result dict."""
    import torch

    torch.manual_seed(0)
    device = torch.device(spec.get("device", "cpu"))
    kind, size, frames, dtype = spec["kind"], spec["size"], spec["frames"], spec["dtype"]
    if kind == "videomamba":
        from vtr.models import videomamba as vm

        model = getattr(vm, f"videomamba_{size}")(num_frames=frames)
        dim, depth = SIZES[size]
        flops = videomamba_flops(dim, depth, frames)
    else:
        dim, depth, heads = spec["dim"], spec["depth"], spec["heads"]
        model = build_vit(dim, depth, heads, frames, attention=kind.split("_")[1])
        flops = vit_flops(dim, depth, frames)
    params = sum(p.numel() for p in model.parameters())
    model = model.to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=(dtype == "bf16"))

    batch = spec.get("batch", 1)

    def forward(t):
        x = torch.randn(batch, t, 3, 224, 224, device=device)
        with torch.inference_mode(), autocast:
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    forward(1)  # JIT compiles (numba scan), allocator and oneDNN primitive warm-up on a 1-frame clip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mib()
    times, cpu = [], []
    deadline = time.perf_counter() + spec.get("budget_s", 60)
    for i in range(spec.get("repeats", 2)):
        t0, c0 = time.perf_counter(), time.process_time()
        forward(frames)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if time.perf_counter() > deadline:
            break
    peak = _max_rss_mib()
    res = dict(spec, params=params, seq_len=1 + frames * PATCHES_224, times_s=times,
               s_per_clip=min(times) / batch, s_per_clip_median=statistics.median(times) / batch,
               cpu_s=cpu, cpu_s_per_clip=min(cpu) / batch,
               clips_per_s=batch / min(times),
               gflop=flops["total"] / 1e9, gflops_achieved=batch * flops["total"] / 1e9 / min(times),
               flops_by_part={k: v / 1e9 for k, v in flops.items()},
               peak_rss_mib=peak, act_mib=peak - rss_before, threads=torch.get_num_threads(),
               loadavg=os.getloadavg()[0])
    if device.type == "cuda":
        res["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return res


def run_scan_config(spec):
    """The inference scan kernel alone on one VideoMamba-M mixer direction ([1, 1569, 1152] rows, N = 16, softplus
    and gate on), ``spec["threads"]`` numba threads; best and median of ``spec["calls"]`` calls, wall and CPU time."""
    import torch

    from vtr.ops import selective_scan as ss

    torch.manual_seed(0)
    torch.set_num_threads(spec["threads"])
    d, length, n = 1152, 1 + 8 * PATCHES_224, 16
    x = dict(u=torch.randn(1, length, d), delta=torch.randn(1, length, d) * 0.5 - 1, A=-torch.rand(d, n) * 4,
             B=torch.randn(1, length, n), C=torch.randn(1, length, n), D=torch.randn(d), z=torch.randn(1, length, d),
             delta_bias=torch.randn(d) * 0.1)
    for _ in range(2):
        ss.selective_scan_rows(**x, delta_softplus=True, impl="cpu")
    wall, cpu = [], []
    for _ in range(spec["calls"]):
        t0, c0 = time.perf_counter(), time.process_time()
        ss.selective_scan_rows(**x, delta_softplus=True, impl="cpu")
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    from numba.core.registry import cpu_target

    return dict(spec, wall_ms=1e3 * min(wall), wall_ms_median=1e3 * statistics.median(wall), cpu_ms=1e3 * min(cpu),
                cpu_ms_median=1e3 * statistics.median(cpu), loadavg=os.getloadavg()[0],
                zmm_preferred=cpu_target.target_context.codegen()._tm_features.endswith(",-prefer-256-bit"))


def section_wide(args):
    """The scan kernel with and without 512-bit vectors (VTR_NUMBA_WIDE=1/0), fresh processes alternated."""
    rows = []
    for _ in range(max(args.rounds, 3)):
        for threads in (1, 2):
            for wide in args.wide:
                spec = dict(kind="scan", wide=wide, threads=threads, calls=args.conv_repeats // 5 or 10,
                            omp_wait_policy=args.omp_wait_policy)
                res = run_in_subprocess(spec, args.timeout)
                rows.append(res)
                if "error" in res:
                    print(f"[wide] wide={wide} threads={threads}: {res['error']}")
                else:
                    print(f"[wide] VTR_NUMBA_WIDE={wide} (zmm {res['zmm_preferred']}) threads={threads}: "
                          f"best {res['wall_ms']:.2f} ms wall, {res['cpu_ms']:.2f} ms CPU; median "
                          f"{res['wall_ms_median']:.2f} / {res['cpu_ms_median']:.2f}  load {res['loadavg']:.1f}",
                          flush=True)
    ok = [r for r in rows if "error" not in r]
    print("\n| threads | VTR_NUMBA_WIDE | best wall ms | median wall ms | best CPU ms | median CPU ms | runs |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for threads in (1, 2):
        for wide in args.wide:
            rs = [r for r in ok if r["threads"] == threads and r["wide"] == wide]
            if rs:
                print(f"| {threads} | {wide} | {min(r['wall_ms'] for r in rs):.2f} | "
                      f"{statistics.median(r['wall_ms_median'] for r in rs):.2f} | "
                      f"{min(r['cpu_ms'] for r in rs):.2f} | "
                      f"{statistics.median(r['cpu_ms_median'] for r in rs):.2f} | {len(rs)} |")
    return rows


def run_in_subprocess(spec, timeout):
    cmd = [sys.executable, "-m", "bench.encoder", "--worker", json.dumps(spec)]
    root = checkout_of(spec.get("rev", "."))
    paths = [str(root)] + [q for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))  # that checkout's vtr, not the installed one
    if spec.get("omp_wait_policy"):
        # read by libgomp when torch loads it: must be set before the worker imports torch
        env["OMP_WAIT_POLICY"] = spec["omp_wait_policy"]
    if "fused" in spec:
        env["VTR_FUSED"] = str(spec["fused"])  # vtr.ops.mixer_ops: numba conv/norm kernels on (1) or off (0)
    if "wide" in spec:
        env["VTR_NUMBA_WIDE"] = str(spec["wide"])  # vtr.ops.selective_scan: 512-bit vectors in numba (1) or not (0)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root, env=env)
    except subprocess.TimeoutExpired:
        return dict(spec, error=f"timeout after {timeout}s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(spec, error=f"rc={proc.returncode}: " + " | ".join(tail))
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------------------------------------ sections
def section_scan(args):
    try:
        from bench.scan import scan_benchmark
    except ImportError as e:
        print(f"[scan] bench.scan not available ({e}); skipped")
        return None
    import inspect

    try:
        if "quick" in inspect.signature(scan_benchmark).parameters:
            return scan_benchmark(quick=args.quick)
        return scan_benchmark()
    except Exception as e:  # the scan bench is someone else's: report, do not die
        print(f"[scan] scan_benchmark failed: {e!r}")
        return [{"error": repr(e)}]


def section_peak(args):
    import torch

    n = 2048 if args.quick else 4096
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(3 if args.quick else 5):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / best / 1e9
    print(f"[peak] GEMM {n}²: fp32 {out['fp32']:.0f} GFLOP/s, bf16 {out['bf16']:.0f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
    return dict(out, n=n, threads=torch.get_num_threads())


def _specs(args):
    specs = []
    for _ in range(args.rounds):  # rounds interleave the variants, so a load change hits all of them alike
        for size in args.models:
            for frames in args.frames:
                for dtype in args.dtypes:
                    for batch in args.batch:
                        for fused in args.fused:
                            for wide in args.wide:
                                for rev in args.revs:
                                    specs.append(dict(kind="videomamba", size=size, frames=frames, dtype=dtype,
                                                      batch=batch, fused=fused, wide=wide, rev=rev))
    return specs


def checkout_of(rev):
    """The folder whose code a worker for ``rev`` runs: this checkout for ``"."``, else commit ``rev`` extracted
    once with ``git archive`` into a temporary folder (removed at exit)."""
    root = Path(__file__).resolve().parents[1]
    if rev == ".":
        return root
    if rev not in _CHECKOUTS:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix=f"vtr_bench_{rev}_"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", rev], capture_output=True, check=False)
        if archive.returncode != 0:
            raise SystemExit(f"bench.encoder: git archive {rev} failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
        _CHECKOUTS[rev] = folder
    return _CHECKOUTS[rev]


_CHECKOUTS = {}


def _baseline_specs(args):
    from vtr.models.videomamba import videomamba_middle
    import torch

    with torch.device("meta"):
        target = sum(p.numel() for p in videomamba_middle().parameters())
    dim, heads = 576, 9
    depth = vit_depth_matching(target, dim)
    specs = []
    for kind in ("vit_sdpa", "vit_plain"):
        for frames in args.frames:
            if kind == "vit_plain" and frames > args.plain_max_frames:
                continue
            for dtype in args.dtypes:
                specs.append(dict(kind=kind, size=f"D{dim}x{depth}", dim=dim, depth=depth, heads=heads,
                                  frames=frames, dtype=dtype))
    return specs


def section_runs(specs, args, label):
    rows = []
    for spec in specs:
        spec = dict(spec, device=args.device, repeats=args.repeats, budget_s=args.budget,
                    omp_wait_policy=args.omp_wait_policy)
        res = run_in_subprocess(spec, args.timeout)
        rows.append(res)
        if "error" in res:
            print(f"[{label}] {spec['kind']} {spec['size']} T={spec['frames']} {spec['dtype']}: {res['error']}")
        else:
            print(f"[{label}] {res['kind']:10s} {res['size']:8s} T={res['frames']:3d} {res['dtype']} "
                  f"B={res.get('batch', 1)} fused={res.get('fused', '-')} wide={res.get('wide', '-')} "
                  f"code={res.get('rev', '.')}: "
                  f"{res['s_per_clip']:8.3f} s/clip ({res['cpu_s_per_clip']:.3f} CPU s)  "
                  f"{res['gflops_achieved']:6.1f} GFLOP/s  "
                  f"peak {res['peak_rss_mib']:7.0f} MiB (fwd +{res['act_mib']:.0f})  load {res['loadavg']:.1f}",
                  flush=True)
    return rows


def section_breakdown(args):
    """VideoMamba-M at ``--breakdown-frames`` frames: manual wall timers around each part + profiler op table."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import vtr.models.mamba as mm
    from vtr.models.videomamba import videomamba_middle

    timers = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] = timers.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    frames = args.breakdown_frames
    model = videomamba_middle(num_frames=frames).eval()
    x = torch.randn(1, frames, 3, 224, 224)
    # every path the mixer may take: the readable one (channels first, torch conv, flips) or the fused channels-last
    # one (numba conv and scan, its GEMMs through linear_rows: oneDNN in fp32, F.linear otherwise)
    originals = (mm.selective_scan, mm.causal_conv1d_silu, mm._channels_first_linear, mm.BiMambaMixer._out_proj,
                 mm.RMSNorm.forward, mm.BiMambaMixer.forward, mm.selective_scan_rows, mm.causal_conv1d_silu_rows,
                 mm.linear_rows)
    mm.selective_scan = timed("scan", originals[0])
    mm.causal_conv1d_silu = timed("conv+silu", originals[1])
    mm._channels_first_linear = timed("matmul (in/x/dt proj)", originals[2])
    mm.BiMambaMixer._out_proj = timed("matmul (out_proj)", originals[3])
    mm.RMSNorm.forward = timed("rmsnorm", originals[4])
    mm.BiMambaMixer.forward = timed("mixer total", originals[5])
    mm.selective_scan_rows = timed("scan", originals[6])
    mm.causal_conv1d_silu_rows = timed("conv+silu", originals[7])
    mm.linear_rows = timed("matmul (linear: in/x/dt/out proj)", originals[8])
    out = {}
    try:
        for dtype in args.dtypes:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
                model(x[:, :1])
                timers.clear()
                t0 = time.perf_counter()
                model(x)
                total = time.perf_counter() - t0
                parts = dict(timers)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    model(x)
            mixer = parts.pop("mixer total")
            named = sum(v for k, v in parts.items() if k != "rmsnorm")
            parts["other in mixer (adds, casts, copies)"] = mixer - named
            parts["outside mixers (embed, residual adds, pool)"] = total - mixer - parts["rmsnorm"]
            ops = sorted(((e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()), key=lambda kv: -kv[1])
            out[dtype] = {"total_s": total, "parts_s": parts, "top_ops_self_s": dict(ops[:15])}
            print(f"[breakdown] VideoMamba-M {frames}×224² {dtype}: total {total:.2f} s")
            for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"    {k:45s} {v:7.3f} s  {100 * v / total:5.1f}%")
            print("    top ops (self CPU, profiled run): " + ", ".join(f"{k} {v:.2f}s" for k, v in ops[:8]))
    finally:
        (mm.selective_scan, mm.causal_conv1d_silu, mm._channels_first_linear, mm.BiMambaMixer._out_proj,
         mm.RMSNorm.forward, mm.BiMambaMixer.forward, mm.selective_scan_rows, mm.causal_conv1d_silu_rows,
         mm.linear_rows) = originals
    return out


def _alternate(variants: dict, repeats: int):
    """Call every variant ``repeats`` times, alternated call by call (load changes hit all alike); returns
    ``(wall, cpu)``: seconds per call, lists per variant name."""
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return wall, cpu


def section_conv(args):
    """The causal conv1d + SiLU of one VideoMamba-M mixer direction ([1, 1569, 1152] out of xz [1, 1569, 2304]):
    torch (what VTR_FUSED=0 runs: channels first, an explicit flip for the backward direction, a cast, one pass per
    tap) vs the numba kernel on the rows, variants alternated call by call; best CPU and wall milliseconds of
    ``--conv-repeats`` calls."""
    import torch

    from vtr.models.mamba import causal_conv1d_silu
    from vtr.ops.mixer_ops import causal_conv1d_silu_rows

    di, length = 1152, 1569
    w, b = torch.randn(di, 1, 4), torch.randn(di)
    out = []
    for dtype in args.dtypes:
        xz = torch.randn(1, length, 2 * di).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
        variants = {
            "torch fwd": lambda: causal_conv1d_silu(xz.mT[:, :di], w, b),
            "torch bwd (flip)": lambda: causal_conv1d_silu(xz.mT.flip(-1)[:, :di], w, b),
            "fused fwd": lambda: causal_conv1d_silu_rows(xz[..., :di], w, b, reverse=False),
            "fused bwd (reverse)": lambda: causal_conv1d_silu_rows(xz[..., :di], w, b, reverse=True),
        }
        with torch.inference_mode():
            for fn in variants.values():
                fn()
            wall, cpu = _alternate(variants, args.conv_repeats)
        for k in variants:
            row = {"dtype": dtype, "variant": k, "wall_ms": 1e3 * min(wall[k]), "cpu_ms": 1e3 * min(cpu[k]),
                   "loadavg": os.getloadavg()[0]}
            out.append(row)
            print(f"[conv] {dtype} {k:20s} wall {row['wall_ms']:7.2f} ms  CPU {row['cpu_ms']:7.2f} ms  "
                  f"load {row['loadavg']:.1f}", flush=True)
    return out


def section_gemms(args):
    """The fp32 GEMMs of one VideoMamba-M mixer (in_proj 576→2304, x_proj 1152→68, dt_proj 36→1152, out_proj
    1152→576 over B·1569 rows): ``F.linear`` vs ``linear_rows``, alternated call by call; best of ``--conv-repeats``
    calls, in ms and GFLOP/s, and the largest difference between the two outputs."""
    import torch
    import torch.nn.functional as F

    from vtr.ops.mixer_ops import _onednn_linear, linear_rows

    if _onednn_linear() is None:
        print("[gemms] this torch has no oneDNN linear: linear_rows is F.linear", flush=True)
        return []
    out = []
    for batch in args.batch:
        for name, k, n in (("in_proj", 576, 2304), ("x_proj", 1152, 68), ("dt_proj", 36, 1152),
                           ("out_proj", 1152, 576)):
            x, w = torch.randn(batch, 1569, k), torch.randn(n, k) / k ** 0.5
            variants = {"F.linear": lambda: F.linear(x, w), "linear_rows": lambda: linear_rows(x, w)}
            with torch.inference_mode():
                diff = float((variants["F.linear"]() - variants["linear_rows"]()).abs().max())
                wall, _ = _alternate(variants, args.conv_repeats)
            flop = 2 * batch * 1569 * k * n
            row = {"gemm": name, "batch": batch, "max_abs_diff": diff, "loadavg": os.getloadavg()[0]}
            for v in variants:
                row[f"{v}_ms"] = 1e3 * min(wall[v])
                row[f"{v}_gflops"] = flop / min(wall[v]) / 1e9
            out.append(row)
            print(f"[gemms] B={batch} {name:8s} F.linear {row['F.linear_ms']:7.2f} ms "
                  f"({row['F.linear_gflops']:4.0f} GFLOP/s)  linear_rows {row['linear_rows_ms']:7.2f} ms "
                  f"({row['linear_rows_gflops']:4.0f} GFLOP/s)  "
                  f"{row['F.linear_ms'] / row['linear_rows_ms']:.2f}x  max diff {diff:.1e}  "
                  f"load {row['loadavg']:.1f}", flush=True)
    return out


def section_ab(args):
    """VideoMamba-M, one process, the VTR_FUSED variants alternated forward by forward (``--ab-repeats`` each,
    per dtype and batch): the fairest side-by-side on a shared machine, since load changes hit every variant."""
    import torch

    from vtr.models.videomamba import videomamba_middle

    frames = args.frames[0]
    model = videomamba_middle(num_frames=frames).eval()
    out = []
    saved = os.environ.get("VTR_FUSED")
    try:
        for dtype in args.dtypes:
            for batch in args.batch:
                x = torch.randn(batch, frames, 3, 224, 224)
                times = {f: [] for f in args.fused}
                cpu = {f: [] for f in args.fused}
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
                    for f in args.fused:  # warm-up: numba compiles, oneDNN primitives
                        os.environ["VTR_FUSED"] = str(f)
                        model(x[:1, :1])
                    for _ in range(args.ab_repeats):
                        for f in args.fused:
                            os.environ["VTR_FUSED"] = str(f)
                            t0, c0 = time.perf_counter(), time.process_time()
                            model(x)
                            times[f].append((time.perf_counter() - t0) / batch)
                            # CPU seconds of this process: less sensitive than wall time to other users' load
                            cpu[f].append((time.process_time() - c0) / batch)
                base = min(times[args.fused[-1]])
                for f in args.fused:
                    row = {"dtype": dtype, "batch": batch, "frames": frames, "fused": f, "times_s": times[f],
                           "s_per_clip": min(times[f]), "s_per_clip_median": statistics.median(times[f]),
                           "cpu_s_per_clip": min(cpu[f]), "cpu_times_s": cpu[f],
                           "speedup_vs_last": base / min(times[f]),
                           "cpu_speedup_vs_last": min(cpu[args.fused[-1]]) / min(cpu[f]),
                           "loadavg": os.getloadavg()[0]}
                    out.append(row)
                    print(f"[ab] M T={frames} {dtype} B={batch} VTR_FUSED={f}: min {row['s_per_clip']:.3f} "
                          f"median {row['s_per_clip_median']:.3f} s/clip  x{row['speedup_vs_last']:.2f}; "
                          f"CPU {row['cpu_s_per_clip']:.2f} s/clip x{row['cpu_speedup_vs_last']:.2f} vs "
                          f"VTR_FUSED={args.fused[-1]}  load {row['loadavg']:.1f}", flush=True)
    finally:
        if saved is None:
            os.environ.pop("VTR_FUSED", None)
        else:
            os.environ["VTR_FUSED"] = saved
    return out


# ----------------------------------------------------------------------------------------------- summary
def summarize(encoder_rows, baseline_rows, frames):
    ok = [r for r in encoder_rows + baseline_rows if "error" not in r]

    def find(kind, size, t, dtype):
        for r in ok:
            if r["kind"] == kind and (size is None or r["size"] == size) and r["frames"] == t and r["dtype"] == dtype:
                return r
        return None

    summary = {}
    lo, hi = min(frames), max(frames)
    for dtype in sorted({r["dtype"] for r in ok}):
        s = {}
        for size in SIZES:
            a, b = find("videomamba", size, lo, dtype), find("videomamba", size, hi, dtype)
            if a and b and lo != hi:
                s[f"{size} time({hi})/time({lo})"] = b["s_per_clip"] / a["s_per_clip"]
        m = {t: find("videomamba", "middle", t, dtype) for t in frames}
        for base in ("vit_sdpa", "vit_plain"):
            bt = {t: find(base, None, t, dtype) for t in frames}
            if m[hi] and bt[hi]:
                s[f"{base} / M speed ratio @{hi}"] = bt[hi]["s_per_clip"] / m[hi]["s_per_clip"]
                s[f"M / {base} peak memory @{hi}"] = m[hi]["peak_rss_mib"] / bt[hi]["peak_rss_mib"]
                s[f"M / {base} forward memory @{hi}"] = m[hi]["act_mib"] / max(bt[hi]["act_mib"], 1e-9)
            faster = [t for t in frames if m[t] and bt[t] and m[t]["s_per_clip"] < bt[t]["s_per_clip"]]
            slower = [t for t in frames if m[t] and bt[t] and m[t]["s_per_clip"] >= bt[t]["s_per_clip"]]
            if faster or slower:
                clean = faster and (not slower or min(faster) > max(slower))
                s[f"crossover vs {base}"] = (f"M faster from T={min(faster)}" if clean
                                             else f"M faster at T={faster}, slower at T={slower}")
        if s:
            summary[dtype] = s
    return summary


def print_rev_ratios(rows, rev):
    """Per configuration: best s/clip of this checkout and of ``rev`` over all rounds, and their ratio."""
    ok = [r for r in rows if "error" not in r]
    keys = sorted({(r["size"], r["frames"], r["dtype"], r.get("batch", 1), r.get("fused"), r.get("wide")) for r in ok},
                  key=str)
    out = []
    print(f"\n| size | T | dtype | B | {rev} s/clip | this checkout s/clip | speed-up | runs | load |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        same = [r for r in ok if (r["size"], r["frames"], r["dtype"], r.get("batch", 1), r.get("fused"),
                                  r.get("wide")) == key]
        old = [r["s_per_clip"] for r in same if r.get("rev") == rev]
        new = [r["s_per_clip"] for r in same if r.get("rev", ".") == "."]
        if old and new:
            row = dict(size=key[0], frames=key[1], dtype=key[2], batch=key[3], rev_s=min(old), this_s=min(new),
                       speedup=min(old) / min(new), runs=min(len(old), len(new)),
                       loadavg=max(r["loadavg"] for r in same))
            out.append(row)
            print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {row['rev_s']:.3f} | {row['this_s']:.3f} | "
                  f"{row['speedup']:.2f}× | {row['runs']} | ≤ {row['loadavg']:.1f} |")
    return out


def print_table(rows):
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return
    print(f"\n{'model':10s} {'size':9s} {'T':>3s} {'dtype':5s} {'B':>2s} {'fused':>5s} {'wide':>4s} {'code':>8s} "
          f"{'L':>6s} {'s/clip':>8s} {'CPU s':>7s} {'clips/s':>8s} {'GFLOP':>8s} {'GFLOP/s':>8s} {'peak MiB':>9s} "
          f"{'fwd MiB':>8s} {'load':>5s}")
    for r in ok:
        print(f"{r['kind']:10s} {r['size']:9s} {r['frames']:3d} {r['dtype']:5s} {r.get('batch', 1):2d} "
              f"{str(r.get('fused', '-')):>5s} {str(r.get('wide', '-')):>4s} {str(r.get('rev', '.')):>8s} "
              f"{r['seq_len']:6d} "
              f"{r['s_per_clip']:8.3f} {r.get('cpu_s_per_clip', float('nan')):7.3f} "
              f"{r['clips_per_s']:8.3f} {r['gflop']:8.1f} {r['gflops_achieved']:8.1f} {r['peak_rss_mib']:9.0f} "
              f"{r['act_mib']:8.0f} {r['loadavg']:5.1f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=None,
                   help="default: scan,peak,encoder,baselines,breakdown (--quick: without scan, whose own "
                        "fwd+bwd reference runs take minutes; run python -m bench.scan --quick for it)")
    p.add_argument("--models", default="tiny,small,middle", help="VideoMamba sizes")
    p.add_argument("--frames", default="8,16,32,64")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--batch", default="1", help="clips per forward, comma separated (s/clip divides by it)")
    p.add_argument("--wide", default="1",
                   help="VTR_NUMBA_WIDE per encoder run, comma separated: 1 = numba may use 512-bit vectors "
                        "(vtr's default on AVX-512), 0 = LLVM's own preference; --wide 1,0 --rounds 3 alternates")
    p.add_argument("--fused", default="1",
                   help="VTR_FUSED values to compare side by side, e.g. 1,0 (numba conv+SiLU and RMSNorm on/off)")
    p.add_argument("--rev", default=None,
                   help="a git commit to run the encoder section's VideoMamba configs at too, alternated with this "
                        "checkout ('.'), with the ratio printed")
    p.add_argument("--ab-repeats", type=int, default=4, help="forwards per variant in the ab section")
    p.add_argument("--conv-repeats", type=int, default=50, help="calls per variant in the conv section")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole VideoMamba list this many times, interleaved; the table keeps every row")
    p.add_argument("--repeats", type=int, default=2, help="timed forwards per config (the minimum is reported)")
    p.add_argument("--budget", type=float, default=120.0, help="stop repeating a config after this many seconds")
    p.add_argument("--timeout", type=int, default=1800, help="per-config subprocess timeout (s)")
    p.add_argument("--plain-max-frames", type=int, default=64,
                   help="skip the materialised-attention ViT above this frame count (64 frames needs ~12 GiB)")
    p.add_argument("--breakdown-frames", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--omp-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY of the worker processes ('' = inherit). PASSIVE stops torch's idle OpenMP "
                        "threads spinning against numba's scan threads (M-8 bf16: 6.2-6.8 s vs 8.6-13.9 s when "
                        "measured on a loaded 2-core box); applied to every model alike")
    p.add_argument("--quick", action="store_true",
                   help="middle only, 8 frames, 1 repeat, baselines at 8 frames, small peak GEMM")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        spec = json.loads(args.worker)
        run = run_scan_config if spec["kind"] == "scan" else run_config
        print("RESULT " + json.dumps(run(spec)), flush=True)
        return 0

    if args.sections is None:
        args.sections = "peak,encoder,baselines,breakdown" if args.quick else "scan,peak,encoder,baselines,breakdown"
    if args.quick:
        args.models, args.frames, args.repeats = "middle", "8", 1
    args.models = [m for m in args.models.split(",") if m]
    args.frames = [int(t) for t in args.frames.split(",") if t]
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.batch = [int(b) for b in args.batch.split(",") if b]
    args.fused = [int(f) for f in args.fused.split(",") if f]
    args.wide = [int(w) for w in args.wide.split(",") if w]
    args.revs = [".", args.rev] if args.rev else ["."]
    sections = set(args.sections.split(","))

    import torch

    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "loadavg_at_start": os.getloadavg()},
              "args": {k: v for k, v in vars(args).items() if k != "worker"}}
    if "scan" in sections:
        report["scan"] = section_scan(args)
    if "peak" in sections:
        report["peak_gemm_gflops"] = section_peak(args)
    encoder_rows = section_runs(_specs(args), args, "encoder") if "encoder" in sections else []
    baseline_rows = section_runs(_baseline_specs(args), args, "baseline") if "baselines" in sections else []
    report["encoder"], report["baselines"] = encoder_rows, baseline_rows
    if "breakdown" in sections:
        report["breakdown"] = section_breakdown(args)
    if "conv" in sections:
        report["conv"] = section_conv(args)
    if "ab" in sections:
        report["ab"] = section_ab(args)
    if "gemms" in sections:
        report["gemms"] = section_gemms(args)
    if "wide" in sections:
        report["wide"] = section_wide(args)
    print_table(encoder_rows + baseline_rows)
    if args.rev:
        report["rev_ratios"] = print_rev_ratios(encoder_rows, args.rev)
    report["summary"] = summarize(encoder_rows, baseline_rows, args.frames)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    for dtype, s in report["summary"].items():
        print(f"\nsummary ({dtype}):")
        for k, v in s.items():
            print(f"  {k:40s} {v:.3f}" if isinstance(v, float) else f"  {k:40s} {v}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
