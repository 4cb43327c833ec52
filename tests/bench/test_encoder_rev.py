"""bench.encoder --rev: a worker for another commit runs that commit's code, from its own extracted tree."""

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
