"""What a decode worker holds: the peak resident memory of decoding one chunk of a video under each window policy,
side by side, each in a fresh process.

A decode worker runs :func:`index.decode.decode_chunk` a chunk at a time. The shots policy's one pass keeps a copy of
each grid frame at the model's size (and cut detection's and the thumbnail's) while the span decodes; its two passes
(``shots-2pass``) keep the wanted frames at the decoder's size; stride keeps the wanted frames of its windows. Each row
runs in its own Python process, which imports vtr (and so its malloc settings, :func:`vtr._keep_freed_memory`),
decodes a small warm-up clip, then the chunk: ``peak MB`` is the process's peak resident set (``ru_maxrss``) after the
chunk, ``added MB`` what the chunk added to the peak before it, ``resident MB`` what stays resident after it (vtr's
malloc settings hand nothing back, so a heap that grew shows there).

    python -m bench.decode_memory VIDEO [VIDEO ...]
    python -m bench.decode_memory VIDEO --policies shots,shots-2pass --chunk 1

Writes ``bench/results/decode_memory.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "decode_memory.json"

PROBE = """
import json, resource, sys
import torch
from bench.index_throughput import policy_of
from index.decode import DecodeSettings, decode_chunk

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

import os
torch.set_num_threads(1)  # what a decode worker runs with
path, warm, name, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
policy, one_pass = policy_of(name)
settings = DecodeSettings(window_policy=policy, one_pass=one_pass)  # the defaults: 8 frames, 224², 8 s windows
decode_chunk(warm, 0, settings)
peak_before, before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, resident()
result = decode_chunk(path, chunk, settings)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_before": peak_before,
                  "resident_before": before, "resident": resident(), "windows": len(result.windows),
                  "n_chunks": result.n_chunks, "result_bytes": int(result.frames.nbytes)}))
"""


def warm_up_clip(folder: Path) -> Path:
    """A 2 s clip of 64×48: the first decode's fixed costs (codecs, swscale, the resize's kernels) before the chunk."""
    import numpy as np

    from vtr.data.synthetic import write_mp4

    path = folder / "warm.mp4"
    frames = np.random.default_rng(0).integers(0, 256, (16, 48, 64, 3), dtype=np.uint8)
    write_mp4(path, frames, fps=8)
    return path


def measure(path: Path, warm: Path, policy: str, chunk: int = 0) -> dict:
    """One row, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), str(warm), policy, str(chunk)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{policy} on {path}: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2 ** 20
    return {"video": str(path), "policy": policy, "chunk": chunk, "windows": r["windows"], "n_chunks": r["n_chunks"],
            "peak_mb": r["peak"] / mb, "added_mb": max(0, r["peak"] - r["peak_before"]) / mb,
            "resident_mb": r["resident"] / mb, "resident_added_mb": (r["resident"] - r["resident_before"]) / mb,
            "result_mb": r["result_bytes"] / mb, "loadavg": os.getloadavg()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+")
    p.add_argument("--policies", default="shots,shots-2pass,stride",
                   help="window policies; shots-2pass: shots in two decoding passes")
    p.add_argument("--chunk", type=int, default=0, help="which chunk of each video (0: its first)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    from bench.index_throughput import policies_arg

    policies = policies_arg(p, a.policies)
    for v in a.videos:
        if not Path(v).is_file():
            p.error(f"{v} is not a file")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vtr-decode-memory-") as tmp:
        warm = warm_up_clip(Path(tmp))
        for video in a.videos:
            for policy in policies:
                rows.append(measure(Path(video), warm, policy, a.chunk))
                r = rows[-1]
                print(f"[memory] {Path(video).name} {policy}: peak {r['peak_mb']:.0f} MB (+{r['added_mb']:.0f}), "
                      f"resident after +{r['resident_added_mb']:.0f} MB  load {r['loadavg']:.1f}", flush=True)
    print(f"\n{'video':40s} {'policy':12s} {'windows':>7s} {'peak MB':>8s} {'added MB':>9s} {'resident +MB':>12s} "
          f"{'result MB':>9s} {'load':>5s}")
    for r in rows:
        print(f"{Path(r['video']).name[:40]:40s} {r['policy']:12s} {r['windows']:7d} {r['peak_mb']:8.0f} "
              f"{r['added_mb']:9.0f} {r['resident_added_mb']:12.0f} {r['result_mb']:9.1f} {r['loadavg']:5.1f}")
    write_results(a.out, {"chunk": a.chunk, "rows": rows, "loadavg": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
