"""Learning benchmark: does pretraining on the synthetic corpus learn, and does the encoder use frame order?

Trains the demo config (``pretrain/configs/demo.yaml``, model ``vtr_demo_minilm``) with a fixed seed through the
real ``pretrain/`` program on the synthetic moving-shapes corpus (``vtr.data.synthetic``), then scores the
held-out attribute combinations (never seen in training): T2V / V2T R@1/5/10 of the dual encoder, chance R@1,
and the **temporal-pair accuracy** — for each held-out video, is its caption scored above the caption of its
time-reversed twin ("moves up" vs "moves down", "grows" vs "shrinks", "appears" vs "disappears")?

In the same run, the **bag-of-frames control**: the same model and recipe trained on the same clips with their
frames shuffled in time (``shards_shuffled``), evaluated on time-shuffled held-out clips; and the temporal model
itself evaluated on time-shuffled clips. Order carries the only difference between twins, so both should fall to
about 50% on temporal pairs while colour/shape/count keep most of their retrieval.

    python -m bench.learning                      # corpus + two trainings + scoring (about 12 min on 2 cores)
    python -m bench.learning --max-steps 50       # quicker, for a smoke run
    python -m bench.learning --no-shuffled        # the temporal model only

Writes ``bench/results/learning.json`` (``--out``); runs in ``runs/bench_learning`` (``--work``), reusing a
corpus already there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "learning.json"


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "torch": torch.__version__, "load_avg_1m": round(os.getloadavg()[0], 2)}


def train_one(corpus: Path, shards: str, run_dir: Path, config: Path, seed: int, max_steps: int | None) -> dict:
    """Pretrain through pretrain.train (fresh run) and return its wall time, steps and final loss."""
    import shutil

    from pretrain.config import load_config
    from pretrain.train import train

    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = {"train_shards": str(corpus / shards), "out_dir": str(run_dir), "seed": seed}
    if max_steps:
        overrides["max_steps"] = max_steps
    cfg = load_config(str(config), overrides=overrides)
    load_before = os.getloadavg()[0]
    t0 = time.time()
    last = train(cfg)
    wall = time.time() - t0
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    return {"shards": shards, "steps": last.get("step"), "batch_size": cfg.batch_size, "final_loss": last.get("loss"),
            "train_wall_s": round(wall, 1), "samples_per_s": round(last.get("step", 0) * cfg.batch_size / wall, 1),
            "first_logged_loss": log[0].get("loss") if log else None,
            "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "model": str(run_dir / "model")}


def score(model_dir: str, corpus: Path, shuffle_frames: bool, seed: int) -> dict:
    import vtr
    from vtr.demo import heldout_scores

    return heldout_scores(vtr.create_model(model_dir), corpus, shuffle_frames=shuffle_frames, seed=seed)


def format_table(rows: list[dict]) -> str:
    head = ("| model | train frames | eval frames | T2V R@1 | R@5 | R@10 | V2T R@1 | R@5 | R@10 | chance R@1 "
            "| temporal pairs | train wall |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s = r["scores"]
        lines.append(f"| {r['name']} | {r['train_frames']} | {r['eval_frames']} | {s['t2v_r1']:.1f} | "
                     f"{s['t2v_r5']:.1f} | {s['t2v_r10']:.1f} | {s['v2t_r1']:.1f} | {s['v2t_r5']:.1f} | "
                     f"{s['v2t_r10']:.1f} | {s['chance_r1']:.1f} | {s['temporal_pair_acc']:.1f}% | "
                     f"{r['train_wall_s']:.0f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/bench_learning", help="working folder (corpus, runs)")
    parser.add_argument("--out", default=str(RESULTS), help="results JSON")
    parser.add_argument("--size", default="default", help="corpus size (vtr.data.synthetic.SIZES)")
    parser.add_argument("--config", default=None, help="pretraining config (default: pretrain/configs/demo.yaml)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="override the config's max_steps")
    parser.add_argument("--shuffled", action=argparse.BooleanOptionalAction, default=True,
                        help="also train the bag-of-frames control (default: yes)")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from vtr.data.synthetic import generate_corpus
    from vtr.demo import config_path

    work = Path(args.work)
    corpus = work / "corpus"
    config = Path(args.config) if args.config else config_path("demo.yaml")
    result: dict = {"config": str(config), "seed": args.seed, "size": args.size, "machine_start": machine()}

    t0 = time.time()
    info_path = corpus / "corpus.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    if info is None or info["seed"] != args.seed or "shards_shuffled" not in info["paths"]:
        info = generate_corpus(corpus, size=args.size, seed=args.seed, shuffled_train=True)
    result["corpus"] = {"path": str(corpus), "seconds": round(time.time() - t0, 1), **info["config"],
                        "heldout_combinations": len(info["heldout_combos"]),
                        "train_combinations": len(info["train_combos"])}
    print(f"corpus: {result['corpus']['num_train']} training clips over {result['corpus']['train_combinations']} "
          f"combinations, {result['corpus']['heldout_combinations']} held-out combinations", flush=True)

    runs = {"temporal": train_one(corpus, "shards", work / "temporal", config, args.seed, args.max_steps)}
    if args.shuffled:
        runs["bag_of_frames"] = train_one(corpus, "shards_shuffled", work / "bag_of_frames", config, args.seed,
                                          args.max_steps)
    result["training"] = runs

    rows = []
    plan = [("temporal", "temporal", "ordered", False), ("temporal (eval shuffled)", "temporal", "shuffled", True)]
    if args.shuffled:
        plan.append(("bag of frames", "bag_of_frames", "shuffled", True))
    for name, run, eval_frames, shuffle in plan:
        rows.append({"name": name, "run": run, "train_frames": "ordered" if run == "temporal" else "shuffled",
                     "eval_frames": eval_frames, "train_wall_s": runs[run]["train_wall_s"],
                     "scores": score(runs[run]["model"], corpus, shuffle, args.seed)})
    result["rows"] = rows
    t = rows[0]["scores"]
    result["targets"] = {
        "t2v_r1_ge_50": t["t2v_r1"] >= 50.0, "chance_le_2": t["chance_r1"] <= 2.0,
        "temporal_pairs_ge_90": t["temporal_pair_acc"] >= 90.0,
        "train_within_10_min": runs["temporal"]["train_wall_s"] <= 600.0,
        "bag_of_frames_near_50": (abs(rows[-1]["scores"]["temporal_pair_acc"] - 50.0) <= 10.0
                                  if args.shuffled else None),
    }
    result["machine_end"] = machine()
    result["total_s"] = round(time.time() - t0, 1)

    table = format_table(rows)
    print(f"\n## Learning benchmark ({config.name}, seed {args.seed}; {result['machine_end']['cpus']} CPUs, load "
          f"{result['machine_start']['load_avg_1m']} -> {result['machine_end']['load_avg_1m']})\n\n{table}\n")
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO' if v is not None else '-'}"
                                  for k, v in result["targets"].items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
