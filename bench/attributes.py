"""What does the video encoder see? A linear probe per caption attribute, and what ITC's held-out misses get wrong.

For a model trained on the synthetic corpus (:mod:`vtr.data.synthetic`), each attribute of a clip (colour, shape,
count, motion) is predicted by a linear probe trained on the frozen features of the training clips and tested on
the held-out clips, whose attribute combinations training never saw. Three video views: the ITC embedding (the
mean of the unit frame embeddings, what retrieval ranks by), and the mean and the max over the encoder's tokens
(what the matching head's cross-attention reads); the caption's ITC embedding as the text side's control. Then
each held-out caption that ITC ranks wrong (T2V, top 1) is put down to the attributes in which the video it
ranked first differs from its own.

An attribute the tokens do not carry cannot be told apart by any head that reads them: the matching head can
re-rank better than ITC only where the tokens hold more than the pooled embedding uses::

    python -m bench.attributes --run runs/demo            # a vtr demo folder (corpus/, model/)
    python -m bench.attributes --run W/default/seed0      # a bench/learning.py run (corpus/, recipe/model/)

Prints a table, writes bench/results/attributes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ATTRIBUTES = ("colour", "shape", "count", "motion")


def probe(x, y, x_test, y_test, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> tuple[float, float]:
    """Accuracy (%) on (train, test) of a multinomial logistic regression fitted on ``x`` [N, D] → ``y`` [N]
    (full-batch Adam, features standardised with the training statistics, a little weight decay)."""
    import torch
    import torch.nn.functional as F

    x, x_test = x.float(), x_test.float()
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mean) / std, (x_test - mean) / std
    classes = int(max(y.max(), y_test.max())) + 1
    torch.manual_seed(seed)
    linear = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(linear.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(linear(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = lambda a, b: round(float((linear(a).argmax(1) == b).float().mean()) * 100, 1)  # noqa: E731
        return acc(x, y), acc(x_test, y_test)


def views(video, tokens, text) -> dict:
    """The features probed: name -> [N, D]."""
    return {"video ITC embedding": video, "video tokens, mean": tokens.float().mean(1),
            "video tokens, max": tokens.float().max(1).values, "caption ITC embedding": text}


def miss_attributes(itc, entries: list[dict], attributes=ATTRIBUTES) -> Counter:
    """For each text query (column of ``itc`` [Nv, Nt], text t belongs to video t) whose top-ranked video is not
    its own: the attributes in which that video differs from its own, joined by "+" ("shape", "colour+count")."""
    top = itc.argmax(0)
    misses = Counter()
    for t, v in enumerate(top.tolist()):
        if v != t:
            misses["+".join(a for a in attributes if entries[v][a] != entries[t][a]) or "none"] += 1
    return misses


def measure(model, corpus: Path, clips: int = 4000, steps: int = 300) -> dict:
    """Probe accuracies per attribute and view, the held-out majority class's share per attribute, and ITC's
    held-out T2V misses by attribute (with the R@1 they leave)."""
    import torch

    from bench.matching import train_features
    from vtr.data.synthetic import read_heldout
    from vtr.eval.heldout import heldout_features

    rows = [json.loads(line) for line in (corpus / "train" / "captions.jsonl").read_text().splitlines()][:clips]
    held = read_heldout(corpus)
    train = train_features(model, corpus, clips)
    test = heldout_features(model, corpus, with_itm_inputs=True)
    train_views = views(train["frames"].mean(1), train["tokens"], train["text"])
    test_views = views(test["video"], test["tokens"], test["text"])
    probes, chance = {}, {}
    for attr in ATTRIBUTES:
        values = sorted({str(r[attr]) for r in rows} | {str(e[attr]) for e in held})
        y = torch.tensor([values.index(str(r[attr])) for r in rows])
        y_test = torch.tensor([values.index(str(e[attr])) for e in held])
        chance[attr] = round(100.0 * max(Counter(y_test.tolist()).values()) / len(y_test), 1)
        probes[attr] = {name: probe(train_views[name], y, test_views[name], y_test, steps=steps)
                        for name in train_views}
    itc = (test["video"] @ test["text"].t()).float()
    misses = miss_attributes(itc, held)
    return {"clips": len(rows), "heldout": len(held), "probes": probes, "majority_class": chance,
            "t2v_misses": dict(misses.most_common()),
            "t2v_r1": round(100.0 * (1 - sum(misses.values()) / len(held)), 1)}


def model_folder(run: Path) -> Path:
    """``model/`` (a vtr demo folder) or ``recipe/model/`` (a bench/learning.py run)."""
    for sub in ("model", "recipe/model"):
        if (run / sub / "config.json").exists():
            return run / sub
    raise SystemExit(f"{run}: no model/ or recipe/model/ folder with a config.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a vtr demo or bench/learning.py run folder (corpus/ inside)")
    parser.add_argument("--clips", type=int, default=4000, help="training clips the probes are fitted on")
    parser.add_argument("--steps", type=int, default=300, help="full-batch optimiser steps of each probe")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "attributes.json"))
    args = parser.parse_args(argv)

    import vtr
    from bench import write_results

    run = Path(args.run)
    if not (run / "corpus" / "train" / "captions.jsonl").exists():
        raise SystemExit(f"{run}: no corpus/train/captions.jsonl (a synthetic corpus from vtr.data.synthetic)")
    model = vtr.create_model(str(model_folder(run)))
    load, t0 = [round(os.getloadavg()[0], 2)], time.time()
    result = measure(model, run / "corpus", args.clips, args.steps)
    load.append(round(os.getloadavg()[0], 2))
    result.update(run=str(run), wall_s=round(time.time() - t0, 1), load_avg_1m=load)
    names = list(next(iter(result["probes"].values())))
    print(f"\nlinear probes on {run}: fitted on {result['clips']} training clips, tested on {result['heldout']} "
          f"held-out clips (train / held-out accuracy, %); load {load[0]} -> {load[1]}")
    print("| attribute | majority class (held-out) | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for attr, row in result["probes"].items():
        cells = " | ".join(f"{a:.1f} / {b:.1f}" for a, b in row.values())
        print(f"| {attr} | {result['majority_class'][attr]:.1f} | {cells} |")
    print(f"\nITC held-out T2V R@1 {result['t2v_r1']:.1f}; its misses by the attributes the top video gets wrong:")
    print("| differs in | misses |\n|---|---:|")
    for what, n in result["t2v_misses"].items():
        print(f"| {what} | {n} |")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
