"""Long windows with per-frame rows: could fewer, longer windows keep the demo's moment hit rate?

Encoding a window costs the same whatever its length, so an index of 16 s windows (8 frames at 0.5 fps, the
release's own training regime) needs a quarter of the encoder runs of 8 s windows every 4 s. Moments would then
come from the model's per-frame embeddings: each sampled frame becomes a row spanning its share of the window,
with the vector ``alpha · window mean + (1 - alpha) · frame embedding`` (one inner product scores both). This bench
measures that on the demo's long videos with a finished demo model, beside the demo's own stride windows: top-1
hit rate (as ``demo.run.run_index`` counts it) and the mean length of the top segment (a whole long window
"hits" more easily, so both are reported)::

    python -m bench.frame_rows --run runs/demo [--multiples 2,4,8] [--alphas 0,0.5]

Windows are ``multiple ×`` the demo's clip length, without overlap. Prints a table, writes
``bench/results/frame_rows.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "frame_rows.json"


def embed_windows(index, video: Path, window_s: float, stride_s: float) -> list[tuple]:
    """[(Window, frame embeddings [T, E])] of ``video`` under stride windows, encoded as the index encodes."""
    import torch

    from index.windows import plan_windows, window_frame_indices
    from vtr.data.video import open_video

    pre, rows = index.preprocess, []
    with open_video(str(video)) as reader:
        clock = reader.clock()
        for w in plan_windows(clock.duration, window_s, stride_s):
            clip = reader.get_frames(window_frame_indices(w, clock, pre.num_frames)).permute(0, 3, 1, 2)
            with torch.inference_mode():
                fe = index.model.encode_video(pre.normalize(pre.resize(clip.contiguous())[None])).frame_embeds[0]
            rows.append((w, fe.float().numpy()))
    return rows


def top1(tables: dict, truth: list[dict], queries: list[str], q: np.ndarray, alpha: float | None) -> dict:
    """Hit rate and mean top-segment length; ``alpha`` None scores whole windows (their mean), else frame rows."""
    from index.search import merge_segments

    hits, lengths = 0, []
    for qi, query in enumerate(queries):
        best = None
        for t in truth:
            rows = []
            for j, (w, fe) in enumerate(tables[t["video"]]):
                mean = fe.mean(0)
                if alpha is None:
                    rows.append((j, w.start, w.end, float(mean @ q[qi])))
                    continue
                d = (w.end - w.start) / len(fe)
                for k, f in enumerate(fe):
                    rows.append((j * len(fe) + k, w.start + k * d, w.start + (k + 1) * d,
                                 float((alpha * mean + (1 - alpha) * f) @ q[qi])))
            for s, e, score, _ in merge_segments(rows):
                if best is None or score > best[3]:
                    best = (t, s, e, score)
        t, s, e, _ = best
        hits += any(c["caption"] == query and s < c["end"] and e > c["start"] for c in t["clips"])
        lengths.append(e - s)
    return {"top1_hit_rate": 100.0 * hits / len(queries), "mean_segment_s": float(np.mean(lengths))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished `vtr demo` run folder (corpus/ and index/)")
    p.add_argument("--multiples", default="2,4,8", help="window lengths, in clip lengths")
    p.add_argument("--alphas", default="0,0.25,0.5,0.75", help="weights of the window mean in a frame row")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)

    from index.search import VideoIndex

    run = Path(a.run)
    corpus = run / "corpus"
    if not (corpus / "corpus.json").is_file() or not (run / "index").is_dir():
        p.error(f"{run} is not a finished demo run (needs corpus/corpus.json and index/)")
    cfg = json.loads((corpus / "corpus.json").read_text())["config"]
    clip_s = cfg["num_frames"] / cfg["fps"]
    truth = [json.loads(x.read_text()) for x in sorted((corpus / "long").glob("*.json"))]
    queries = sorted({c["caption"] for t in truth for c in t["clips"]})
    rows = []
    with VideoIndex(str(run / "index")) as index:
        q = index.encode_text(queries)[0]

        def tables(window_s, stride_s):
            return {t["video"]: embed_windows(index, corpus / "long" / t["video"], window_s, stride_s) for t in truth}

        stride = tables(clip_s, clip_s / 2)
        rows.append({"layout": "stride (the demo's)", "window_s": clip_s, "rows": "windows",
                     "windows": sum(map(len, stride.values())), **top1(stride, truth, queries, q, None)})
        for m in [float(x) for x in a.multiples.split(",") if x]:
            long = tables(m * clip_s, m * clip_s)
            n = sum(map(len, long.values()))
            rows.append({"layout": f"long ×{m:g}", "window_s": m * clip_s, "rows": "windows", "windows": n,
                         **top1(long, truth, queries, q, None)})
            for alpha in [float(x) for x in a.alphas.split(",") if x]:
                rows.append({"layout": f"long ×{m:g}", "window_s": m * clip_s, "rows": f"frames, alpha {alpha:g}",
                             "windows": n, **top1(long, truth, queries, q, alpha)})
    print(f"\n{len(queries)} captions, clips of {clip_s:g} s, load {os.getloadavg()[0]:.1f}\n")
    print("| layout | window s | rows | windows | top-1 hit rate | mean top segment s |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layout']} | {r['window_s']:g} | {r['rows']} | {r['windows']} | {r['top1_hit_rate']:.1f}% | "
              f"{r['mean_segment_s']:.2f} |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": str(run), "clip_seconds": clip_s, "queries": len(queries), "rows": rows},
                              indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
