"""``vtr demo``: the whole pipeline offline in minutes, on a model vtr trains itself.

Stages, each printing what it does and how long it took, each skipped when its output exists (``--force`` redoes
them), so any stage can be re-run alone by deleting its output::

    corpus    synthetic moving-shapes clips (vtr.data.synthetic)        OUT/corpus/   shards, held-out split, long videos
    pretrain  the pretrain/ program with pretrain/configs/demo.yaml     OUT/pretrain/ (log, checkpoint) -> OUT/model/
    eval      `vtr eval` on the held-out combinations + temporal pairs  OUT/eval/, OUT/results.json
    index     `vtr index build` over the long videos + a search check   OUT/index/
    app       `vtr app --index OUT/index`                                (--no-app stops before it)

``OUT/model`` is a vtr model folder: ``vtr.create_model("runs/demo/model")``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from vtr.atomic import write_json_atomic
from vtr.errors import VtrError

logger = logging.getLogger(__name__)

DEMO_ARCHITECTURE = "vtr_demo_minilm"
#: --size -> (corpus size of vtr.data.synthetic.SIZES, pretraining config in pretrain/configs/)
DEMO_SIZES = {"default": ("default", "demo.yaml"), "tiny": ("tiny", "demo_tiny.yaml")}


# ------------------------------------------------------------------------------------------ held-out scoring
def heldout_features(model, corpus, shuffle_frames: bool = False, seed: int = 0, batch_size: int = 16,
                     with_itm_inputs: bool = False) -> dict:
    """Embeddings of the held-out split: ``video`` [Nv, E] (mean of unit frame embeddings, as ``similarity``),
    ``text`` [Nv, E] (captions), ``twin`` [Nv, E] (time-reversed twin captions); with ``with_itm_inputs`` also
    what the matching head reads: ``tokens`` [Nv, T*P, D] and the captions' ``text_hidden`` [Nv, L, H] and
    ``text_mask`` [Nv, L].

    shuffle_frames: feed each video's sampled frames in a seeded random order (the bag-of-frames control).
    """
    import numpy as np
    import torch

    from vtr.data.synthetic import read_heldout
    from vtr.data.text import normalize_caption, tokenize
    from vtr.data.video import read_frames
    from vtr.models.registry import get_tokenizer

    entries = read_heldout(corpus)
    videos_dir = Path(corpus) / "heldout" / "videos"
    pre, transform = model.preprocess, model.preprocess.eval_transform()
    tokenizer = get_tokenizer(model)
    rng = np.random.default_rng([seed, 99])
    model.eval()
    video, tokens = [], []
    with torch.no_grad():
        for i in range(0, len(entries), batch_size):
            clips = []
            for e in entries[i:i + batch_size]:
                frames = transform(read_frames(videos_dir / e["video"], pre.num_frames, sample="middle"))
                if shuffle_frames:
                    frames = frames[torch.from_numpy(rng.permutation(len(frames)))]
                clips.append(frames)
            out = model.encode_video(torch.stack(clips), return_tokens=with_itm_inputs)
            video.append(out.frame_embeds.mean(1))
            if with_itm_inputs:
                tokens.append(out.tokens)

        def encode(texts):
            batch = tokenize(tokenizer, [normalize_caption(t) for t in texts], pre.max_txt_l)
            return model.encode_text(batch["input_ids"], batch["attention_mask"])

        captions = encode([e["caption"] for e in entries])
        features = {"video": torch.cat(video), "text": captions.embedding,
                    "twin": encode([e["twin_caption"] for e in entries]).embedding}
        if with_itm_inputs:
            features.update(tokens=torch.cat(tokens), text_hidden=captions.hidden, text_mask=captions.attention_mask)
        return features


#: Candidates the matching head re-ranks in each direction for the held-out ITM row (UMT's k_test is 128 over
#: 1000 videos; the held-out split has about 70, where 128 would let ITM alone rank everything).
HELDOUT_ITM_K = 16


def heldout_scores(model, corpus, shuffle_frames: bool = False, seed: int = 0, itm: bool | None = None,
                   itm_k: int = HELDOUT_ITM_K) -> dict:
    """Held-out retrieval (ITC: T2V/V2T R@1/5/10, MdR, MnR), chance R@1, and the temporal-pair accuracy: the share
    of held-out videos whose true caption scores above its time-reversed twin (a tie counts one half).

    itm: also the ITM row (the ITC top ``itm_k`` re-ranked by the matching head, as the published protocol) under
    ``"itm"``; None: when the model's config says its matching head was trained."""
    import torch

    from vtr.eval.metrics import retrieval_metrics
    from vtr.eval.retrieval import itm_rerank

    itm = model.cfg.itm_trained if itm is None else itm
    f = heldout_features(model, corpus, shuffle_frames=shuffle_frames, seed=seed, with_itm_inputs=itm)
    itc = (f["video"] @ f["text"].t()).float()  # [Nv, Nt], text t belongs to video t
    n = itc.shape[0]
    true = (f["video"] * f["text"]).sum(-1)
    twin = (f["video"] * f["twin"]).sum(-1)
    pair_acc = float(((true > twin).float() + 0.5 * (true == twin).float()).mean()) * 100.0
    txt2video, video2txt = list(range(n)), [[i] for i in range(n)]
    metrics = retrieval_metrics(itc.numpy(), txt2video, video2txt)
    scores = {"videos": n, "chance_r1": 100.0 / n, "temporal_pair_acc": pair_acc,
              **{k: round(v, 2) for k, v in metrics.items()}}
    if itm:
        def score_pairs(video_idx, text_idx):
            with torch.no_grad():
                return model.itm_score(f["text_hidden"][text_idx], f["text_mask"][text_idx], f["tokens"][video_idx])

        itm_v2t, itm_t2v, _ = itm_rerank(itc, score_pairs, k=itm_k, batch_size=64)
        rows = retrieval_metrics(itm_v2t.numpy(), txt2video, video2txt, scores_t2v=itm_t2v.numpy(),
                                 rank_scores_v2t=itc.numpy())
        scores["itm"] = {"k": itm_k, **{k: round(v, 2) for k, v in rows.items()}}
    return scores


