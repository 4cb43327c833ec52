"""The matching head's re-ranking cost, five ways side by side in one process, call by call alternated:

1. pair by pair through every row of the fusion layers (the path before any saving below);
2. what pairs share computed once (each video's keys and values projected once per fusion layer, the first fusion
   layer's self-attention once per text), the keys and values then gathered for every pair;
3. as 2, with the queries of the pairs that read one video stacked into one attention call instead of that gather
   (``BertSelfAttention.group_queries``);
4. as 3, with the last fusion layer computing the [CLS] row alone, the only row the head reads (a [CLS]-pooled
   model, the release);
5. as 4, without the padding columns no caption of the batch uses (``vtr.models.bert.trim_padding``): what
   ``itm_score_pairs`` does. The batch's captions fill half the model's length.

A batch is laid out as evaluation scores it: the ITC top-k pairs sorted by video, so a batch of ``--batch`` pairs
holds ``--videos`` videos. The release architecture (VideoMamba-M + BERT-base fusion, 8×224²: 1,569 video tokens
of width 576, 32 text tokens) with random weights; the video tokens are random too (only their shape matters)::

    python -m bench.itm_pairs                        # release size, fp32 and bf16, batch 32 over 1 and 4 videos
    python -m bench.itm_pairs --model vtr_demo_minilm --videos 1 8 32
    python -m bench.itm_pairs --train                # the ranking stage's step (pretrain.train.ranking_stage)

``--train``: one training step's fusion forward and backward over the pairs of ``vtr.losses.ranking_pairs``
(a batch of ``--batch`` clips, ``--k`` candidates, text queries alone and both directions) on the demo model
(``--model vtr_demo_minilm``), in bf16 autocast: pair by pair with dropout (what ``bench.matching`` did),
shared once with dropout, and shared once without dropout through PyTorch's math attention (the stage's way).

Prints a table, writes ``bench/results/itm_pairs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "itm_pairs.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="videomamba_middle_bert", help="registry architecture")
    parser.add_argument("--batch", type=int, default=32, help="pairs per call (evaluation's itm_batch_size)")
    parser.add_argument("--videos", type=int, nargs="+", default=[1, 4], help="distinct videos in a batch")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train", action="store_true", help="the ranking stage's training step instead")
    parser.add_argument("--k", type=int, default=4, help="--train: candidates per query")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.train:
        return train_step(args)

    import torch

    import vtr
    from bench.encoder import _alternate
    from vtr.eval.encode import bf16_autocast
    from vtr.models.bert import BertSelfAttention

    torch.manual_seed(0)
    model = vtr.create_model(args.model).eval()
    pre, text = model.preprocess, model.cfg.text
    frames, grid = pre.num_frames, pre.img_size // model.cfg.vision.patch_size
    k = 1 + frames * grid * grid
    length = pre.max_txt_l
    load = [round(os.getloadavg()[0], 2)]
    rows = []
    for dtype in args.dtypes.split(","):
        for nv in args.videos:
            videos = torch.randn(nv, k, text.encoder_width)
            hidden = torch.randn(args.batch, length, text.hidden_size)
            mask = torch.ones(args.batch, length, dtype=torch.long)
            mask[:, length // 2:] = 0  # captions shorter than the model reads
            ti = torch.arange(args.batch)  # each pair its own text: the v2t lists of a video
            vi = torch.arange(args.batch) * nv // args.batch

            def head(fused, m):  # every row computed, pooled as the model pools
                return model.itm_head(model._pool_text(fused, m))[:, 1]

            def single():
                with torch.no_grad(), bf16_autocast(torch.device("cpu"), dtype == "bf16"):
                    return head(model.text_encoder(None, mask[ti], mode="fusion", hidden_states=hidden[ti],
                                                   encoder_hidden_states=videos[vi]), mask[ti])

            def gathered():
                BertSelfAttention.group_queries = False
                try:
                    with torch.no_grad(), bf16_autocast(torch.device("cpu"), dtype == "bf16"):
                        return head(model.text_encoder.fuse_pairs(hidden, mask, videos, ti, vi), mask[ti])
                finally:
                    BertSelfAttention.group_queries = True

            def paired():
                with torch.no_grad(), bf16_autocast(torch.device("cpu"), dtype == "bf16"):
                    return head(model.text_encoder.fuse_pairs(hidden, mask, videos, ti, vi), mask[ti])

            def cls_only():
                cls = model.cfg.text_pooling == "cls"
                with torch.no_grad(), bf16_autocast(torch.device("cpu"), dtype == "bf16"):
                    return head(model.text_encoder.fuse_pairs(hidden, mask, videos, ti, vi, cls_only=cls), mask[ti])

            def trimmed():
                with torch.no_grad(), bf16_autocast(torch.device("cpu"), dtype == "bf16"):
                    return model.itm_score_pairs(hidden, mask, videos, ti, vi)

            ref = single().float()
            ways = {"pair by pair": single, "gathered": gathered, "shared once": paired, "cls only": cls_only,
                    "trimmed": trimmed}
            diff = max((f().float() - ref).abs().max().item() for f in ways.values())
            wall, _ = _alternate(ways, args.repeats)
            a, g, b, c, t = (statistics.median(wall[n]) for n in ways)
            rows.append({"dtype": dtype, "videos": nv, "batch": args.batch, "video_tokens": k,
                         "text_tokens": length, "real_text_tokens": length // 2,
                         "pooling": model.cfg.text_pooling, "pair_by_pair_s": round(a, 4),
                         "gathered_s": round(g, 4), "shared_once_s": round(b, 4), "cls_only_s": round(c, 4),
                         "trimmed_s": round(t, 4), "speedup_gathered": round(a / g, 2), "speedup": round(a / b, 2),
                         "speedup_cls_only": round(a / c, 2), "speedup_trimmed": round(a / t, 2),
                         "max_abs_diff": diff})
            print(json.dumps(rows[-1]), flush=True)
    load.append(round(os.getloadavg()[0], 2))
    print(f"\n{args.model} ({model.cfg.text_pooling} pooling: [CLS] alone only under cls): {args.batch} pairs a "
          f"call, {k} video tokens, {length} text tokens of which {length // 2} real; median of {args.repeats} "
          f"alternated calls; {os.cpu_count()} CPUs, load {load[0]} -> {load[1]}")
    print("| dtype | videos in the batch | 1. pair by pair | 2. shared, keys gathered per pair | 3. queries grouped "
          "by video | 4. + [CLS] alone | 5. + padding trimmed | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['videos']} | {r['pair_by_pair_s']:.3f} s | {r['gathered_s']:.3f} s "
              f"({r['speedup_gathered']:.2f}×) | {r['shared_once_s']:.3f} s ({r['speedup']:.2f}×) | "
              f"{r['cls_only_s']:.3f} s ({r['speedup_cls_only']:.2f}×) | {r['trimmed_s']:.3f} s "
              f"({r['speedup_trimmed']:.2f}×) | {r['max_abs_diff']:.1e} |")
    write_results(args.out, {"model": args.model, "load_avg_1m": load, "rows": rows})
    return 0


def train_step(args) -> int:
    """``--train``: the ranking stage's fusion forward + backward, three ways, alternated call by call."""
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import vtr
    from bench.encoder import _alternate
    from vtr import losses as L

    torch.manual_seed(0)
    model = vtr.create_model(args.model if args.model != "videomamba_middle_bert" else "vtr_demo_minilm")
    pre, text = model.preprocess, model.cfg.text
    grid = pre.img_size // model.cfg.vision.patch_size
    n, length = args.batch, pre.max_txt_l
    videos = torch.randn(n, 1 + pre.num_frames * grid * grid, text.encoder_width)
    hidden = torch.randn(n, length, text.hidden_size)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[:, length * 3 // 4:] = 0
    load = [round(os.getloadavg()[0], 2)]
    rows = []
    for v2t in (False, True):
        pairs = L.ranking_pairs(torch.randn(n, n), args.k, v2t=v2t)
        ti, vi = pairs["text_idx"], pairs["video_idx"]

        def step(shared: bool, dropout: bool, math_attention: bool):
            model.train(dropout)
            kernel = sdpa_kernel(SDPBackend.MATH) if math_attention else contextlib.nullcontext()
            with kernel, torch.autocast("cpu", dtype=torch.bfloat16):
                cls = (model.fusion_cls_pairs(hidden, mask, videos, ti, vi) if shared
                       else model.fusion_cls(hidden[ti], mask[ti], videos[vi]))
                loss = L.ranking_loss(model.itm_head(cls), pairs)[0]
            loss.backward()
            model.zero_grad(set_to_none=True)

        variants = {"pair by pair, dropout": lambda: step(False, True, False),
                    "shared once, dropout": lambda: step(True, True, False),
                    "shared once, no dropout, math attention": lambda: step(True, False, True)}
        wall, _ = _alternate(variants, 1)  # warm-up
        wall, _ = _alternate(variants, args.repeats)
        for name, times in wall.items():
            rows.append({"directions": "t2v + v2t" if v2t else "t2v", "pairs": len(ti), "variant": name,
                         "step_s": round(statistics.median(times), 4)})
            print(json.dumps(rows[-1]), flush=True)
    load.append(round(os.getloadavg()[0], 2))
    print(f"\nranking stage fusion step, {model.architecture}: {n} clips, k {args.k}, bf16 autocast; median of "
          f"{args.repeats} alternated calls; {os.cpu_count()} CPUs, load {load[0]} -> {load[1]}")
    print("| directions | distinct pairs | variant | s a step | against pair by pair |")
    print("|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["directions"] == r["directions"] and b["variant"].startswith("pair"))
        print(f"| {r['directions']} | {r['pairs']} | {r['variant']} | {r['step_s']:.3f} | "
              f"{base['step_s'] / r['step_s']:.2f}× |")
    write_results(args.out, {"model": model.architecture, "mode": "train", "load_avg_1m": load, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
