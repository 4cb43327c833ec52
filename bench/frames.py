"""Time and memory against frame count: VideoMamba against attention of the same width and depth.

At each frame count T (224², batch 1, forward in ``inference_mode``), side by side:

- ``videomamba``  VideoMamba-``--size`` (bidirectional Mamba over the 1 + T·196 tokens: linear in T);
- ``vit_sdpa``    a plain pre-norm ViT with the **same width, depth and heads**, joint space-time attention over
                  the same tokens through torch's ``scaled_dot_product_attention`` (fused kernel: the attention
                  matrix is never stored whole, so its memory stays near-linear, its time is quadratic);
- ``vit_plain``   the same ViT with materialised ``softmax(QKᵀ)V``: the [B, H, L, L] matrix exists in memory,
                  as in VideoMamba's Fig. 1 baseline (skipped above ``--plain-max-frames``).

Each configuration runs in a fresh process (``bench.encoder``'s worker, so both benches measure alike): time is
the best of ``--repeats`` forwards after a 1-frame warm-up; **memory is that process's peak RSS** (``ru_maxrss``:
interpreter, torch, weights and activations) and ``fwd MiB`` = peak RSS − RSS just before the timed forwards
(what the forward itself added). The three models are interleaved per frame count, so a change in the machine's
load hits them alike; the load average is read before and after each row.

    python -m bench.frames                                # tiny (192 wide, 24 deep), T = 8,16,32,64, fp32
    python -m bench.frames --size small --frames 8,16 --repeats 1

Writes ``bench/results/frames.json`` (``--out``) and prints the table; ``python -m bench.plots`` draws it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "frames.json"
HEADS = {"tiny": 3, "small": 6, "middle": 9}  # DeiT's heads at VideoMamba's widths (64 per head)
KINDS = ("videomamba", "vit_sdpa", "vit_plain")


def sweep_specs(size: str, frames: list[int], dtype: str, plain_max_frames: int) -> list[dict]:
    """One worker spec per (frame count, model), the models interleaved within each frame count."""
    from bench.encoder import SIZES

    dim, depth = SIZES[size]
    specs = []
    for t in frames:
        for kind in KINDS:
            if kind == "vit_plain" and t > plain_max_frames:
                continue
            spec = dict(kind=kind, size=size, frames=t, dtype=dtype)
            if kind != "videomamba":
                spec.update(size=f"D{dim}x{depth}", dim=dim, depth=depth, heads=HEADS[size])
            specs.append(spec)
    return specs


def ratios(rows: list[dict]) -> list[dict]:
    """Per frame count: each attention model's time and memory over VideoMamba's (> 1: VideoMamba wins)."""
    by = {(r["kind"], r["frames"]): r for r in rows if "error" not in r}
    out = []
    for t in sorted({f for _, f in by}):
        vm = by.get(("videomamba", t))
        if vm is None:
            continue
        row = {"frames": t}
        for kind in KINDS[1:]:
            other = by.get((kind, t))
            if other is not None:
                row[f"{kind}_time_x"] = other["s_per_clip"] / vm["s_per_clip"]
                row[f"{kind}_peak_x"] = other["peak_rss_mib"] / vm["peak_rss_mib"]
        out.append(row)
    return out


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per (frame count, model)."""
    lines = ["| T | tokens | model | s / clip | peak RSS MiB | fwd MiB | GFLOP | load |",
             "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['frames']} | | {r['kind']} | error: {r['error'][:60]} | | | | |")
            continue
        lines.append(f"| {r['frames']} | {r['seq_len']} | {r['kind']} | {r['s_per_clip']:.3f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['act_mib']:.0f} | {r['gflop']:.1f} | {r['loadavg']:.1f} |")
    return "\n".join(lines)


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    from bench import write_results
    from bench.encoder import run_in_subprocess

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", choices=sorted(HEADS), help="VideoMamba size (the ViTs copy its shape)")
    p.add_argument("--frames", default="8,16,32,64")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--repeats", type=int, default=2, help="timed forwards per config (the best is reported)")
    p.add_argument("--budget", type=float, default=120.0, help="stop repeating a config after this many seconds")
    p.add_argument("--timeout", type=int, default=1800, help="per-config subprocess timeout (s)")
    p.add_argument("--plain-max-frames", type=int, default=64, help="largest T for the materialised-attention ViT")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    frames = [int(t) for t in args.frames.split(",") if t]

    started = datetime.datetime.now(datetime.timezone.utc)
    report = {"bench": "frames", "date_utc": started.isoformat(timespec="seconds"), "machine": machine(),
              "loadavg_at_start": os.getloadavg(), "args": vars(args), "memory": "peak RSS of a fresh process (ru_maxrss)",
              "rows": []}
    for spec in sweep_specs(args.size, frames, args.dtype, args.plain_max_frames):
        spec = dict(spec, device="cpu", repeats=args.repeats, budget_s=args.budget, omp_wait_policy="PASSIVE")
        load_before = os.getloadavg()[0]
        res = dict(run_in_subprocess(spec, args.timeout), loadavg_before=load_before)
        report["rows"].append(res)
        if "error" in res:
            print(f"[frames] {spec['kind']} T={spec['frames']}: {res['error']}", flush=True)
        else:
            print(f"[frames] {res['kind']:10s} T={res['frames']:3d}: {res['s_per_clip']:8.3f} s/clip  "
                  f"peak {res['peak_rss_mib']:7.0f} MiB (fwd +{res['act_mib']:.0f})  load {res['loadavg']:.1f}",
                  flush=True)
    report["loadavg_at_end"] = os.getloadavg()
    report["ratios"] = ratios(report["rows"])
    print("\n" + format_table(report["rows"]))
    for r in report["ratios"]:
        print(f"T={r['frames']:3d}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k != "frames"))
    write_results(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
