"""Does the matching head learn, and can it re-rank better than the dual encoder?

Trains only the fusion layers and the ITM head (VTM loss, batches of ``--batch`` training clips, their hard or
uniformly drawn negatives: 3 pairs per clip) on the frozen encoders of a trained vtr model, on features computed
once, so one trial takes minutes instead of a pretraining run. Each trial starts the fusion layers either from the
model itself (``own``) or as pretraining starts them (``fresh``: the text weights' layers with a new
cross-attention), and reports the VTM loss curve and the held-out ITM row (the ITC top ``k`` re-ranked) beside
the ITC row::

    python -m bench.matching --run runs/bench_learning/default/seed0     # corpus/ and recipe/model/ inside

``--run`` is a bench/learning.py run folder (``corpus/`` from vtr.data.synthetic, ``recipe/model``); the model's
pretraining config comes from its ``--config`` (the demo's by default). ``--seen N`` also scores each trial on
fresh renders of N *training* combinations (:func:`seen_corpus`), beside the held-out ones that training never
showed: a head that only fails on unseen combinations would be a compositional failure, one that fails on both is
not. Prints a table, writes bench/results/matching.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train_features(model, corpus: Path, clips: int, batch_size: int = 32) -> dict:
    """Frozen encoders' outputs for the first ``clips`` training clips: what the VTM loss reads."""
    import torch

    from vtr.data.text import normalize_caption, tokenize
    from vtr.data.video import read_frames
    from vtr.models.registry import get_tokenizer

    rows = [json.loads(line) for line in (corpus / "train" / "captions.jsonl").read_text().splitlines()][:clips]
    pre, transform = model.preprocess, model.preprocess.eval_transform()
    tokens, frames = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            clip = torch.stack([transform(read_frames(corpus / "train" / "videos" / r["video"], pre.num_frames,
                                                      sample="middle")) for r in rows[i:i + batch_size]])
            out = model.encode_video(clip, return_tokens=True)
            tokens.append(out.tokens)
            frames.append(out.frame_embeds)
        batch = tokenize(get_tokenizer(model), [normalize_caption(r["caption"]) for r in rows], pre.max_txt_l)
        text = model.encode_text(batch["input_ids"], batch["attention_mask"])
    return {"tokens": torch.cat(tokens), "frames": torch.cat(frames), "hidden": text.hidden,
            "text": text.embedding, "mask": batch["attention_mask"], "ids": batch["input_ids"]}


def seen_corpus(corpus: Path, n: int, out: Path) -> Path:
    """``out/heldout`` in the held-out split's layout (:func:`vtr.data.synthetic.write_heldout`), made of ``n`` of
    ``corpus``'s *training* combinations (seeded choice), each rendered afresh: another seed, so no clip is a
    training clip, only its combination is. :func:`vtr.eval.heldout.heldout_scores` then scores it as it scores the
    real held-out split. Written once; returns ``out``."""
    import numpy as np

    from vtr.data.synthetic import Combo, CorpusConfig, write_heldout

    info = json.loads((corpus / "corpus.json").read_text())
    rows = [json.loads(line) for line in (corpus / "train" / "captions.jsonl").read_text().splitlines()]
    train = sorted({Combo(r["colour"], r["shape"], r["count"], r["motion"]) for r in rows})  # the clips show
    if not 0 < n <= len(train):
        raise SystemExit(f"--seen {n}: the corpus's training clips show {len(train)} combinations")
    marker = out / "seen.json"
    want = {"corpus": str(corpus.resolve()), "seed": info["seed"], "n": n}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return out
    rng = np.random.default_rng([info["seed"], n, 7])
    pick = [train[i] for i in sorted(rng.choice(len(train), n, replace=False))]
    write_heldout(out / "heldout", CorpusConfig(**info["config"]), pick, seed=info["seed"] + 1000)
    marker.write_text(json.dumps(want) + "\n")
    return out


