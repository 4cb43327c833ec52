"""Learning benchmark: does the pretraining recipe learn on corpora it was not tuned on, does the matching head
re-rank better than the dual encoder, does the encoder use frame order, and does UMT's masked student pay off?

For each generator **variant** (frame size, frame count, clip length, vocabulary; ``VARIANTS``) and each
**seed** (a new corpus and a new initialisation), it writes a synthetic moving-shapes corpus
(``vtr.data.synthetic``), trains the demo config (``pretrain/configs/demo.yaml``: VTC + VTM with hard negatives +
MLM) through the real ``pretrain/`` program, and scores the held-out attribute combinations (never seen in
training):

- the **ITC row** (dual encoder) and the **ITM row** (the ITC top 16 re-ranked by the matching head, as the
  published protocol reports): T2V / V2T R@1/5/10;
- the **temporal-pair accuracy**: is each held-out video's caption scored above its time-reversed twin's
  ("moves up" vs "moves down")? A bag of frames scores 50%.

Then, for the first seed of each variant (every seed with ``--masked-seeds all``), **UMT's masked student**
(``student_overrides``), in UMT's two stages within the same step budget: for the first ``STAGE_ONE_FRACTION`` of
the steps, the video encoder alone, 80% tube masked, its visible tokens aligned through ``clip_decoder`` to the
frozen first-stage model's tokens (UTA; no text);
for the rest, the recipe's own loss schedule shifted to start there, with the alignment kept, on unmasked clips
(``--stage-two-mask``: UMT's stage 2 masks 50%, which costs R@1 here and saves little, as the small video encoder
is a small share of a step with text; bench/README.md). Each stage has its own warm-up and cosine, as UMT's two
runs do (``stage_lr_restart``). Against the unmasked first-stage run: steps/s and held-out R@1. ``--shuffled`` adds
the bag-of-frames control (trained and evaluated on time-shuffled clips). ``--probe`` adds, for each recipe run,
what its video encoder reads of each attribute and what ITC's held-out misses get wrong (``bench.attributes``:
about 45 s a run on 2 cores), under ``attributes`` in its row.

    python -m bench.learning                                  # 3 seeds x 2 variants + 2 masked students
    python -m bench.learning --masked-seeds all               # ... + a masked student for every run
    python -m bench.learning --masked-seeds all --stage-two-mask 0 0.5   # ... two students each, side by side
    python -m bench.learning --seeds 0 --variants default     # one run
    python -m bench.learning --max-steps 40 --seeds 0         # a smoke run
    python -m bench.learning --no-masked --set rank_steps=600 # with the ranking stage (pretrain.train.ranking_stage)
    python -m bench.learning --seeds 0 --variants default --no-masked --eval-every 50 --out bench/results/learning_curve.json
                                                              # + held-out R@1 every 50 steps (learning curves)

Every run keeps its loss curve (``run.curve``: the logged losses by step); with ``--eval-every N`` the trainer
also evaluates the held-out set every N steps (its zero-shot eval, ITC and ITM rows) into ``run.eval_curve``.
Those evaluations count in the run's wall time, so leave them off when steps/s is what you compare.
``python -m bench.plots`` draws the curves.

Writes ``bench/results/learning.json`` (``--out``) and prints the tables; works in ``runs/bench_learning``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "learning.json"

#: Generator variants: corpus settings over vtr.data.synthetic.CorpusConfig's defaults (64 px, 16 frames at 8 fps,
#: the default vocabulary). "alt": other frame size, frame count, clip length, colours, shapes and motion words.
VARIANTS: dict[str, dict] = {
    "default": {},
    "alt": {"size": 56, "num_frames": 12, "fps": 4, "vocabulary": "alt"},
}

#: The masked student (UMT): 80% tube masking with token alignment to the first-stage model alone (stage 1), then
#: the text losses with the alignment kept (stage 2) on unmasked clips (``student_overrides``). UMT masks 50% in
#: stage 2; here that saved 12% of the student's time and cost 11 points of T2V R@1 (bench/README.md, nineteenth
#: round): the small video encoder is a small share of a step with text.
MASKED = {"mask_type": "tube", "mask_ratio": 0.8, "vl_mask_ratio": 0.0, "loss_uta": 1.0, "loss_distill": 0.0}
#: Of the run's steps: UMT's stage 1 (video only). A stage-1 step costs about 0.3 of a recipe step and a stage-2
#: step about one, so the student's steps/s is about 1 / (0.3 f + 1 - f) of the recipe's: 1.46x at 0.45 (measured
#: 1.35-1.69x over six runs), 1.6x at 0.55 (measured 1.66-1.74x); bench/README.md, nineteenth round.
STAGE_ONE_FRACTION = 0.55


def student_overrides(config: Path, max_steps: int | None, teacher: str,
                      stage_one: float = STAGE_ONE_FRACTION, stage_two_mask: float | None = None) -> dict:
    """The masked student's settings for ``config``'s run length: stage 1 for the first ``stage_one`` of the
    steps, then the recipe's own schedule (VTC at once, VTM and MLM after their own offsets) shifted to start there,
    so stage 2 is the first-stage recipe on fewer steps, with the teacher alignment. No ranking
    stage: the student is compared on its pretraining (steps/s, ITC R@1). ``stage_two_mask``: stage 2's mask ratio
    (``vl_mask_ratio``; 0: unmasked) in place of ``MASKED``'s."""
    from pretrain.config import load_config

    cfg = load_config(str(config), overrides={"max_steps": max_steps} if max_steps else None)
    text_start = int(stage_one * cfg.max_steps)
    mask = {} if stage_two_mask is None else {"vl_mask_ratio": stage_two_mask}
    return {**MASKED, **mask, "rank_steps": 0, "teacher": teacher, "text_start": text_start,
            "vtm_start": text_start + cfg.vtm_start,
            "mlm_start": text_start + cfg.mlm_start, "mask_steps": int(0.9 * cfg.max_steps)}