# ------------------------------------------------------------------------------------------ stages
@contextmanager
def _stage(name: str, what: str, timings: dict):
    print(f"[demo] {name}: {what}", flush=True)
    t0 = time.time()
    yield
    timings[name] = round(time.time() - t0, 1)
    print(f"[demo] {name}: done in {timings[name]:.1f} s", flush=True)


def _skip(name: str, output: Path, timings: dict) -> None:
    timings[name] = "skipped"
    print(f"[demo] {name}: {output} exists, skipped (--force redoes it)", flush=True)


def config_path(name: str) -> Path:
    """A config file shipped in pretrain/configs/."""
    import pretrain

    return Path(pretrain.__file__).parent / "configs" / name


def run_corpus(out: Path, size: str, seed: int) -> dict:
    from vtr.data.synthetic import generate_corpus

    return generate_corpus(out, size=size, seed=seed)


def run_pretrain(corpus: Path, run_dir: Path, model_dir: Path, config: str | os.PathLike, seed: int = 0,
                 overrides: dict | None = None) -> dict:
    """The pretrain/ program (in this process) on the corpus shards; its exported model moves to ``model_dir``.
    An interrupted run resumes from ``run_dir/checkpoint.pt``."""
    from pretrain.config import load_config
    from pretrain.train import train

    cfg = load_config(str(config), overrides={"train_shards": str(corpus / "shards"), "out_dir": str(run_dir),
                                              "seed": seed, **(overrides or {})})
    result = train(cfg, resume=True)
    exported = run_dir / "model"
    if not (exported / "config.json").is_file():
        raise VtrError(f"pretraining stopped before exporting {exported} (see {run_dir / 'log.jsonl'})")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(exported, model_dir)
    return result


