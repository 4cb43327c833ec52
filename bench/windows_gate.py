"""Quality gate of the window policies: the demo's moment hit rate under each policy, side by side.

Needs a finished demo run (``vtr demo --no-app --out RUN``: corpus/ and model/). Each policy indexes the demo's
long videos into its own temporary index with the demo model (:func:`demo.run.run_index`), then searches every
long-video caption; a hit is a top-1 segment overlapping a clip with that caption in the right video.

    python -m bench.windows_gate --run runs/demo

Writes ``bench/results/windows_gate.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "windows_gate.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished `vtr demo` run folder (corpus/ and model/)")
    p.add_argument("--policies", default="stride,shots",
                   help="window policies; shots-2pass: shots in two decoding passes (the default before the "
                        "twenty-eighth round)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)

    from demo.run import run_index

    run = Path(a.run)
    corpus, model_dir = run / "corpus", run / "model"
    if not (corpus / "corpus.json").is_file() or not model_dir.is_dir():
        p.error(f"{run} is not a finished demo run (needs corpus/corpus.json and model/)")
    cfg = json.loads((corpus / "corpus.json").read_text())["config"]
    clip_seconds = cfg["num_frames"] / cfg["fps"]
    rows = []
    from bench.index_throughput import policies_arg

    for policy in policies_arg(p, a.policies):
        with tempfile.TemporaryDirectory(prefix=f"vtr-gate-{policy}-") as tmp, _passes(policy) as built:
            t0 = time.perf_counter()
            res = run_index(corpus, model_dir, Path(tmp) / "index", clip_seconds, window_policy=built)
            res.update(policy=policy, seconds=time.perf_counter() - t0, loadavg=os.getloadavg()[0])
        rows.append(res)
    print(f"\n{'policy':11s} {'files':>5s} {'windows':>7s} {'queries':>7s} {'top-1 hit rate':>15s} {'s':>6s} "
          f"{'load':>5s}")
    for r in rows:
        print(f"{r['policy']:11s} {r['files']:5d} {r['windows']:7d} {r['queries']:7d} {r['top1_hit_rate']:14.1f}% "
              f"{r['seconds']:6.1f} {r['loadavg']:5.1f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": str(run), "clip_seconds": clip_seconds, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


@contextlib.contextmanager
def _passes(policy: str):
    """The policy to build with; for ``shots-2pass``, ``shots`` with its one decoding pass turned off (run_index
    decodes in this process)."""
    from unittest import mock

    from bench.index_throughput import policy_of

    built, one_pass = policy_of(policy)
    if one_pass:
        yield built
        return
    with mock.patch("index.decode._shots_in_one_pass", lambda *a, **k: None):
        yield built


if __name__ == "__main__":
    sys.exit(main())