def student_dir(stage_two_mask: float) -> str:
    """The student's run folder beside its teacher's ``recipe``."""
    return "masked" if stage_two_mask == MASKED["vl_mask_ratio"] else f"masked_stage2_{stage_two_mask:g}"


def student_name(stage_two_mask: float) -> str:
    tail = "unmasked" if stage_two_mask == 0 else f"masked {stage_two_mask:.0%}"
    return f"masked student (stage 2 {tail})"


def masked_mean(rows: list[dict]) -> dict:
    """Each ``vs_unmasked`` ratio over the students ``rows``: mean, min, max and count."""
    values = {k: [r["vs_unmasked"][k] for r in rows if r["vs_unmasked"][k] is not None]
              for k in rows[0]["vs_unmasked"]}
    return {k: {"mean": round(statistics.mean(v), 3), "min": min(v), "max": max(v), "n": len(v)}
            for k, v in values.items() if v}


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "torch": torch.__version__, "load_avg_1m": round(os.getloadavg()[0], 2)}


def train_one(shards: Path, run_dir: Path, config: Path, seed: int, max_steps: int | None,
              overrides: dict | None = None, eval_every: int = 0, corpus: Path | None = None) -> dict:
    """Pretrain through pretrain.train (fresh run); wall time, steps/s (whole run and masked phase), losses by
    step, and with ``eval_every`` the held-out R@1 of ``corpus`` by step (the trainer's zero-shot evaluation)."""
    from pretrain.config import load_config
    from pretrain.train import train
    from vtr.eval.heldout import HELDOUT_ITM_K

    shutil.rmtree(run_dir, ignore_errors=True)
    o = {"train_shards": str(shards), "out_dir": str(run_dir), "seed": seed, **(overrides or {})}
    if eval_every:
        paths = json.loads((corpus / "corpus.json").read_text())["paths"]
        o.update(eval_every=eval_every, eval_annotation=str(corpus / paths["heldout_annotations"]),
                 eval_videos=str(corpus / paths["heldout_videos"]),
                 eval_k_test=HELDOUT_ITM_K)  # the same ITM row as the final held-out scores
    if max_steps:
        o["max_steps"] = max_steps
    cfg = load_config(str(config), overrides=o)
    load_before = os.getloadavg()[0]
    t0 = time.time()
    last = train(cfg)
    wall = time.time() - t0
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    steps = last.get("step", 0)

    def phase_rate(rows):  # steps/s over logged intervals (log_every steps each)
        rates = [r["samples_per_s"] / cfg.batch_size for r in rows if "samples_per_s" in r]
        return round(statistics.median(rates), 3) if rates else None

    rank = ([r["rank_check"] for r in log if "rank_check" in r] or [None])[-1]
    main = [r for r in log if r.get("stage") != "rank"]  # steps/s: the pretraining steps, not the ranking stage's
    main_wall = wall - (rank["wall_s"] if rank else 0.0)
    masked_rows = [r for r in main if r.get("masked_fraction") == 1.0]  # rows whose every step was masked
    return {"steps": steps, "batch_size": cfg.batch_size, "final_loss": last.get("loss"),
            "train_wall_s": round(wall, 1), "steps_per_s": round(steps / main_wall, 3),
            "steps_per_s_logged": phase_rate(main), "rank_stage": rank,
            "masked_phase_steps_per_s": phase_rate(masked_rows) if cfg.mask_type else None,
            "final": {k: last.get(k) for k in ("vtc", "vtm", "mlm", "uta") if k in last},
            "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "model": str(run_dir / "model"), **learning_curves(log)}


def learning_curves(log: list[dict]) -> dict:
    """From a run's ``log.jsonl`` rows: ``curve`` (step and losses) and ``eval_curve`` (step and each eval row's
    T2V/V2T R@1, e.g. ``itc_t2v_r1``)."""
    losses = ("loss", "vtc", "vtm", "mlm", "distill", "uta")
    curve = [{"step": r["step"], **{k: r[k] for k in losses if k in r}} for r in log if "loss" in r]
    evals = [{"step": r["step"], **{f"{row}_{m}": values[m] for row, values in r["eval"].items()
                                    for m in ("t2v_r1", "v2t_r1") if m in values}}
             for r in log if "eval" in r]
    return {"curve": curve, "eval_curve": evals}


def score(model_dir: str, corpus: Path, shuffle_frames: bool = False, seed: int = 0) -> dict:
    import vtr
    from vtr.eval.heldout import heldout_scores

    model = vtr.create_model(model_dir)
    # The ITM row always, trained head or not: the benchmark reports what re-ranking would do.
    scores = heldout_scores(model, corpus, shuffle_frames=shuffle_frames, seed=seed, itm=True)
    return {**scores, "itm_trained": model.cfg.itm_trained}


def probe_attributes(model_dir: str, corpus: Path) -> dict:
    """:func:`bench.attributes.measure` of a run's model: held-out probe accuracy per attribute and view, ITC's
    T2V misses by the attributes they get wrong."""
    import vtr
    from bench.attributes import measure

    return measure(vtr.create_model(model_dir), corpus)


def format_probe(attributes: dict) -> str:
    """One line: each attribute's held-out probe accuracy on the video's ITC embedding and on its max-pooled
    tokens, and how many of ITC's T2V misses each attribute is in."""
    probes = ", ".join(f"{a} {v['video ITC embedding'][1]:.0f}/{v['video tokens, max'][1]:.0f}%"
                       for a, v in attributes["probes"].items())
    misses = attributes["t2v_misses"]
    total = sum(misses.values())
    within = ", ".join(f"{a} {sum(n for k, n in misses.items() if a in k.split('+'))}"
                       for a in attributes["probes"])
    return f"  held-out probes (ITC embedding / max tokens): {probes}; ITC's {total} T2V misses involve: {within}"


def make_corpus(path: Path, variant: str, seed: int, shuffled: bool) -> dict:
    import dataclasses

    from vtr.data.synthetic import corpus_config, generate_corpus

    cfg = dataclasses.replace(corpus_config("default"), **VARIANTS[variant])
    info_path = path / "corpus.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    if (info is None or info["seed"] != seed or info["config"] != dataclasses.asdict(cfg)
            or (shuffled and "shards_shuffled" not in info["paths"])):
        shutil.rmtree(path, ignore_errors=True)
        info = generate_corpus(path, size=cfg, seed=seed, shuffled_train=shuffled, processes=os.cpu_count() or 1)
    return info