def fresh_fusion(model, config: str):
    """``model`` with its fusion layers and ITM head as pretraining starts them (built from ``config``)."""
    from pretrain.config import load_config
    from pretrain.train import build_model

    fresh = build_model(load_config(config, overrides={}))
    first = model.cfg.text.fusion_layer
    keep = {k: v for k, v in model.state_dict().items()
            if not k.startswith("itm_head.")
            and not (k.startswith("text_encoder.encoder.layer.") and int(k.split(".")[3]) >= first)}
    missing = fresh.load_state_dict(keep, strict=False)
    if missing.unexpected_keys:
        raise SystemExit(f"{config} builds another architecture than the model: {missing.unexpected_keys[:3]}")
    return fresh


def listwise_loss(model, f: dict, idx, k: int):
    """The ranking stage's loss (``pretrain.train.Ranker``) on cached features: each text against its video and the
    k-1 videos ITC ranks highest among the batch's others, each video against its k-1 hardest texts
    (``vtr.losses.ranking_pairs`` / ``ranking_loss``), each distinct pair through the fusion layers once."""
    import torch

    from vtr import losses as L

    with torch.no_grad():
        sim_v2t, _ = L.get_sim(f["frames"][idx], f["text"][idx], model.temp.detach())
        pairs = L.ranking_pairs(sim_v2t, k, L.caption_ids(f["ids"][idx], f["mask"][idx]))
    cls = model.fusion_cls_pairs(f["hidden"][idx], f["mask"][idx], f["tokens"][idx], pairs["text_idx"],
                                 pairs["video_idx"])
    return L.ranking_loss(model.itm_head(cls), pairs)[0]