def run_eval(corpus: Path, model_dir: Path, eval_dir: Path) -> dict:
    """``vtr eval`` (MSRVTT protocol) on the held-out split + the held-out temporal pairs. Both rows when the
    model's matching head was trained: ``itc`` (dual encoder) and ``itm`` (the ITC top ``HELDOUT_ITM_K``
    re-ranked by the matching head: the row the paper reports)."""
    import vtr
    from vtr.eval.retrieval import eval_command

    model = vtr.create_model(str(model_dir))
    itm = model.cfg.itm_trained
    eval_command(dataset="msrvtt", annotations=str(corpus / "heldout" / "annotations.json"),
                 videos=str(corpus / "heldout" / "videos"), model=str(model_dir), itm=itm, k_test=HELDOUT_ITM_K,
                 out=str(eval_dir), workers=0)
    retrieval = json.loads((eval_dir / "results.json").read_text())
    scores = heldout_scores(model, corpus, itm=False)
    return {"retrieval": retrieval["rows"]["itc"], "retrieval_itm": retrieval["rows"].get("itm"),
            "itm_k": HELDOUT_ITM_K if itm else None, "videos": retrieval["counts"]["videos"],
            "chance_r1": scores["chance_r1"], "temporal_pair_acc": scores["temporal_pair_acc"]}


def run_index(corpus: Path, model_dir: Path, index_dir: Path, clip_seconds: float,
              window_policy: str = "stride") -> dict:
    """Index the long videos (one window per clip length, half-clip stride, or ``window_policy="shots"``); then
    search every clip's caption and count how often the best segment overlaps a clip with that caption (in the
    right video)."""
    from index import build_index
    from index.search import VideoIndex

    report = build_index([str(corpus / "long")], str(index_dir), model=str(model_dir.resolve()),
                         window_s=clip_seconds, stride_s=clip_seconds / 2, workers=0, progress=False,
                         window_policy=window_policy)
    print(report.summary())
    truth = [json.loads(p.read_text()) for p in sorted((corpus / "long").glob("*.json"))]
    hits, queries = 0, sorted({c["caption"] for t in truth for c in t["clips"]})
    examples = []
    with VideoIndex(str(index_dir)) as idx:
        for q in queries:
            top = idx.search(q, k=1)
            ok = bool(top) and any(
                Path(top[0].path).name == t["video"] and c["caption"] == q
                and top[0].start < c["end"] and top[0].end > c["start"]
                for t in truth for c in t["clips"])
            hits += ok
            if top and len(examples) < 5:
                examples.append({"query": q, "video": Path(top[0].path).name, "start": top[0].start,
                                 "end": top[0].end, "correct": ok})
    return {"files": report.total_files, "windows": report.total_windows, "queries": len(queries),
            "top1_hit_rate": 100.0 * hits / max(1, len(queries)), "examples": examples}


