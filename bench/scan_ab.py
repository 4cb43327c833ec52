"""This checkout's numba scan kernels against an earlier commit's, side by side in one process, at inference.

Two measurements, each alternating the two kernel modules call by call (a load change hits both alike):

- ``scan``: one direction of a VideoMamba-M mixer through ``selective_scan_rows`` (batch ``--batch``, d_inner
  1152, L 1569, channels last, the backward direction: run back to front, its sum with the forward output written
  as it goes), with a float32 and a bfloat16 gate/output (what fp32 and bf16 autocast pass): ms per call.
- ``model``: VideoMamba-M 8×224² (random weights), batch ``--batch``, fp32 and bf16 autocast: s per clip, and the
  largest relative difference of the two kernels' tokens on one clip.

The earlier kernels come from ``git show REV:vtr/ops/_scan_numba.py`` and must take this checkout's arguments (a
commit with ``scan_rows``, the channels-last inference kernel; to compare whole checkouts across that change, run
``python -m bench.encoder --sections encoder --rev REV``)::

    python -m bench.scan_ab --rev REV [--batch 4] [--repeats 8] [--model-repeats 4]

Prints two tables, writes ``bench/results/scan_ab.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from bench.scan_train import REPO, _params, load_old, same_convention

import torch  # noqa: E402  (after bench.scan_train, which puts the checkout on sys.path)


def _alternate(mods: dict, call, repeats: int) -> dict:
    """Seconds of ``call()`` per kernel module, the modules alternated call by call (:func:`bench.encoder._alternate`)
    after one warm call each."""
    import vtr.ops.selective_scan as ss
    from bench.encoder import _alternate as alternate

    def with_module(m):
        def run():
            ss._numba_state["module"] = m
            call()
        return run

    variants = {k: with_module(m) for k, m in mods.items()}
    for run in variants.values():
        run()
    return alternate(variants, repeats)[0]


def mixer_inputs(batch: int) -> tuple:
    """Seeded inputs of one VideoMamba-M mixer direction's scan, as rows: u, Δ [B, L, d], A, B, C [B, L, N], D, Δ bias
    and xz [B, L, 2d] (whose column slice ``xz[..., 1152:]`` is the gate, as the mixer passes it)."""
    g = torch.Generator().manual_seed(0)
    d, L, n = 1152, 1569, 16
    u = torch.randn(batch, L, d, generator=g)
    delta = torch.randn(batch, L, d, generator=g) * 0.5 - 2
    A = -torch.exp(torch.randn(d, n, generator=g) * 0.5 + 1)
    B, C = torch.randn(batch, L, n, generator=g), torch.randn(batch, L, n, generator=g)
    D, bias = torch.randn(d, generator=g), torch.randn(d, generator=g) * 0.3
    return u, delta, A, B, C, D, bias, torch.randn(batch, L, 2 * d, generator=g)


def scan_rows(mods: dict, batch: int, repeats: int) -> list[dict]:
    import vtr.ops.selective_scan as ss

    u, delta, A, B, C, D, bias, xz = mixer_inputs(batch)
    d = u.shape[2]
    add = torch.randn(u.shape)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        z = xz.to(dtype)[..., d:]  # the gate as the mixer passes it: a column slice of xz

        def call():
            with torch.inference_mode():
                return ss.selective_scan_rows(u, delta, A, B, C, D, z, bias, True, reverse=True, add=add,
                                              out_dtype=dtype)

        times = _alternate(mods, call, repeats)
        rows.append({"io": str(dtype).removeprefix("torch."), "batch": batch,
                     **{f"ms_{k}": round(1e3 * min(v), 2) for k, v in times.items()},
                     **{f"ms_median_{k}": round(1e3 * statistics.median(v), 2) for k, v in times.items()},
                     "load_avg_1m": round(os.getloadavg()[0], 2)})
    return rows


def model_rows(mods: dict, batch: int, repeats: int) -> list[dict]:
    import vtr.ops.selective_scan as ss
    from vtr.models.videomamba import videomamba_middle

    model = videomamba_middle(num_frames=8).eval()
    x = torch.randn(batch, 8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = []
    for dtype in ("bf16", "fp32"):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            tokens = {}
            for k, m in mods.items():
                ss._numba_state["module"] = m
                tokens[k] = model(x[:1]).tokens.float()
            a, b = tokens.values()
            diff = float((a - b).abs().max() / a.abs().max())
            times = _alternate(mods, lambda: model(x), repeats)
        rows.append({"dtype": dtype, "batch": batch, "rel_diff_tokens": diff,
                     **{f"s_per_clip_{k}": round(min(v) / batch, 3) for k, v in times.items()},
                     **{f"s_per_clip_median_{k}": round(statistics.median(v) / batch, 3) for k, v in times.items()},
                     "load_avg_1m": round(os.getloadavg()[0], 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="an earlier commit whose kernels have scan_rows")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=8, help="scan calls per module")
    parser.add_argument("--model-repeats", type=int, default=4, help="model forwards per module (0: skip)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scan_ab.json"))
    args = parser.parse_args()
    import vtr.ops.selective_scan as ss

    if ss._load_numba() is None:
        raise SystemExit("numba is not importable here: nothing to compare")
    new = ss._numba_state["module"]
    old = load_old(args.rev)
    if not same_convention(old, new) or not hasattr(old, "scan_rows"):
        raise SystemExit(f"{args.rev}'s kernels take other arguments than this checkout's (or have no scan_rows): pick "
                         "a later --rev, or compare whole checkouts with python -m bench.encoder --rev")
    if "width" not in _params(old.scan_rows):  # before the block width followed the threads (thirtieth round)
        old_rows = old.scan_rows
        old.scan_rows = lambda *args: old_rows(*args[:-1])
        old.rows_width = new.rows_width
    mods = {"old": old, "new": new}
    load = round(os.getloadavg()[0], 2)
    try:
        scans = scan_rows(mods, args.batch, args.repeats)
        models = model_rows(mods, args.batch, args.model_repeats) if args.model_repeats else []
    finally:
        ss._numba_state["module"] = new
    print(f"numba scan kernels at inference, {args.rev} (old) against this checkout (new), alternated call by call; "
          f"{torch.get_num_threads()} threads, load {load} -> {round(os.getloadavg()[0], 2)}")
    print("| one M mixer direction, batch %d | old ms (median) | new ms (median) | × |" % args.batch)
    print("|---|---:|---:|---:|")
    for r in scans:
        print(f"| gate and output {r['io']} | {r['ms_old']} ({r['ms_median_old']}) | {r['ms_new']} "
              f"({r['ms_median_new']}) | {r['ms_old'] / r['ms_new']:.2f} |")
    if models:
        print("| VideoMamba-M 8×224², batch %d | old s/clip (median) | new s/clip (median) | × | max rel diff |"
              % args.batch)
        print("|---|---:|---:|---:|---:|")
        for r in models:
            print(f"| {r['dtype']} | {r['s_per_clip_old']} ({r['s_per_clip_median_old']}) | {r['s_per_clip_new']} "
                  f"({r['s_per_clip_median_new']}) | {r['s_per_clip_old'] / r['s_per_clip_new']:.2f} | "
                  f"{r['rel_diff_tokens']:.1e} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rev": args.rev, "scan": scans, "model": models, "load_avg_1m": load,
                                          "threads": torch.get_num_threads(), "platform": platform.platform(),
                                          "torch": torch.__version__}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
