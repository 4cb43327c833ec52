"""The numba training kernels of this checkout against those of an earlier commit, side by side in one run.

The scan's forward (with state checkpoints) and hand-written backward, as ``pretrain`` runs them: ms per call
(median of ``--repeats``) on the demo model's shape (batch 32, d_inner 128, L 73) and on VideoMamba-M's for one
clip (batch 1, d_inner 1152, L 1569); the old kernels are loaded from ``git show REV:vtr/ops/_scan_numba.py``
(REV: ``de407b0``, the last commit with the per-channel kernels, by default; a later REV whose kernels already
run channel blocks, as this checkout's do, is called the same way as this checkout). Both get the same float32
inputs; the table also shows the largest relative difference of their outputs.

    python -m bench.scan_train [--repeats 15] [--rev de407b0]

Writes ``bench/results/scan_train.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

SHAPES = {"demo (32×128×73)": (32, 128, 73), "M, 1 clip (1×1152×1569)": (1, 1152, 1569)}


def load_kernels(src: str, name: str):
    """The kernels module ``src`` (the text of a ``vtr/ops/_scan_numba.py``) imported as ``name``, compiled without
    numba's cache (so that two versions do not share cache entries, and numba keeps their LLVM modules)."""
    path = Path(tempfile.mkdtemp(prefix=f"vtr_{name}_")) / f"{name}.py"
    path.write_text(src.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_old(rev: str):
    """The kernels of commit ``rev`` (:func:`load_kernels`)."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:vtr/ops/_scan_numba.py"], check=True,
                         capture_output=True, text=True).stdout
    return load_kernels(src, "_scan_numba_old")


def inputs(batch, dim, length, n=16):
    import vtr.ops.selective_scan as ss

    g = torch.Generator().manual_seed(0)
    u = torch.randn(batch, dim, length, generator=g)
    delta = torch.randn(batch, dim, length, generator=g) * 0.1
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(dim, 1)
    B, C = torch.randn(batch, n, length, generator=g), torch.randn(batch, n, length, generator=g)
    D, z = torch.randn(dim, generator=g), torch.randn(batch, dim, length, generator=g)
    bias = torch.log(torch.expm1(torch.full((dim,), 0.01)))
    return ss._numba_inputs(u, delta, A, B, C, D, z, bias), torch.randn(batch, dim, length, generator=g)


def buffers(mod, x, parts):
    """The arrays of one kernel call: numpy views of the inputs, out, ckpt and the 8 gradient outputs (du, dΔ,
    dz, dA [B, D, N] float64, dB and dC as ``parts`` partial sums [B, parts, L, N], dD and dbias float64)."""
    arrays = [t.numpy() for t in x]
    batch, dim, length = arrays[0].shape
    n = arrays[2].shape[1]
    out = torch.empty(batch, dim, length).numpy()
    ckpt = torch.empty(batch, dim, -(-length // mod.CHUNK), n).numpy()
    f64 = torch.float64
    grads = [torch.empty(batch, dim, length).numpy() for _ in range(3)] + [
        torch.empty(batch, dim, n, dtype=f64).numpy(), torch.zeros(batch, parts, length, n).numpy(),
        torch.zeros(batch, parts, length, n).numpy(), torch.empty(batch, dim, dtype=f64).numpy(),
        torch.empty(batch, dim, dtype=f64).numpy()]
    return arrays, out, ckpt, grads


def _params(fn) -> list:
    return list(inspect.signature(fn.py_func).parameters)


def forward_call(mod, u, d, A, Bt, Ct, Dv, z, bias, out, ckpt):
    """``mod.scan_fwd`` on these arrays as that commit's kernel takes them: with the inference layout options it had
    from 188b705 to da6cc0b (gate offset, reversed I/O, a sum: all off here), or without."""
    if "reverse_io" in _params(mod.scan_fwd):
        return lambda: mod.scan_fwd(u, d, A, Bt, Ct, Dv, z, 0, bias, True, True, False, out, False, out, ckpt)
    return lambda: mod.scan_fwd(u, d, A, Bt, Ct, Dv, z, bias, True, True, out, ckpt)


def run_new(mod, x, dout):
    (u, d, A, Bt, Ct, Dv, z, bias), out, ckpt, grads = buffers(mod, x, -(-x[0].shape[1] // mod.W))
    fwd = forward_call(mod, u, d, A, Bt, Ct, Dv, z, bias, out, ckpt)
    bwd = lambda: mod.scan_bwd(u, d, A, Bt, Ct, Dv, z, bias, True, True, dout.numpy(), ckpt, *grads, mod.W)  # noqa
    return fwd, bwd, out, grads


def run_old(mod, x, dout):
    groups = min(x[0].shape[1], max(16, torch.get_num_threads()))  # that commit's channel groups
    (u, d, A, Bt, Ct, Dv, z, bias), out, ckpt, grads = buffers(mod, x, groups)

    def bwd():
        grads[4][:] = 0
        grads[5][:] = 0
        mod.scan_bwd(u, d, A, Bt, Ct, Dv, z, bias, True, True, dout.numpy(), ckpt, groups, *grads)

    return forward_call(mod, u, d, A, Bt, Ct, Dv, z, bias, out, ckpt), bwd, out, grads


def same_convention(old, new) -> bool:
    """Whether the earlier backward kernel takes this checkout's arguments (channel blocks) or de407b0's."""
    return _params(old.scan_bwd) == _params(new.scan_bwd)


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[len(times) // 2]


def rel(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rev", default="de407b0")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scan_train.json"))
    args = parser.parse_args()
    import numba

    from vtr.ops import _scan_numba as new

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    old = load_old(args.rev)
    load = os.getloadavg()[0]
    rows = []
    for name, shape in SHAPES.items():
        x, dout = inputs(*shape)
        f_new, b_new, out_new, g_new = run_new(new, x, dout)
        f_old, b_old, out_old, g_old = (run_new if same_convention(old, new) else run_old)(old, x, dout)
        row = {"shape": name}
        for which, f, b in (("old", f_old, b_old), ("new", f_new, b_new)):
            row[f"fwd_ms_{which}"] = round(timed(f, args.repeats), 2)
            row[f"bwd_ms_{which}"] = round(timed(b, args.repeats), 2)
        f_old(), b_old(), f_new(), b_new()
        dB_new, dC_new = g_new[4].sum(1), g_new[5].sum(1)
        dB_old, dC_old = g_old[4].sum(1), g_old[5].sum(1)
        row["max_rel_diff"] = max(rel(out_new, out_old), *(rel(a, b) for a, b in zip(g_new[:4], g_old[:4])),
                                  rel(dB_new, dB_old), rel(dC_new, dC_old),
                                  *(rel(a, b) for a, b in zip(g_new[6:], g_old[6:])))
        rows.append(row)
    load_end = os.getloadavg()[0]
    print(f"numba training kernels, {args.rev} (old) against this checkout (new); {torch.get_num_threads()} threads, "
          f"load {load:.2f} -> {load_end:.2f}")
    print("| shape | fwd old | fwd new | × | bwd old | bwd new | × | max rel diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['fwd_ms_old']} ms | {r['fwd_ms_new']} ms | {r['fwd_ms_old'] / r['fwd_ms_new']:.2f} | "
              f"{r['bwd_ms_old']} ms | {r['bwd_ms_new']} ms | {r['bwd_ms_old'] / r['bwd_ms_new']:.2f} | "
              f"{r['max_rel_diff']:.1e} |")
    result = {"rev": args.rev, "rows": rows, "threads": torch.get_num_threads(), "load_avg_1m": [load, load_end],
              "platform": platform.platform(), "torch": torch.__version__, "numba": numba.__version__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