def demo_command(out: str = "runs/demo", size: str = "default", app: bool = True, force: bool = False,
                 seed: int = 0, max_steps: int = None, port: int = 7860) -> int:
    """Run vtr end to end offline: make a synthetic video-text corpus, pretrain a small VideoMamba + MiniLM on it,
    evaluate it on held-out attribute combinations, index longer videos and open the search app on them.

    out: run folder (corpus/, pretrain/, model/, eval/, results.json, index/); finished stages are skipped
    size: default (a few minutes of training on 2 CPU cores) or tiny (a smoke test in about a minute)
    app: launch the app on the index at the end (--no-app stops after building the index)
    force: redo every stage even when its output exists
    seed: seed of the corpus and of training
    max_steps: training steps (default: the config's)
    port: port of the app
    """
    if size not in DEMO_SIZES:
        raise VtrError(f"unknown --size {size!r}; choose one of {', '.join(DEMO_SIZES)}")
    corpus_size, config = DEMO_SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus, run_dir, model_dir = out / "corpus", out / "pretrain", out / "model"
    eval_dir, index_dir, results_path = out / "eval", out / "index", out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() and not force else {}
    timings = results.setdefault("stages", {})
    t_all = time.time()

    if force:
        for d in (corpus, run_dir, model_dir, eval_dir, index_dir):
            shutil.rmtree(d, ignore_errors=True)
    if (corpus / "corpus.json").is_file():
        _skip("corpus", corpus, timings)
    else:
        with _stage("corpus", f"writing the synthetic '{corpus_size}' corpus to {corpus}", timings):
            info = run_corpus(corpus, corpus_size, seed)
            c = info["config"]
            print(f"  {c['num_train']} training clips in {corpus / 'shards'}, {len(info['heldout_combos'])} held-out "
                  f"combinations in {corpus / 'heldout'}, {c['num_long']} long videos in {corpus / 'long'}")
    clip_seconds = json.loads((corpus / "corpus.json").read_text())["config"]
    clip_seconds = clip_seconds["num_frames"] / clip_seconds["fps"]

    if (model_dir / "config.json").is_file():
        _skip("pretrain", model_dir, timings)
    else:
        with _stage("pretrain", f"pretraining {DEMO_ARCHITECTURE} with pretrain/configs/{config} into {run_dir}",
                    timings):
            last = run_pretrain(corpus, run_dir, model_dir, config_path(config), seed=seed,
                                overrides={"max_steps": max_steps} if max_steps else None)
            print(f"  {last.get('step')} steps, last loss {last.get('loss', float('nan')):.4f}; model in {model_dir}")

    if "eval" in results and (eval_dir / "results.json").is_file():
        _skip("eval", results_path, timings)
    else:
        with _stage("eval", f"vtr eval on the held-out combinations ({corpus / 'heldout'})", timings):
            results["eval"] = run_eval(corpus, model_dir, eval_dir)
            e = results["eval"]
            itm = e.get("retrieval_itm")
            print(f"  T2V R@1 {e['retrieval']['t2v_r1']:.1f} (chance {e['chance_r1']:.1f}), V2T R@1 "
                  f"{e['retrieval']['v2t_r1']:.1f}, temporal pairs {e['temporal_pair_acc']:.1f}% (chance 50)"
                  + (f"; re-ranked by the matching head: T2V R@1 {itm['t2v_r1']:.1f}, V2T R@1 {itm['v2t_r1']:.1f}"
                     if itm else ""))
        write_json_atomic(results_path, results)

    if "index" in results and (index_dir / "manifest.json").is_file():
        _skip("index", index_dir, timings)
    else:
        with _stage("index", f"indexing the long videos of {corpus / 'long'} into {index_dir}", timings):
            results["index"] = run_index(corpus, model_dir, index_dir, clip_seconds)
            s = results["index"]
            print(f"  searching each clip caption: the best segment is the right moment for "
                  f"{s['top1_hit_rate']:.0f}% of {s['queries']} queries")
            for ex in s["examples"]:
                print(f"    {ex['query']!r} -> {ex['video']} {ex['start']:.1f}-{ex['end']:.1f} s "
                      f"{'(correct)' if ex['correct'] else '(wrong)'}")
    results["seconds_total"] = round(time.time() - t_all, 1)
    write_json_atomic(results_path, results)
    print(f"[demo] artefacts in {out}: corpus/, model/, results.json, index/ "
          f"(load the model with vtr.create_model({str(model_dir)!r}))")

    if not app:
        print(f"[demo] app skipped (--no-app); start it with: vtr app --index {index_dir}")
        return 0
    from app.server import app_command

    # suggest a caption that is in the long videos (and that the index found)
    examples = results.get("index", {}).get("examples", [])
    query = next((ex["query"] for ex in examples if ex["correct"]), examples[0]["query"] if examples else None)
    hint = f" (try a query such as {query!r})" if query else ""
    print(f"[demo] app: vtr app --index {index_dir}{hint}", flush=True)
    return app_command(index=str(index_dir), port=port)


__all__ = ["heldout_features", "heldout_scores", "demo_command"]