def _row(name: str, variant: str, seed: int, run: dict, scores: dict, **extra) -> dict:
    itm = scores.get("itm") or {}
    return {"name": name, "variant": variant, "seed": seed, "t2v_r1": scores["t2v_r1"], "t2v_r5": scores["t2v_r5"],
            "v2t_r1": scores["v2t_r1"], "itm_t2v_r1": itm.get("t2v_r1"), "itm_v2t_r1": itm.get("v2t_r1"),
            "chance_r1": scores["chance_r1"], "temporal_pair_acc": scores["temporal_pair_acc"],
            "itm_trained": scores["itm_trained"],
            "rank_stage_s": (run.get("rank_stage") or {}).get("wall_s"),
            "train_wall_s": run["train_wall_s"], "steps_per_s": run["steps_per_s"], "scores": scores, "run": run,
            **extra}


def _f(x, fmt="{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def format_runs(rows: list[dict]) -> str:
    head = ("| run | variant | seed | T2V R@1 (ITC) | T2V R@1 (ITM) | V2T R@1 (ITC) | V2T R@1 (ITM) | R@5 (ITC) "
            "| temporal pairs | chance R@1 | steps/s | train wall (ranking stage) | head re-ranks |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['name']} | {r['variant']} | {r['seed']} | {_f(r['t2v_r1'])} | {_f(r['itm_t2v_r1'])} | "
                     f"{_f(r['v2t_r1'])} | {_f(r['itm_v2t_r1'])} | {_f(r['t2v_r5'])} | "
                     f"{r['temporal_pair_acc']:.1f}% | {r['chance_r1']:.1f} | {r['steps_per_s']:.2f} | "
                     f"{r['train_wall_s']:.0f} s ({_f(r.get('rank_stage_s'), '{:.0f} s')}) | "
                     f"{'yes' if r['itm_trained'] else 'no'} |")
    return "\n".join(lines)


def summarise(rows: list[dict]) -> dict:
    def stats(values):
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"mean": round(statistics.mean(values), 2), "std": round(statistics.pstdev(values), 2),
                "min": min(values), "max": max(values), "n": len(values)}

    return {k: stats([r[k] for r in rows]) for k in ("t2v_r1", "itm_t2v_r1", "v2t_r1", "itm_v2t_r1",
                                                     "temporal_pair_acc", "train_wall_s")}


