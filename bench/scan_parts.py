"""Where the CPU scan's time goes, and what the mixer's GEMM layouts cost: two diagnostic tables.

``parts``: the inference kernel of this checkout (``vtr/ops/_scan_numba.py``) against copies of it with one part
of its work cut out, alternated call by call on one direction of a VideoMamba-M mixer (batch ``--batch``, d_inner
1152, L 1569, bf16 or fp32 gate and output), in the backward direction's layout (gate read and output written back
to front: ``--direction backward``, the default) or the forward direction's. The cut copies compute wrong
outputs: they only say how many milliseconds each part costs. Each cut is cumulative on "no recurrence", so that
the rows read as "this much less again".

``gemm``: the mixer's projections at the same shape, as the mixer lays them out (channels-first for the conv and
the scan) and as a channels-last path would, fp32 and bf16.

    python -m bench.scan_parts [--batch 4] [--repeats 8] [--sections parts,gemm] [--direction backward|forward]

Prints the tables, writes ``bench/results/scan_parts.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench import write_results
from bench.scan_train import REPO

import torch  # noqa: E402  (after bench.scan_train, which puts the checkout on sys.path)

KERNEL = REPO / "vtr" / "ops" / "_scan_numba.py"

# The recurrence and its sum over the states, from the first line of the loop over the states to the line that
# stores y_t: what the first cut replaces (read from the kernel, so that this file does not copy it).
_RECURRENCE_FROM = "                for n in range(N):\n                    bn = Bb[tt, n]\n"
_RECURRENCE_TO = "                    yb[t, c] = P[c]\n"
_NO_Y = "                for c in range(W):\n                    yb[t, c] = dub[t, c] * Bb[tt, 0]\n"


def _no_recurrence(source: str) -> tuple[str, str]:
    """(the kernel's recurrence, as text; y = Δu·B₀ instead): the first cut."""
    start = source.find(_RECURRENCE_FROM)
    end = source.find(_RECURRENCE_TO, start)
    if start < 0 or end < 0:
        raise SystemExit("bench.scan_parts: the kernel's recurrence no longer reads as _RECURRENCE_FROM/_TO say")
    return source[start:end + len(_RECURRENCE_TO)], _NO_Y


# Each further cut: (exact text of the kernel, replacement), each matching exactly once.
_CUTS = {
    "no softplus": ("                        r[t] = softplus32(deb[t] + bc)\n",
                    "                        r[t] = deb[t] + bc\n"),
    "no transposes": ("""            for t in range(T):
                for c in range(W):
                    dtb[t, c] = rows[c, t]
                    dub[t, c] = rows2[c, t]
""", ""),
    "no gate read": ("                    _load_row(z[b, zc0 + d0 + c], t0, T, L, reverse_io, zr)\n", ""),
    "no output write": (
        "                _store_row(r, t0, T, L, reverse_io, acc[b, d0 + c] if has_acc else r, has_acc, "
        "out[b, d0 + c], tmp)\n", ""),
}


def _variant(name: str, source: str, edits) -> object:
    for old, new in edits:
        if source.count(old) != 1:
            raise SystemExit(f"bench.scan_parts: the kernel no longer has the code the {name!r} cut removes; "
                             "update _CUTS to the kernel's current text")
        source = source.replace(old, new)
    path = Path(tempfile.mkdtemp(prefix="vtr_scan_parts_")) / "_scan_numba_cut.py"  # its own folder per variant
    path.write_text(source.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _empty_body(source: str) -> str:
    start = source.index("        for t0 in range(0, L, CHUNK):\n            T = min(CHUNK, L - t0)\n"
                         "            if save:")
    end = source.index('@njit(fastmath={"reassoc", "contract"}', start)
    return source[:start] + "        pass\n\n\n" + source[end:]


def section_parts(args) -> list[dict]:
    import vtr.ops.selective_scan as ss
    from bench.scan_ab import _alternate as alternate_modules, mixer_inputs

    if ss._load_numba() is None:
        raise SystemExit("numba is not importable here: no kernel to take apart")
    source = KERNEL.read_text()
    mods = {"the kernel": ss._numba_state["module"],
            "no recurrence (y = Δu·B₀)": _variant("no recurrence", source, [_no_recurrence(source)])}
    edits = [_no_recurrence(source)]
    for name, edit in _CUTS.items():
        edits.append(edit)
        mods[f"… and {name}"] = _variant(name, source, edits)
    mods["empty kernel (allocations, prange)"] = _variant("empty", _empty_body(source), [])
    u, delta, A, B, C, D, bias, xz = mixer_inputs(args.batch)
    d = u.shape[1]
    reverse = args.direction == "backward"
    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        z = xz.to(dtype)[:, d:]

        def call():
            with torch.inference_mode():
                ss.selective_scan_inference(u, delta, A, B, C, D, z, bias, True, reverse_io=reverse, out_dtype=dtype)

        try:
            wall = alternate_modules(mods, call, args.repeats)  # compiles and warms each first
        finally:
            ss._numba_state["module"] = mods["the kernel"]
        for k, v in wall.items():
            rows.append({"io": str(dtype).removeprefix("torch."), "direction": args.direction, "variant": k,
                         "ms": round(1e3 * min(v), 1), "ms_median": round(1e3 * statistics.median(v), 1),
                         "load_avg_1m": round(os.getloadavg()[0], 2)})
    return rows


def section_gemm(args) -> list[dict]:
    from bench.encoder import _alternate

    g = torch.Generator().manual_seed(0)
    b, dim, di, length, r, n = args.batch, 576, 1152, 1569, 36, 16
    h = torch.randn(b, length, dim, generator=g)
    o = torch.randn(b, di, length, generator=g)
    u = torch.randn(b, di, length, generator=g)
    w_in, w_out = torch.randn(2 * di, dim, generator=g) * 0.03, torch.randn(dim, di, generator=g) * 0.03
    w_x, w_dt = torch.randn(r + 2 * n, di, generator=g) * 0.03, torch.randn(di, r, generator=g) * 0.1
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        hh, oo, uu = h.to(dtype), o.to(dtype), u.to(dtype)
        wi, wo, wx, wd = (w.to(dtype) for w in (w_in, w_out, w_x, w_dt))
        calls = {
            "in_proj, bmm(W, h.mT) -> [B, 2·d_inner, L] (as now)": lambda: torch.bmm(wi.expand(b, -1, -1), hh.mT),
            "in_proj, linear(h, W) -> [B, L, 2·d_inner] (channels-last)": lambda: torch.nn.functional.linear(hh, wi),
            "out_proj, bmm(o.mT, W.T) (as now)": lambda: torch.bmm(oo.mT, wo.T.expand(b, -1, -1)),
            "out_proj, linear on [B, L, d_inner] (channels-last)": (
                lambda oc=oo.mT.contiguous(): torch.nn.functional.linear(oc, wo)),
            "x_proj + dt_proj, channels-first (as now: fp32 in both precisions)": lambda: torch.bmm(
                wd.expand(b, -1, -1), torch.bmm(wx.expand(b, -1, -1), uu)[:, :r]),
        }
        with torch.inference_mode():
            for fn in calls.values():
                fn()
            wall, _ = _alternate(calls, args.repeats)
        for k, v in wall.items():
            rows.append({"dtype": str(dtype).removeprefix("torch."), "gemm": k, "ms": round(1e3 * min(v), 1),
                         "s_per_clip_32_layers": round(min(v) * 32 * (2 if k.startswith("x_proj") else 1) / b, 3),
                         "load_avg_1m": round(os.getloadavg()[0], 2)})
    return rows


def _print_table(title: str, header: tuple, rows: list[dict], row_key: str, col_key: str, cols: tuple, cell) -> None:
    print(f"\n{title}\n| " + " | ".join(header) + " |\n|---|" + "---:|" * len(cols))
    by: dict = {}
    for r in rows:
        by.setdefault(r[row_key], {})[r[col_key]] = cell(r)
    for k, v in by.items():
        print(f"| {k} | " + " | ".join(v.get(c, "") for c in cols) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--sections", default="parts,gemm")
    parser.add_argument("--direction", choices=("backward", "forward"), default="backward",
                        help="the mixer direction whose layout the parts table runs (backward: reversed gate/output)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scan_parts.json"))
    args = parser.parse_args()
    sections = args.sections.split(",")
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__},
              "load_avg_1m_before": round(os.getloadavg()[0], 2), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                                             time.gmtime())}
    if "parts" in sections:
        report["parts"] = section_parts(args)
        _print_table(f"One M mixer direction ({args.direction}), batch {args.batch}, {torch.get_num_threads()} "
                     f"threads: min (median) ms of {args.repeats} calls, alternated call by call",
                     ("variant", "bf16 gate/output", "fp32 gate/output"), report["parts"], "variant", "io",
                     ("bfloat16", "float32"), lambda r: f'{r["ms"]} ({r["ms_median"]})')
    if "gemm" in sections:
        report["gemm"] = section_gemm(args)
        _print_table(f"The mixer's projections, M shapes, batch {args.batch}: min ms of {args.repeats} calls (s per "
                     "clip over 32 layers, both directions for x/dt)", ("GEMM", "fp32 ms (s/clip)", "bf16 ms (s/clip)"),
                     report["gemm"], "gemm", "dtype", ("float32", "bfloat16"),
                     lambda r: f'{r["ms"]} ({r["s_per_clip_32_layers"]})')
    report["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(f"\nload {report['load_avg_1m_before']} -> {report['load_avg_1m_after']}")
    write_results(args.out, report)


if __name__ == "__main__":
    main()
