"""Pretraining throughput on CPU: samples/s of the shard loader alone, of the train step alone (forward, backward,
AdamW on pre-loaded batches) and of both together, with the tiny CPU config and its default worker count.

    python bench/pretrain.py [--clips 64] [--steps 20]
    python bench/pretrain.py --config pretrain/configs/demo.yaml     # the demo's model (MiniLM text encoder)

Target (issue 5): the loader must reach >= 2x the step's rate, so data loading never starves the model.
The loader and loader + step rows are measured twice: decoding every clip, and with every clip already in the
decoded-clip cache (``decode_cache_mb``: what the epochs after the first read on a corpus of short clips).
Also AdamW's step alone, tensor by tensor (torch's CPU default) against the fused kernel the trainer uses,
alternated on the same gradients. Prints a table and writes bench/results/pretrain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "pretrain" / "configs" / "tiny_cpu.yaml"))
    parser.add_argument("--clips", type=int, default=64, help="synthetic clips written into shards")
    parser.add_argument("--frames", type=int, default=32, help="frames per synthetic clip")
    parser.add_argument("--steps", type=int, default=20, help="measured steps (after 3 warm-up steps)")
    parser.add_argument("--cache-mb", type=float, default=512,
                        help="decode_cache_mb of the cached rows (the clips decoded take ~75 MB at the defaults)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "pretrain.json"))
    args = parser.parse_args()
    if args.cache_mb <= 0:
        parser.error("--cache-mb must be > 0 (the cached rows wait until the cache has served every clip)")

    import logging

    logging.basicConfig(level=logging.ERROR)
    from pretrain.config import load_config
    from pretrain.train import Pretrainer, build_model, param_groups
    from tests.pretrain.synthetic import colour_shards
    from vtr.data.shards import make_train_loader
    from vtr.models.registry import get_tokenizer

    tmp = tempfile.mkdtemp(prefix="vtr_bench_")
    shards = colour_shards(tmp, num_clips=args.clips, per_shard=16, num_frames=args.frames, height=96, width=128)
    cfg = load_config(args.config, overrides={"train_shards": str(shards), "out_dir": tmp})
    model = build_model(cfg)
    tokenizer = get_tokenizer(model)
    pre = model.preprocess
    warm = 3

    def loader(cache_mb=0.0):
        return make_train_loader(cfg.train_shards, tokenizer, cfg.batch_size, steps_per_epoch=10**9,
                                 num_frames=pre.num_frames, img_size=pre.img_size, max_txt_l=pre.max_txt_l,
                                 num_workers=cfg.num_workers, shards_per_chunk=cfg.shards_per_chunk,
                                 shuffle_buffer=cfg.shuffle_buffer, mean=pre.mean, std=pre.std,
                                 decode_cache_mb=cache_mb)

    def warm_cache_iterator():
        """A loader with the decoded-clip cache, run until every clip has been read from memory at least once."""
        ld = loader(args.cache_mb)
        it = iter(ld)
        workers = max(1, cfg.num_workers)
        while len(ld.cache) < workers or any(c[1] < args.clips for c in ld.cache.values()):  # misses: decodes
            next(it)
        for _ in range(2 * warm):
            next(it)
        return ld, it

    # 1. loader alone
    it = iter(loader())
    for _ in range(warm):
        next(it)
    t = time.perf_counter()
    batches = [next(it) for _ in range(args.steps)]
    loader_rate = args.steps * cfg.batch_size / (time.perf_counter() - t)
    del it

    # 1b. loader alone, every clip already in the decoded-clip cache (epochs after the first)
    cached, it = warm_cache_iterator()
    t = time.perf_counter()
    for _ in range(args.steps):
        next(it)
    cached_rate = args.steps * cfg.batch_size / (time.perf_counter() - t)
    del it, cached

    # 2. train step alone, on pre-loaded batches
    trainer = Pretrainer(model, tokenizer, cfg, 0, 1)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)

    def step(b, i):
        gen = torch.Generator().manual_seed(i)
        model.clamp_temperature()
        out = trainer(b["frames"], b["input_ids"], b["attention_mask"], gen)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warm):
        step(batches[i], i)
    t = time.perf_counter()
    for i, b in enumerate(batches):
        step(b, i)
    step_rate = args.steps * cfg.batch_size / (time.perf_counter() - t)

    # 2b. the optimizer step alone: per-tensor loop (CPU default) vs one fused kernel, alternated
    optimizers = {"per-tensor": torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, foreach=False),
                  "fused": torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)}
    out = trainer(batches[0]["frames"], batches[0]["input_ids"], batches[0]["attention_mask"],
                  torch.Generator().manual_seed(0))
    out["loss"].backward()
    opt_ms = {name: [] for name in optimizers}
    for _ in range(max(5, args.steps // 2)):
        for name, o in optimizers.items():
            t = time.perf_counter()
            o.step()
            opt_ms[name].append(1000 * (time.perf_counter() - t))
    opt_ms = {name: round(sorted(v)[len(v) // 2], 1) for name, v in opt_ms.items()}
    opt.zero_grad(set_to_none=True)

    def train_rate(it) -> float:
        """samples/s of the training loop's view: batches from ``it``, each stepped as it arrives."""
        for i in range(warm):
            step(next(it), i)
        t = time.perf_counter()
        for i, b in enumerate(islice(it, args.steps)):
            step(b, i)
        return args.steps * cfg.batch_size / (time.perf_counter() - t)

    # 3. both: the training loop's view; 3b. the same with the cache warm
    both_rate = train_rate(iter(loader()))
    cached, it = warm_cache_iterator()
    both_cached_rate = train_rate(it)
    del it, cached

    result = {
        "config": os.path.relpath(args.config, REPO), "model": cfg.model, "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers, "num_frames": pre.num_frames, "img_size": pre.img_size,
        "clip": f"{args.frames} frames 128x96 h264", "steps": args.steps,
        "loader_samples_per_s": round(loader_rate, 1), "step_samples_per_s": round(step_rate, 1),
        "end_to_end_samples_per_s": round(both_rate, 1), "loader_over_step": round(loader_rate / step_rate, 2),
        "decode_cache_mb": args.cache_mb, "loader_cached_samples_per_s": round(cached_rate, 1),
        "end_to_end_cached_samples_per_s": round(both_cached_rate, 1),
        "target_met": loader_rate >= 2 * step_rate,
        "adamw_step_median_ms": opt_ms, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }
    print(f"| {'measure':28s} | samples/s |")
    print(f"|{'-' * 30}|-----------|")
    print(f"| {'loader alone':28s} | {loader_rate:9.1f} |")
    print(f"| {'train step alone':28s} | {step_rate:9.1f} |")
    print(f"| {'loader + step':28s} | {both_rate:9.1f} |")
    print(f"| {'loader, decode cache warm':28s} | {cached_rate:9.1f} |")
    print(f"| {'loader (cache warm) + step':28s} | {both_cached_rate:9.1f} |")
    for name, ms in opt_ms.items():
        print(f"| {'AdamW step, ' + name + ' (ms)':28s} | {ms:9.1f} |")
    print(f"loader / step = {loader_rate / step_rate:.2f} (target >= 2): {'met' if result['target_met'] else 'NOT met'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
