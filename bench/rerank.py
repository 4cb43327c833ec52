"""What a re-ranked search costs: the windows ``VideoIndex._rerank`` decodes again, encodes with their tokens and
scores with the matching head, ``--batches`` windows per encoder call, side by side in one process, alternated
call by call. Release architecture (VideoMamba-M 8×224² + BERT-base fusion) with random weights over generated
720p footage (``bench.index_throughput.make_footage``), indexed first with the same model::

    python -m bench.rerank                          # 12 windows, batches 1 and 4, fp32
    python -m bench.rerank --model vtr_test --seconds 20 --windows 6 --repeats 1     # seconds, for a check
    python -m bench.rerank --device cuda --batches 1 4 8                            # on a GPU (bench/gpu.sh)

Prints a table, writes ``bench/results/rerank.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "rerank.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="videomamba_middle_bert", help="registry architecture (random weights)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated footage")
    parser.add_argument("--windows", type=int, default=12, help="windows re-ranked per call")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="windows per encoder call")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device of the model (decoding stays on the CPU)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import vtr
    from bench.encoder import _alternate
    from bench.index_throughput import make_footage
    from index.build import build_index
    from index.search import VideoIndex
    from vtr.models.registry import MINILM_TOKENIZER

    torch.manual_seed(0)
    model = vtr.create_model(args.model).to(args.device).eval()
    # The query's words through bert-base-uncased's vocabulary as MiniLM's package ships it: no download.
    model.preprocess = dataclasses.replace(model.preprocess, tokenizer=MINILM_TOKENIZER)
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="vtr-bench-rerank-") as tmp:
        video = make_footage(Path(tmp) / "videos" / "footage.mp4", args.seconds, 1280, 720)
        t = time.perf_counter()
        build_index([str(video.parent)], str(Path(tmp) / "idx"), model=model, workers=1, progress=False,
                    window_policy="stride", precision=args.precision, thumbnails=False, device=args.device)
        build_s = time.perf_counter() - t
        with VideoIndex(str(Path(tmp) / "idx"), model=model, device=args.device, gpu=False,
                         precision=args.precision) as vi:
            ids = np.asarray(vi.catalog.window_ids()[:args.windows], np.int64)
            if len(ids) < args.windows:
                raise SystemExit(f"the footage has {len(ids)} windows; ask for fewer or give --seconds more")
            text = vi.encode_text("a red car drives along the coast")[1]
            results = {b: vi._rerank(text, ids, batch=b) for b in args.batches}
            first = results[args.batches[0]][1]
            diff = max(float(np.abs(r[1] - first).max()) for r in results.values())
            calls = {f"batch {b}": (lambda b=b: vi._rerank(text, ids, batch=b)) for b in args.batches}
            wall, _ = _alternate(calls, args.repeats)
    load.append(round(os.getloadavg()[0], 2))
    rows = []
    for b in args.batches:
        s = statistics.median(wall[f"batch {b}"])
        rows.append({"batch": b, "call_s": round(s, 3), "s_per_window": round(s / args.windows, 3)})
    base = rows[0]["call_s"]
    for r in rows:
        r["speedup"] = round(base / r["call_s"], 2)
    print(f"\n{args.model}, {args.precision}: {args.windows} windows of 720p footage re-ranked per call (decode, "
          f"encode with tokens, match score); median of {args.repeats} alternated calls; index built in "
          f"{build_s:.0f} s; {args.device}, {os.cpu_count()} CPUs, load {load[0]} -> {load[1]}; "
          f"max score diff {diff:.1e}")
    print("| windows per encoder call | s a call | s a window | against the first |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['call_s']:.2f} | {r['s_per_window']:.3f} | {r['speedup']:.2f}× |")
    write_results(args.out, {"model": args.model, "device": args.device, "precision": args.precision,
                             "windows": args.windows, "repeats": args.repeats, "load_avg_1m": load,
                             "max_score_diff": diff, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
