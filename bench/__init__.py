"""Benchmarks that print tables and write JSON under bench/results/ (never timed assertions in tests)."""

import json
from pathlib import Path


def write_results(path, report: dict) -> Path:
    """A bench's JSON results at ``path`` (its folder created), announced on stdout; ``python -m bench.plots`` reads
    them there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return path
