"""bench.encoder --rev: a worker for another commit runs that commit's code, from its own extracted tree; and the
gemms section."""

import subprocess

import pytest

from bench import encoder


def test_checkout_of_a_commit_is_that_commits_tree():
    root = encoder.checkout_of(".")
    assert (root / "bench" / "encoder.py").samefile(encoder.__file__)
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    folder = encoder.checkout_of(head.stdout.strip())
    assert folder != root and encoder.checkout_of(head.stdout.strip()) == folder  # extracted once
    committed = subprocess.run(["git", "-C", str(root), "show", "HEAD:vtr/ops/_scan_numba.py"], capture_output=True,
                               text=True, check=True).stdout
    assert (folder / "vtr" / "ops" / "_scan_numba.py").read_text() == committed


def test_an_unknown_commit_stops_with_a_message():
    with pytest.raises(SystemExit, match="git archive no-such-commit failed"):
        encoder.checkout_of("no-such-commit")


def test_gemms_section_times_both_ways_on_the_mixers_shapes():
    from types import SimpleNamespace

    from vtr.ops.mixer_ops import _onednn_linear

    rows = encoder.section_gemms(SimpleNamespace(batch=[1], conv_repeats=1))
    if _onednn_linear() is None:
        assert rows == []
        return
    assert [r["gemm"] for r in rows] == ["in_proj", "x_proj", "dt_proj", "out_proj"]
    for r in rows:
        assert r["F.linear_ms"] > 0 and r["linear_rows_ms"] > 0 and r["max_abs_diff"] < 1e-4