def trial(model, f: dict, hard: bool, steps: int, lr: float, batch: int, seed: int = 0, objective: str = "vtm",
          k: int = 4, bf16: bool = False) -> list[float]:
    """The fusion layers and ITM head trained on ``f`` for ``steps`` steps; ``bf16``: each step's forward under CPU
    bf16 autocast (the weights and AdamW stay float32). Returns the loss of every step.

    The autocast region is entered step by step, as ``pretrain.train`` does: autocast keeps its bf16 copies of the
    weights until the outermost region ends, so one region around the loop would train the float32 weights while
    every forward read their first copies."""
    import torch

    from pretrain.train import ranking_parameters
    from vtr import losses as L

    model.train()
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    opt = torch.optim.AdamW(ranking_parameters(model), lr=lr, weight_decay=0.0,
                            fused=True)
    g = torch.Generator().manual_seed(seed)
    n, losses = len(f["tokens"]), []
    for _ in range(steps):
        idx = torch.randperm(n, generator=g)[:batch]
        if objective == "listwise":
            with amp():
                loss = listwise_loss(model, f, idx, k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            continue
        with torch.no_grad():
            sim_v2t, sim_t2v = L.get_sim(f["frames"][idx], f["text"][idx], model.temp.detach())
            neg_v, neg_t = L.vtm_hard_negatives(sim_v2t, sim_t2v, L.caption_ids(f["ids"][idx], f["mask"][idx]),
                                                generator=g, hard=hard)
            vi, ti = L.vtm_pair_indices(neg_v, neg_t)
        with amp():
            cls = model.fusion_cls(f["hidden"][idx][ti], f["mask"][idx][ti], f["tokens"][idx][vi])
            loss = L.vtm_loss(model.itm_head(cls))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a bench/learning.py run folder (corpus/, recipe/model/)")
    parser.add_argument("--config", default=str(REPO / "pretrain" / "configs" / "demo.yaml"),
                        help="the pretraining config the model was trained with (builds the fresh fusion layers)")
    parser.add_argument("--clips", type=int, default=768, help="training clips whose features are sampled")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32, help="clips per step (3 pairs each)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--starts", nargs="+", default=["own", "fresh"], choices=["own", "fresh"])
    parser.add_argument("--negatives", nargs="+", default=["hard", "uniform"], choices=["hard", "uniform"])
    parser.add_argument("--objective", default="vtm", choices=["vtm", "listwise"],
                        help="vtm: UMT's two-way loss on 3 pairs a clip; listwise: each text against its video and "
                             "the k-1 videos ITC ranks highest (and each video against its k-1 hardest texts)")
    parser.add_argument("--k", type=int, default=4, help="candidates per query of --objective listwise")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="training of the fusion layers (bf16: CPU autocast; scoring stays fp32)")
    parser.add_argument("--seen", type=int, default=0, metavar="N",
                        help="also score each trial on fresh renders of N training combinations (written once to "
                             "RUN/seen_N)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "matching.json"))
    args = parser.parse_args(argv)

    import torch

    import vtr
    from pretrain.train import VTM_CHANCE
    from vtr.eval.heldout import HELDOUT_ITM_K, heldout_scores

    torch.manual_seed(0)
    run = Path(args.run)
    model = vtr.create_model(str(run / "recipe" / "model"))
    load = [round(os.getloadavg()[0], 2)]
    seen = seen_corpus(run / "corpus", args.seen, run / f"seen_{args.seen}") if args.seen else None
    f = train_features(model, run / "corpus", args.clips)
    rows = []
    for start in args.starts:
        for negatives in args.negatives:
            m = copy.deepcopy(model) if start == "own" else fresh_fusion(model, args.config)
            t0 = time.time()
            losses = trial(m, f, negatives == "hard", args.steps, args.lr, args.batch, objective=args.objective,
                           k=args.k, bf16=args.precision == "bf16")
            m.eval()
            s = heldout_scores(m, run / "corpus", itm=True)
            tail = losses[-max(1, args.steps // 10):]
            rows.append({"start": start, "negatives": negatives, "objective": args.objective, "steps": args.steps,
                         "precision": args.precision, "lr": args.lr, "clips": args.clips,
                         "train_s": round(time.time() - t0, 1),
                         "loss_first": round(sum(losses[:10]) / len(losses[:10]), 3),
                         "loss_last": round(sum(tail) / len(tail), 3),
                         "curve": [round(sum(losses[i:i + 10]) / len(losses[i:i + 10]), 3) for i in range(0, len(losses), 10)],
                         "itc_t2v_r1": s["t2v_r1"], "itc_v2t_r1": s["v2t_r1"],
                         "itm_t2v_r1": s["itm"]["t2v_r1"], "itm_v2t_r1": s["itm"]["v2t_r1"]})
            if seen:
                s = heldout_scores(m, seen, itm=True)
                rows[-1]["seen"] = {"itc_t2v_r1": s["t2v_r1"], "itc_v2t_r1": s["v2t_r1"],
                                    "itm_t2v_r1": s["itm"]["t2v_r1"], "itm_v2t_r1": s["itm"]["v2t_r1"]}
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    load.append(round(os.getloadavg()[0], 2))
    print(f"\n{args.objective} on frozen encoders of {run}: {args.clips} clips, batch {args.batch}, lr {args.lr:g}, "
          f"held-out ITM = ITC top {HELDOUT_ITM_K} re-ranked; chance VTM loss {VTM_CHANCE:.3f}; load {load[0]} -> {load[1]}")
    seen_head = " seen: ITC T2V / V2T R@1 | seen: ITM T2V / V2T R@1 |" if seen else ""
    head = "| fusion start | negatives | loss first 10 → last 10% | ITC T2V / V2T R@1 | ITM T2V / V2T R@1 |"
    print(head + seen_head)
    print("|---|---|---|---|---|" + ("---|---|" if seen else ""))
    for r in rows:
        cells = [r] + ([r["seen"]] if seen else [])
        print(f"| {r['start']} | {r['negatives']} | {r['loss_first']:.3f} → {r['loss_last']:.3f} | "
              + " | ".join(f"{c['itc_t2v_r1']:.1f} / {c['itc_v2t_r1']:.1f} | {c['itm_t2v_r1']:.1f} / "
                           f"{c['itm_v2t_r1']:.1f}" for c in cells) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"run": str(run), "clips": args.clips, "batch": args.batch, "lr": args.lr,
                                          "itm_k": HELDOUT_ITM_K, "vtm_chance": VTM_CHANCE, "load_avg_1m": load,
                                          "seen": str(seen) if seen else None,
                                          "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
