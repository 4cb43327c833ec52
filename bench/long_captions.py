"""Captions longer than the model reads: the demo config on a corpus whose motion words come last, past 12 tokens.

Copies a synthetic corpus (``vtr.data.synthetic``: shards and held-out set) with every caption rewritten the way
people write them, the motion after a phrase ("a blue circle, seen against a dark and noisy background, moves
down": 14 tokens once normalised), then trains the demo config on it twice, side by side: with the model's own
``max_txt_l`` of 12 set in the config (the captions lose their motion words) and with ``max_txt_l: 0`` (fitted to
the captions, :func:`pretrain.train.fit_text_length`). Prints the held-out scores of both::

    python -m bench.long_captions --corpus runs/demo/corpus [--steps 200]

Writes ``bench/results/long_captions.json``; works in ``runs/bench_long_captions``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "long_captions.json"
PHRASE = ", seen against a dark and noisy background,"


def lengthen(caption: str) -> str:
    """``<count> <colour> <shape> <motion>`` -> the same with ``PHRASE`` before the motion."""
    from vtr.data.synthetic import MOTIONS

    for verb in sorted((v for pair in MOTIONS.values() for v in pair), key=len, reverse=True):
        if caption.endswith(" " + verb):
            return f"{caption[: -len(verb) - 1]}{PHRASE} {verb}"
    raise ValueError(f"not a synthetic caption: {caption!r}")


def lengthen_corpus(src: Path, dst: Path) -> Path:
    """``dst``: ``src``'s shards and held-out set with every caption lengthened (videos unchanged)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("shards", "long", "train"))
    (dst / "shards").mkdir()
    for shard in sorted((src / "shards").glob("*.tar")):
        with tarfile.open(shard) as tin, tarfile.open(dst / "shards" / shard.name, "w") as tout:
            for member in tin:
                data = tin.extractfile(member).read()
                if member.name.endswith(".txt"):
                    data = lengthen(data.decode()).encode()
                elif member.name.endswith(".json"):
                    meta = json.loads(data)
                    data = json.dumps({**meta, "caption": lengthen(meta["caption"])}).encode()
                info = tarfile.TarInfo(member.name)
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
        shutil.copy(shard.with_name(shard.stem + "_stats.json"), dst / "shards")
    annotations = dst / "heldout" / "annotations.json"
    rows = json.loads(annotations.read_text())
    for r in rows:
        r["caption"], r["twin_caption"] = lengthen(r["caption"]), lengthen(r["twin_caption"])
    annotations.write_text(json.dumps(rows))
    return dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a vtr.data.synthetic corpus (shards/ and heldout/)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "pretrain" / "configs" / "demo.yaml"))
    p.add_argument("--work", default="runs/bench_long_captions")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)

    import vtr
    from pretrain.config import load_config
    from pretrain.train import train
    from vtr.eval.heldout import heldout_scores

    work = Path(a.work)
    corpus = lengthen_corpus(Path(a.corpus), work / "corpus")
    rows = []
    for name, length in (("max_txt_l 12, set in the config", 12), ("max_txt_l 0, fitted", 0)):
        out = work / ("fixed" if length else "fitted")
        shutil.rmtree(out, ignore_errors=True)
        cfg = load_config(a.config, overrides={"train_shards": str(corpus / "shards"), "out_dir": str(out),
                                               "max_steps": a.steps, "max_txt_l": length, "ckpt_every": 0})
        t0, load = time.time(), os.getloadavg()[0]
        train(cfg)
        model = vtr.create_model(str(out / "model"))
        s = heldout_scores(model, corpus)
        rows.append({"run": name, "max_txt_l": model.preprocess.max_txt_l, "t2v_r1": s["t2v_r1"],
                     "v2t_r1": s["v2t_r1"], "temporal_pair_acc": s["temporal_pair_acc"], "chance_r1": s["chance_r1"],
                     "train_s": round(time.time() - t0, 1), "load_before": round(load, 2)})
    print(f"\n{a.steps} steps of {Path(a.config).name} on {a.corpus} with captions like "
          f"{lengthen('a blue circle moves down')!r}")
    print("| run | model reads | T2V R@1 | V2T R@1 | temporal pairs | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['max_txt_l']} tokens | {r['t2v_r1']:.1f} | {r['v2t_r1']:.1f} | "
              f"{r['temporal_pair_acc']:.1f}% | {r['train_s']:.0f} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"corpus": a.corpus, "steps": a.steps, "rows": rows}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
