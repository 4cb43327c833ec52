"""What a person waits for at the command line: ``vtr search`` (one query, a fresh process: imports, the model,
the weight check, the query) and ``vtr index update`` of an unchanged collection (a cron job), with the
release-size model (``videomamba_middle_bert``, random weights: the time does not depend on them; the MiniLM
package's bert-base-uncased vocabulary, so nothing is downloaded); and loading the released weights' file (a
``.pth`` with every key, shape and dtype of the release, CLIP teacher included, random values) into
``videomamba_m16_25M``, as every command given that weight name does.

Each command runs in its own process, for each code revision in turn (``--revs``: ``.`` is this checkout; another
revision is extracted with ``git archive``), alternating, so that a change in the machine's load hits every
revision alike. Wall time from the start of the process to its exit, and the process's peak memory
(``ru_maxrss``). The index is built once, by this checkout.

    python -m bench.cli_latency                          # this checkout, 5 runs of each command
    python -m bench.cli_latency --revs d42db02 .         # the code of d42db02 beside this checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERY = "a person walks a dog along the beach"


def make_model(folder) -> Path:
    """A vtr folder of the release architecture at random init, reading captions with the MiniLM package's
    bert-base-uncased vocabulary."""
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import MINILM_TOKENIZER, config_to_dict, create_model

    model = create_model("videomamba_middle_bert")
    config = config_to_dict(model.cfg, architecture="videomamba_middle_bert")
    config["preprocess"]["tokenizer"] = MINILM_TOKENIZER
    return save_vtr(model, folder, config)


def make_release_file(path) -> Path:
    """A ``.pth`` of the release's keys, shapes and dtypes (bf16 floats), random values."""
    import torch

    from tests.models.test_checkpoint import fake_release_checkpoint

    torch.save(fake_release_checkpoint(), path)
    return Path(path)


def run_timed(argv: list[str], checkout: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``python -m vtr.cli ARGV`` (``python -c CODE`` for ``["-c", CODE]``) with
    ``checkout``'s code."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, *argv] if argv[0] == "-c" else [sys.executable, "-m", "vtr.cli", *argv]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty process never blocks on it
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=str(checkout), env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench.cli_latency: vtr {' '.join(argv)} failed ({proc.returncode}):\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main(argv=None) -> int:
    from bench.encoder import checkout_of
    from bench.index_throughput import make_footage

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--revs", nargs="+", default=["."], help="code revisions (. = this checkout)")
    p.add_argument("--runs", type=int, default=5, help="runs of each command per revision")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_latency.json"))
    args = p.parse_args(argv)

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="vtr_cli_latency_"))
    model = work / "model"
    # in a process of its own: a child's ru_maxrss counts what it inherited from this one before its exec
    release = work / "videomamba_m16_25M_f8_res224.pth"
    subprocess.run([sys.executable, "-c", f"from bench.cli_latency import make_model, make_release_file; "
                    f"make_model({str(model)!r}); make_release_file({str(release)!r})"], cwd=str(ROOT), check=True)
    make_footage(work / "videos" / "clip.mp4", 16, 640, 360)
    index = work / "idx"
    subprocess.run([sys.executable, "-m", "vtr.cli", "index", "build", str(work / "videos"), "--index", str(index),
                    "--model", str(model)], cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    commands = {"search": ["search", QUERY, "--index", str(index), "-k", "3"],
                "update (nothing new)": ["index", "update", "--index", str(index)],
                "load the release file": ["-c", f"import vtr; vtr.create_model('videomamba_m16_25M', "
                                                f"pretrained={str(release)!r})"]}
    checkouts = {rev: checkout_of(rev) for rev in args.revs}
    samples = {(rev, name): [] for rev in args.revs for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            for rev in args.revs:  # alternating: a load change hits every revision alike
                samples[rev, name].append(run_timed(command, checkouts[rev]))
    load_after = os.getloadavg()

    rows = []
    for (rev, name), runs in samples.items():
        walls = [w for w, _ in runs]
        rows.append({"rev": rev, "command": name, "median_s": statistics.median(walls), "min_s": min(walls),
                     "max_s": max(walls), "peak_rss_mib": max(r for _, r in runs), "runs": len(runs)})
    base = {r["command"]: r["median_s"] for r in rows if r["rev"] == args.revs[0]}
    for r in rows:
        r["vs_first_rev"] = r["median_s"] / base[r["command"]]
    report = {"machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after},
              "model": "videomamba_middle_bert (random init, MiniLM vocabulary)", "query": QUERY, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))

    print(f"load {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs; {args.runs} runs each")
    print("| command | revision | median s | min-max s | peak RSS MiB | time vs first revision |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["command"], args.revs.index(r["rev"]))):
        print(f"| {r['command']} | {r['rev']} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {r['vs_first_rev']:.2f}x |")
    print(f"(JSON: {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