def format_summary(summary: dict) -> str:
    lines = ["| metric | mean | spread (std) | min | max | runs |", "|---|---|---|---|---|---|"]
    for k, s in summary.items():
        if s:
            lines.append(f"| {k} | {s['mean']:.1f} | {s['std']:.1f} | {s['min']:.1f} | {s['max']:.1f} | {s['n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/bench_learning", help="working folder (corpora, runs)")
    parser.add_argument("--out", default=str(RESULTS), help="results JSON")
    parser.add_argument("--config", default=None, help="pretraining config (default: pretrain/configs/demo.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-steps", type=int, default=None, help="override the config's max_steps")
    parser.add_argument("--masked", action=argparse.BooleanOptionalAction, default=True,
                        help="the masked student against the first seed's run of each variant (default: yes)")
    parser.add_argument("--masked-seeds", choices=["first", "all"], default="first",
                        help="the masked student against the first seed's run of each variant, or every seed's: one "
                             "run per variant places its R@1 ratio only to about +-10%% (default: first)")
    parser.add_argument("--stage-one", type=float, default=STAGE_ONE_FRACTION,
                        help="the masked student's stage 1 (video only), as a fraction of the steps")
    parser.add_argument("--stage-two-mask", type=float, nargs="+", default=[MASKED["vl_mask_ratio"]],
                        metavar="RATIO", help="the masked student's mask ratio in stage 2 (0: unmasked); several "
                        "values train one student each against the same run, side by side (default: %(default)s)")
    parser.add_argument("--shuffled", action=argparse.BooleanOptionalAction, default=False,
                        help="also the bag-of-frames control on the first seed of each variant (default: no)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="held-out R@1 every N steps during training, for the learning curves (default: off; "
                             "the evaluations count in the wall time)")
    parser.add_argument("--probe", action=argparse.BooleanOptionalAction, default=False,
                        help="each recipe run's linear attribute probes and ITC misses by attribute "
                             "(bench.attributes; default: no)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a pretraining config key for every run (repeatable), e.g. --set rank_steps=600")
    args = parser.parse_args(argv)
    sets = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or not key:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        sets[key] = value

    import logging

    from bench import write_results

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from demo.run import config_path

    work = Path(args.work)
    config = Path(args.config) if args.config else config_path("demo.yaml")
    result: dict = {"config": str(config), "set": sets, "seeds": args.seeds, "stage_one": args.stage_one,
                    "stage_two_mask": args.stage_two_mask,
                    "variants": {v: VARIANTS[v] for v in args.variants},
                    "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "machine_start": machine(), "corpora": {}}
    t0 = time.time()
    rows, masked_rows, control_rows = [], [], []
    for variant in args.variants:
        for i, seed in enumerate(args.seeds):
            first = i == 0
            corpus = work / variant / f"seed{seed}" / "corpus"
            info = make_corpus(corpus, variant, seed, shuffled=args.shuffled and first)
            result["corpora"][f"{variant}/{seed}"] = {
                "train_clips": info["config"]["num_train"], "heldout": len(info["heldout_combos"]),
                "train_combinations": len(info["train_combos"]), "attributes": info["attributes"]}
            run_dir = work / variant / f"seed{seed}" / "recipe"
            run = train_one(corpus / "shards", run_dir, config, seed, args.max_steps, sets, eval_every=args.eval_every,
                            corpus=corpus)
            rows.append(_row("recipe", variant, seed, run, score(run["model"], corpus, seed=seed)))
            print(format_runs(rows[-1:]).splitlines()[-1], flush=True)
            if args.probe:
                rows[-1]["attributes"] = probe_attributes(run["model"], corpus)
                print(format_probe(rows[-1]["attributes"]), flush=True)
            for mask in args.stage_two_mask if args.masked and (first or args.masked_seeds == "all") else []:
                student = train_one(corpus / "shards", work / variant / f"seed{seed}" / student_dir(mask), config,
                                    seed, args.max_steps,
                                    {**sets, **student_overrides(config, args.max_steps, run["model"], args.stage_one,
                                                                 mask)},
                                    eval_every=args.eval_every, corpus=corpus)
                r = _row(student_name(mask), variant, seed, student, score(student["model"], corpus, seed=seed),
                         stage_two_mask=mask)
                r["vs_unmasked"] = {
                    "steps_per_s_ratio": round(student["steps_per_s"] / run["steps_per_s"], 2),
                    "masked_phase_steps_per_s_ratio": (round(student["masked_phase_steps_per_s"]
                                                             / run["steps_per_s_logged"], 2)
                                                       if student["masked_phase_steps_per_s"] else None),
                    "t2v_r1_ratio": round(r["t2v_r1"] / max(rows[-1]["t2v_r1"], 1e-9), 3),
                    "v2t_r1_ratio": round(r["v2t_r1"] / max(rows[-1]["v2t_r1"], 1e-9), 3)}
                masked_rows.append(r)
                print(format_runs([r]).splitlines()[-1], r["vs_unmasked"], flush=True)
            if first and args.shuffled:
                control = train_one(corpus / "shards_shuffled", work / variant / f"seed{seed}" / "bag_of_frames",
                                    config, seed, args.max_steps, sets)
                control_rows.append(_row("bag of frames", variant, seed, control,
                                         score(control["model"], corpus, shuffle_frames=True, seed=seed)))

    summary = summarise(rows)
    itm_gain = [r["itm_t2v_r1"] - r["t2v_r1"] for r in rows if r["itm_t2v_r1"] is not None]
    result.update(rows=rows, masked=masked_rows, bag_of_frames=control_rows, summary=summary,
                  itm_minus_itc_t2v_r1={"mean": round(statistics.mean(itm_gain), 2) if itm_gain else None,
                                        "min": min(itm_gain) if itm_gain else None})
    result["targets"] = {
        "t2v_r1_mean_ge_60": summary["t2v_r1"]["mean"] >= 60.0,
        "t2v_r1_min_ge_50": summary["t2v_r1"]["min"] >= 50.0,
        "temporal_pairs_mean_ge_90": summary["temporal_pair_acc"]["mean"] >= 90.0,
        "itm_row_ge_itc_plus_5": bool(itm_gain) and statistics.mean(itm_gain) >= 5.0,
    }
    # The masked targets, for the first --stage-two-mask (the bench's student) over its runs: every run at 1.5x the
    # steps/s, and the mean R@1 ratio, as the recipe's R@1 targets are means over seeds (each run's ratios and their
    # minimum are in masked_mean too)
    students = {m: [r for r in masked_rows if r["stage_two_mask"] == m] for m in args.stage_two_mask}
    result["masked_mean"] = {student_name(m): masked_mean(rs) for m, rs in students.items() if rs}
    first_mean = result["masked_mean"].get(student_name(args.stage_two_mask[0]))
    result["targets"].update({
        "masked_steps_per_s_ge_1_5x": first_mean["steps_per_s_ratio"]["min"] >= 1.5 if first_mean else None,
        "masked_r1_ge_90pct": first_mean["t2v_r1_ratio"]["mean"] >= 0.9 if first_mean else None})
    result["machine_end"] = machine()
    result["total_s"] = round(time.time() - t0, 1)

    print(f"\n## Learning benchmark ({config.name}; seeds {args.seeds}; variants {args.variants}; "
          f"{result['machine_end']['cpus']} CPUs, load {result['machine_start']['load_avg_1m']} -> "
          f"{result['machine_end']['load_avg_1m']}; {result['total_s'] / 60:.0f} min)\n")
    print(format_runs(rows + masked_rows + control_rows) + "\n")
    print(format_summary(summary) + "\n")
    print(f"ITM row minus ITC row, T2V R@1: mean {result['itm_minus_itc_t2v_r1']['mean']}, "
          f"min {result['itm_minus_itc_t2v_r1']['min']}")
    for m in masked_rows:
        print(f"{m['name']} ({m['variant']}, seed {m['seed']}): {m['vs_unmasked']}")
    for name, mean in result["masked_mean"].items():
        print(f"{name}, over {mean['t2v_r1_ratio']['n']} runs: "
              + ", ".join(f"{k} mean {v['mean']} (min {v['min']})" for k, v in mean.items()))
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO' if v is not None else '-'}"
                                  for k, v in result["targets"].items()))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
