"""Selective-scan benchmark: every implementation against the reference loop, same run, same inputs.

Realistic Mamba parameters (VideoMamba-M: d_inner 1152, N 16; L = 1 + 8·196 = 1569 and 1 + 32·196 = 6273):
A = -exp(A_log) with A_log = log(1..16) (Mamba's init), delta = a dt_proj-like output N(0, 0.1²) and
delta_bias = softplus⁻¹(dt) with dt log-uniform in [1e-3, 1e-1] (Mamba's dt init), softplus on, D, z present.

For each L and implementation: forward under ``torch.no_grad`` and forward+backward (grads of all inputs),
ms per call (median), speed-up against the reference (``selective_scan_ref``; for fwd+bwd the reference under
autograd), and accuracy: max relative error (max |x - x64| / max |x64|) of the output, and of the gradients
for fwd+bwd, against a float64 recurrence (float64 autograd for the gradients).

    python -m bench.scan                 # both lengths (a few minutes on 2 cores)
    python -m bench.scan --quick         # L = 1569 only, fewer repeats
    python bench/scan.py --lengths 1569 --repeats 5

Writes ``bench/results/scan.json`` (``--out``) and prints a table. Importing this module has no side effects.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "scan.json"


def make_inputs(length, d_inner=1152, batch=1, d_state=16, seed=0):
    """Mamba-like inputs (fp32): dict of u, delta, A, B, C, D, z, delta_bias (+ delta_softplus=True)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    A_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)
    dt = torch.exp(torch.rand(d_inner, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return dict(
        u=F.silu(torch.randn(batch, d_inner, length, generator=g)),
        delta=0.1 * torch.randn(batch, d_inner, length, generator=g),
        A=-torch.exp(A_log),
        B=torch.randn(batch, d_state, length, generator=g),
        C=torch.randn(batch, d_state, length, generator=g),
        D=torch.ones(d_inner),
        z=torch.randn(batch, d_inner, length, generator=g),
        delta_bias=dt + torch.log(-torch.expm1(-dt)),  # softplus⁻¹(dt)
        delta_softplus=True,
    )


def scan_f64(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, tile=128):
    """The recurrence in float64 (ground truth for accuracy), channel tiles to bound memory; differentiable."""
    import torch
    import torch.nn.functional as F

    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    dt = delta + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = F.softplus(dt)
    ys = []
    for d0 in range(0, u.shape[1], tile):
        dts, us, As = dt[:, d0:d0 + tile], u[:, d0:d0 + tile], A[d0:d0 + tile]
        s = torch.zeros(u.shape[0], dts.shape[1], A.shape[1], dtype=torch.float64)
        dA = torch.exp(dts[..., None] * As[:, None, :])  # [B, d, L, N]
        dBu = (dts * us)[..., None] * B.transpose(1, 2)[:, None]
        y = []
        # unbind, not [:, :, t]: autograd's select-backward would zero-fill a full [B, d, L, N] per step (O(L²))
        for a, bu, c in zip(dA.unbind(2), dBu.unbind(2), C.unbind(2)):
            s = a * s + bu
            y.append((s * c[:, None]).sum(-1))
        ys.append(torch.stack(y, -1))
    y = torch.cat(ys, 1)
    if D is not None:
        y = y + u * D.double()[:, None]
    return y * F.silu(z.double()) if z is not None else y


def _rel(x, ref):
    return ((x.double() - ref).abs().max() / ref.abs().max()).item()


def _fwd_bwd(fn, x, g):
    """One forward + backward of ``fn`` on fresh leaf copies of ``x``; returns them (with their .grad)."""
    import torch

    xs = {k: (v.detach().requires_grad_() if torch.is_tensor(v) else v) for k, v in x.items()}
    fn(**xs).backward(g)
    return xs


def _time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def scan_benchmark(lengths=(1569, 6273), d_inner=1152, batch=1, d_state=16, repeats=3, quick=False,
                   ref_fwdbwd_max_len=1569, grad_check_max_len=1569, verbose=True):
    """Time and check every available implementation; returns one dict per (L, impl, mode).

    Row keys: L, d_inner, batch, impl, mode ("fwd" | "fwd+bwd"), ms, speedup (vs ref, same mode), max_rel_err
    (output vs float64), grad_max_rel_err (fwd+bwd, worst input gradient vs float64 autograd; None when
    skipped), note. The reference under autograd is only run for L ≤ ``ref_fwdbwd_max_len``; beyond it its
    time is extrapolated linearly in L from the longest measured length (note says so). ``quick``: first
    length only, one repeat.
    """
    import torch

    from vtr.ops import selective_scan as ss

    if quick:
        lengths, repeats = tuple(lengths)[:1], 1
    impls = {"ref": ss.selective_scan_ref, "torch": ss.selective_scan_torch}
    if ss._load_numba() is not None:
        impls["numba"] = ss.selective_scan_numba
    names = list(impls)
    rows = []
    ref_fb_per_step = None  # seconds per time step of the reference fwd+bwd, for extrapolation
    say = print if verbose else (lambda *a, **k: None)
    say(f"[scan] torch {torch.__version__}, {torch.get_num_threads()} threads, impls {names}")
    for L in lengths:
        x = make_inputs(L, d_inner, batch, d_state)
        with torch.no_grad():
            y64 = scan_f64(**x)
        # --- forward, no grad
        fwd = {}
        for name in names:
            fn = impls[name]
            with torch.no_grad():
                if name == "ref":  # seconds per call: no warm-up needed, one call is enough at long L
                    sec, out = _time(lambda: fn(**x), 1 if L > 2000 else repeats, warmup=0)
                else:  # warm-up call: JIT compile (numba, cached on disk) stays outside the timing
                    sec, out = _time(lambda: fn(**x), repeats, warmup=1)
                err = _rel(out, y64)
            fwd[name] = sec
            rows.append(dict(L=L, d_inner=d_inner, batch=batch, impl=name, mode="fwd", ms=1e3 * sec,
                             max_rel_err=err, grad_max_rel_err=None, note=""))
            say(f"[scan] L={L} {name:6s} fwd      {1e3 * sec:10.1f} ms  err {err:.1e}")
        # --- forward + backward
        grads64 = None
        if L <= grad_check_max_len:
            x64 = {k: (v.double().requires_grad_() if torch.is_tensor(v) else v) for k, v in x.items()}
            out = scan_f64(**x64)
            g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            out.backward(g)
            grads64 = {k: v.grad for k, v in x64.items() if torch.is_tensor(v)}
            del x64, out
        else:
            g = torch.randn(y64.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        g32 = g.float()
        fb = {}
        for name in names:
            fn = impls[name]
            note = ""
            if name == "ref" and L > ref_fwdbwd_max_len:
                if ref_fb_per_step is None:  # no length short enough was measured: time it once at the limit
                    ref_fb_len = ref_fwdbwd_max_len
                    short = make_inputs(ref_fb_len, d_inner, batch, d_state)
                    g_short = torch.randn(batch, d_inner, ref_fb_len, generator=torch.Generator().manual_seed(1))
                    sec, _ = _time(lambda: _fwd_bwd(fn, short, g_short), 1, warmup=0)
                    ref_fb_per_step = sec / ref_fb_len
                    del short, g_short
                sec = ref_fb_per_step * L
                # its backward is O(L²) (select-backward zero-fills [B, D, L, N] per step): linear is a lower bound
                note = "extrapolated linearly from L=%d: a lower bound" % ref_fb_len
                gerr, err = None, None
            else:
                reps = 1 if name == "ref" else repeats
                sec, xs = _time(lambda: _fwd_bwd(fn, x, g32), reps, warmup=0 if name == "ref" else 1)
                gerr = None
                if grads64 is not None:
                    gerr = max(_rel(xs[k].grad, grads64[k]) for k in grads64)
                with torch.no_grad():
                    err = _rel(fn(**x), y64)
                if name == "ref":
                    ref_fb_per_step, ref_fb_len = sec / L, L
                    note = "timed once"
            fb[name] = sec
            rows.append(dict(L=L, d_inner=d_inner, batch=batch, impl=name, mode="fwd+bwd", ms=1e3 * sec,
                             max_rel_err=err, grad_max_rel_err=gerr, note=note))
            say(f"[scan] L={L} {name:6s} fwd+bwd  {1e3 * sec:10.1f} ms  grad err {gerr}")
        for r in rows:
            if r["L"] == L:
                base = (fwd if r["mode"] == "fwd" else fb)["ref"]
                r["speedup"] = base / (r["ms"] / 1e3) if r["ms"] else None
    return rows


def format_table(rows):
    head = f"{'L':>6} {'impl':>6} {'mode':>8} {'ms/call':>10} {'vs ref':>8} {'out err':>9} {'grad err':>9}  note"
    lines = [head, "-" * len(head)]
    fmt = lambda e: "—" if e is None else f"{e:.1e}"  # noqa: E731
    for r in rows:
        lines.append(f"{r['L']:>6} {r['impl']:>6} {r['mode']:>8} {r['ms']:>10.1f} {r['speedup']:>7.1f}× "
                     f"{fmt(r['max_rel_err']):>9} {fmt(r['grad_max_rel_err']):>9}  {r['note']}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="1569,6273")
    p.add_argument("--d-inner", type=int, default=1152)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ref-fwdbwd-max-len", type=int, default=1569,
                   help="longest L at which the reference runs under autograd (longer: extrapolated)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    import torch

    rows = scan_benchmark(tuple(int(v) for v in a.lengths.split(",")), a.d_inner, a.batch, repeats=a.repeats,
                          quick=a.quick, ref_fwdbwd_max_len=a.ref_fwdbwd_max_len)
    print(format_table(rows))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.processor() or platform.machine(), python=platform.python_version(),
                torch=torch.__version__, threads=torch.get_num_threads())
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    if __package__ in (None, ""):  # `python bench/scan.py`: make `vtr` and `bench` importable from the repo root
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
