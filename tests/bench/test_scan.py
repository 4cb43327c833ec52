"""bench.scan runs at small sizes: every row filled, the reference's fwd+bwd extrapolated past its limit."""

import math

from bench import scan


def test_reference_fwd_bwd_is_extrapolated_when_every_length_is_past_the_limit(monkeypatch):
    from vtr.ops import selective_scan as ss

    monkeypatch.setattr(ss, "_load_numba", lambda: None)  # ref and torch suffice here; no JIT compile
    # the shape of `python -m bench.scan --quick --ref-fwdbwd-max-len 200`: no length at or below the limit
    rows = scan.scan_benchmark(lengths=(48, 96), d_inner=8, repeats=1, quick=True, ref_fwdbwd_max_len=16,
                               grad_check_max_len=48, verbose=False)
    assert {(r["L"], r["impl"], r["mode"]) for r in rows} == {
        (48, impl, mode) for impl in ("ref", "torch") for mode in ("fwd", "fwd+bwd")}
    ref_fb = next(r for r in rows if r["impl"] == "ref" and r["mode"] == "fwd+bwd")
    assert ref_fb["note"] == "extrapolated linearly from L=16: a lower bound"
    assert math.isfinite(ref_fb["ms"]) and ref_fb["ms"] > 0 and ref_fb["speedup"] == 1.0
    torch_fb = next(r for r in rows if r["impl"] == "torch" and r["mode"] == "fwd+bwd")
    assert math.isfinite(torch_fb["speedup"]) and torch_fb["grad_max_rel_err"] < 1e-4
    assert "extrapolated" in scan.format_table(rows)
