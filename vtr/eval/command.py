"""``vtr eval``: a zero-shot benchmark (or all five) end to end: load the model, check the videos, key the cache, run
the protocol of :mod:`vtr.eval.retrieval`, write the results and compare with the published numbers.

Layout of ``--out`` (one keyed cache folder per benchmark and setting; ``key.json`` says what it holds)::

    results.json, results.md                   (--all: <dataset>/results.*, summary.json, summary.md)
    cache/<dataset>-<key>/text/{embedding,hidden,mask}.npy + done/*.npy
    cache/<dataset>-<key>/video/{frame_embeds,tokens}.npy + done/*.npy     (video_itc/: --no-itm runs)
    cache/<dataset>-<key>/itm_k<k>_<pairs digest>/score.npy + done/*.npy  (ITM logits of the scored pairs)

Disk: the token file is Nv × T·P × D × 2 bytes (MSRVTT ≈ 1.8 GB, ActivityNet ≈ 8.9 GB at float16).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from vtr.atomic import write_text_atomic
from vtr.device import resolve_device
from vtr.errors import VtrError
from vtr.eval.cache import cache_key
from vtr.eval.retrieval import default_workers, evaluate_retrieval
from vtr.models.checkpoint import file_checksum, state_dict_checksum

logger = logging.getLogger(__name__)

DATASETS = ("msrvtt", "didemo", "anet", "lsmdc", "msvd")

# Published zero-shot VideoMamba-M numbers (evaluation.md §5; ITM row; R@1, R@5, R@10), keyed by weight name.
PUBLISHED_ITM: dict[str, dict[str, dict[str, tuple[float, float, float]]]] = {
    "videomamba_m16_5M": {
        "msrvtt": {"t2v": (32.0, 53.1, 63.6), "v2t": (28.2, 47.6, 56.5)},
        "didemo": {"t2v": (36.6, 61.7, 70.3), "v2t": (38.3, 64.7, 73.3)},
        "anet": {"t2v": (35.9, 61.1, 72.3), "v2t": (32.8, 58.8, 69.9)},
        "lsmdc": {"t2v": (18.0, 36.1, 43.4), "v2t": (15.9, 31.0, 39.2)},
        "msvd": {"t2v": (38.0, 68.6, 79.0), "v2t": (57.5, 79.9, 85.4)},
    },
    "videomamba_m16_17M": {
        "msrvtt": {"t2v": (34.7, 58.9, 68.0), "v2t": (29.5, 49.9, 60.1)},
        "didemo": {"t2v": (42.0, 67.3, 76.8), "v2t": (42.3, 68.2, 76.9)},
        "anet": {"t2v": (40.1, 65.7, 76.1), "v2t": (34.2, 61.8, 73.2)},
        "lsmdc": {"t2v": (18.4, 35.3, 43.0), "v2t": (16.5, 32.1, 40.0)},
        "msvd": {"t2v": (40.3, 70.0, 79.7), "v2t": (61.8, 81.0, 87.0)},
    },
    "videomamba_m16_25M": {
        "msrvtt": {"t2v": (35.6, 58.1, 69.5), "v2t": (29.1, 51.6, 62.2)},
        "didemo": {"t2v": (43.1, 68.1, 77.7), "v2t": (43.8, 69.7, 77.8)},
        "anet": {"t2v": (41.0, 67.5, 77.8), "v2t": (37.1, 65.0, 75.1)},
        "lsmdc": {"t2v": (20.4, 37.1, 45.7), "v2t": (17.9, 34.6, 42.1)},
        "msvd": {"t2v": (42.0, 71.6, 81.2), "v2t": (62.7, 82.8, 87.6)},
    },
}

DEFAULT_MODEL = "videomamba_m16_25M"
_RECALL_COLUMNS = ("r1", "r5", "r10")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    name: str
    weights_checksum: str  # sha256 of the weights file, or "random-init"
    digest: str  # identifies the weights for the cache key (the checksum, or a state-dict digest)
    weights_source: str | None


def load_eval_model(name: str, frames: int | None = None) -> LoadedModel:
    """A registered weight name (released file), a vtr model folder, or an architecture name (random init)."""
    from vtr.models.registry import load_named_model

    model = load_named_model(name, **({"num_frames": frames} if frames else {}))
    source = getattr(model, "weights_source", None)
    if source is not None and Path(source).exists():
        checksum = file_checksum(source)
        digest = checksum
    else:
        logger.warning("model %s has random-init weights: scores are meaningless except as a smoke test", name)
        checksum, digest = "random-init", "random-init:" + state_dict_checksum(model)
    return LoadedModel(model, getattr(model, "model_name", name), checksum, digest, source)


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def format_results_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table in the paper's layout: rows itm/itc; T2V R@1/5/10, V2T R@1/5/10, means, MdR, MnR.

    MdR/MnR of both rows come from the ITC matrix (ITM rows tie at −100 past the top k).
    """
    head = ("| row | T2V R@1 | R@5 | R@10 | V2T R@1 | R@5 | R@10 | T2V mean | V2T mean | mean "
            "| T2V MdR | T2V MnR | V2T MdR | V2T MnR |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in rows.items():
        cells = [m[f"t2v_{c}"] for c in _RECALL_COLUMNS] + [m[f"v2t_{c}"] for c in _RECALL_COLUMNS]
        cells += [m["t2v_r_mean"], m["v2t_r_mean"], m["r_mean"], m["t2v_mdr"], m["t2v_mnr"], m["v2t_mdr"],
                  m["v2t_mnr"]]
        lines.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def published_for(model_name: str, dataset: str) -> dict | None:
    return PUBLISHED_ITM.get(model_name, {}).get(dataset)


def format_comparison_table(model_name: str, results: dict[str, dict]) -> str:
    """One line per dataset: our ITM row next to the published VideoMamba-M numbers (R@1/R@5/R@10)."""

    def triple(values):
        return "/".join(_fmt(v) for v in values)

    head = "| dataset | T2V ours (itm) | T2V paper | V2T ours (itm) | V2T paper | ΔT2V R@1 | T2V ours (itc) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for ds, res in results.items():
        row = res["rows"].get("itm", res["rows"]["itc"])
        ours_t2v = [row[f"t2v_{c}"] for c in _RECALL_COLUMNS]
        ours_v2t = [row[f"v2t_{c}"] for c in _RECALL_COLUMNS]
        itc = [res["rows"]["itc"][f"t2v_{c}"] for c in _RECALL_COLUMNS]
        paper = published_for(model_name, ds)
        p_t2v = triple(paper["t2v"]) if paper else "—"
        p_v2t = triple(paper["v2t"]) if paper else "—"
        delta = f"{ours_t2v[0] - paper['t2v'][0]:+.1f}" if paper and "itm" in res["rows"] else "—"
        partial = " (partial)" if res.get("partial") else ""
        lines.append(f"| {ds}{partial} | {triple(ours_t2v)} | {p_t2v} | {triple(ours_v2t)} | {p_v2t} | {delta} "
                     f"| {triple(itc)} |")
    return "\n".join(lines)


#: Why a model's evaluation has no ITM row unless --itm asks for one.
UNTRAINED_HEAD = ("the model's config says its matching head was not trained (itm_trained: false), so its "
                  "re-ranking would not measure the model; --itm re-ranks anyway")


def prepare_split(dataset: str, annotations=None, videos=None, root=None, allow_missing: bool = False) -> tuple:
    """``(annotation file, split)`` of one benchmark, read and checked before any model is loaded (or downloaded):
    the annotation file, the videos missing, then those that cannot be opened (see
    :func:`vtr.data.retrieval.check_readable`). Raises VtrError for what stops the evaluation."""
    from vtr.data.retrieval import check_readable, check_videos, get_retrieval_spec, load_retrieval_split

    spec = get_retrieval_spec(dataset)
    annotation_file = Path(annotations) if annotations else (spec.annotation_path(root) if root else None)
    if annotation_file is None:
        raise VtrError(f"{spec.name}: pass --annotations and --videos, or --root (layout in vtr/data/retrieval.py)")
    split = load_retrieval_split(spec.name, annotation_file, videos, root)
    split = check_videos(split, allow_missing=allow_missing)
    split = check_readable(split, allow_missing=allow_missing)  # seconds: a broken file found before hours of work
    if not split.videos:
        raise VtrError(f"{spec.name}: no video left to evaluate")
    return annotation_file, split


def run_benchmark(loaded: LoadedModel, dataset: str, annotations=None, videos=None, root=None, out="runs/eval",
                  frames: int | None = None, k_test: int = 128, itm: bool | None = None, batch_size: int = 8,
                  workers: int | None = None, bf16: bool = False, device: str = "auto", allow_missing: bool = False,
                  cache_dtype: str = "float16", prepared: tuple | None = None) -> dict:
    """Evaluate one benchmark; writes ``out/results.json`` and ``out/results.md``; returns the results dict.
    ``prepared``: what :func:`prepare_split` returned for it (else it runs here).

    itm: re-rank with the matching head; None: when the model's config says the head was trained
    (``itm_trained``: the releases' was; a vtr run's says whether it learned), as the app offers re-ranking."""
    from vtr import __version__
    from vtr.data.retrieval import RetrievalVideos, get_retrieval_spec
    from vtr.models.registry import get_tokenizer

    spec = get_retrieval_spec(dataset)
    annotation_file, split = prepared or prepare_split(dataset, annotations, videos, root, allow_missing)

    model, pre = loaded.model, loaded.model.preprocess
    head_trained = bool(getattr(getattr(model, "cfg", None), "itm_trained", False))
    if itm is None:
        itm = head_trained
        if not itm:
            logger.info("%s: no ITM row: %s", spec.name, UNTRAINED_HEAD)
    num_frames = frames or pre.num_frames
    max_txt_l = spec.max_txt_l
    max_pos = getattr(getattr(getattr(model, "cfg", None), "text", None), "max_position_embeddings", None)
    if max_pos is not None and max_txt_l > max_pos:
        logger.warning("%s: max_txt_l %d exceeds the text encoder's %d positions; truncating to %d",
                       spec.name, max_txt_l, max_pos, max_pos)
        max_txt_l = max_pos
    tokenizer = get_tokenizer(model)
    resolved_device = resolve_device(device)
    workers = default_workers() if workers is None else workers
    annotation_sha = file_checksum(annotation_file)
    key = cache_key(model=loaded.digest, dataset=spec.name, annotation=annotation_sha, frames=num_frames,
                    img_size=pre.img_size, mean=list(pre.mean), std=list(pre.std), antialias=pre.antialias,
                    max_txt_l=max_txt_l, tokenizer=pre.tokenizer, bf16=bf16, cache_dtype=cache_dtype,
                    model_config=dataclasses.asdict(model.cfg),  # a folder's config.json (pooling, ...) counts too
                    videos=hashlib.sha256("\n".join(map(str, split.video_ids)).encode()).hexdigest())
    out = Path(out)
    cache_dir = out / "cache" / f"{spec.name}-{key}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": spec.name, "annotations": str(annotation_file), "videos": str(videos or spec.video_path(root)),
        "model": loaded.name, "frames": num_frames, "img_size": pre.img_size, "mean": list(pre.mean),
        "std": list(pre.std), "antialias": pre.antialias, "max_txt_l": max_txt_l, "tokenizer": pre.tokenizer, "sample": "middle",
        "trimmed30": spec.trimmed30, "text_mode": spec.text_mode, "k_test": k_test, "itm": itm,
        "itm_head_trained": head_trained,
        "batch_size": batch_size, "workers": workers, "bf16": bf16, "device": str(resolved_device),
        "cache_dtype": cache_dtype, "cache_dir": str(cache_dir),
    }
    write_text_atomic(cache_dir / "key.json", json.dumps({**config, "weights": loaded.digest,
                                                          "annotation_sha256": annotation_sha}, indent=2))
    logger.info("%s: %d videos, %d texts; cache %s", spec.name, len(split.videos), len(split.texts), cache_dir)

    dataset_frames = RetrievalVideos(split, num_frames, pre.eval_transform())
    result = evaluate_retrieval(
        model, split.texts, dataset_frames, split.txt2video, split.video2txt,
        lambda texts: pre.tokenize(tokenizer, texts, max_txt_l), cache_dir, k_test=k_test, itm=itm,
        batch_size=batch_size, workers=workers, bf16=bf16, device=resolved_device, max_length=max_txt_l,
        cache_dtype=cache_dtype,
    )
    results = {
        "dataset": spec.name,
        "title": spec.title,
        "model": loaded.name,
        "weights_checksum": loaded.weights_checksum,
        "weights_source": loaded.weights_source,
        "annotation_file": str(annotation_file),
        "annotation_sha256": annotation_sha,
        "counts": {"videos": len(split.videos), "texts": len(split.texts), **result.counts},
        "partial": bool(split.partial),
        "missing_videos": split.num_missing_videos,
        "missing_texts": split.num_missing_texts,
        "unreadable_videos": [{"video": v, "reason": why} for v, why in split.unreadable],
        "rows": {name: {k: round(v, 4) for k, v in row.items()} for name, row in result.rows.items()},
        "published_itm": published_for(loaded.name, spec.name),
        "config": config,
        "vtr_version": __version__,
    }
    table = format_results_table(result.rows)
    title = f"{spec.title} — {loaded.name} ({num_frames} frames, k={k_test}{', bf16' if bf16 else ''})"
    notes = [f"{len(split.videos)} videos, {len(split.texts)} texts"]
    if split.partial:
        notes.append(f"PARTIAL: {split.num_missing_videos} missing or unreadable videos and their "
                     f"{split.num_missing_texts} texts removed; not the benchmark's numbers")
    if not head_trained:
        notes.append(("the itm row re-ranks with a matching head that was never trained: read the itc row" if itm
                      else f"no itm row: {UNTRAINED_HEAD}"))
    paper = results["published_itm"]
    if paper:
        notes.append("published ITM: T2V " + "/".join(map(str, paper["t2v"])) + ", V2T "
                     + "/".join(map(str, paper["v2t"])))
    if "itm" in result.rows:
        notes.append("MdR/MnR from the ITC matrix in both rows")
    md = f"## {title}\n\n{table}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "results.md", md)
    print(md)
    return results


def eval_command(dataset: str = None, annotations: str = None, videos: str = None, model: str = None,
                 frames: int = None, k_test: int = 128, itm: bool | None = None, out: str = "runs/eval",
                 all: bool = False, root: str = None, batch_size: int = 8, workers: int = None,
                 precision: str = "auto", device: str = "auto", allow_missing: bool = False) -> int:
    """Zero-shot video-text retrieval on a benchmark: ITC, then ITM re-ranking of the top k (UMT/VideoMamba protocol).

    dataset: benchmark: msrvtt, didemo, anet, lsmdc or msvd
    annotations: annotation JSON file (default: from --root's layout)
    videos: folder the annotation's video paths are relative to (default: from --root's layout)
    model: weight name (e.g. videomamba_m16_25M, the default), vtr model folder, or architecture (random init)
    frames: frames per video (default: the model's preprocessing, 8 for VideoMamba-M)
    k_test: candidates re-ranked by ITM in each direction
    itm: re-rank the ITC top k with the ITM head (--no-itm: report only the ITC dual-encoder row). Default: when
         the model's config says its matching head was trained (the releases' was; vtr's runs record whether theirs
         learned)
    out: output folder: results.json, results.md and the resumable feature cache (cache/)
    all: run msrvtt, didemo, anet, lsmdc and msvd from --root and compare with the published numbers
    root: data root with one folder per benchmark (see vtr/data/retrieval.py)
    batch_size: videos per encoding batch
    workers: video-decoding DataLoader workers (default: min(4, the cores this process may use))
    precision: fp32, bf16 (autocast, the official evaluation's) or auto (bf16 on CUDA or a native-bf16 CPU where it
               measures faster, else fp32; fp32 for a model whose config says it runs in fp32)
    device: auto (CUDA when present), cpu, cuda or cuda:N
    allow_missing: evaluate on the videos present when some are missing (results marked partial)
    """
    run_all = all  # the flag's name shadows the builtin
    if run_all and not root:
        raise VtrError("--all needs --root DIR (one folder per benchmark)")
    if not run_all and not dataset:
        raise VtrError("pass --dataset NAME (msrvtt, didemo, anet, lsmdc, msvd), or --all --root DIR")
    for key, value, ok, what in (
            ("k-test", k_test, k_test >= 1, "at least 1 (the ITC top k the ITM head re-ranks)"),
            ("batch-size", batch_size, batch_size >= 1, "at least 1"),
            ("workers", workers, workers is None or workers >= 0, "0 (decode in this process) or more"),
            ("frames", frames, frames is None or frames >= 1, "at least 1")):
        if not ok:  # --k-test 0 reported an ITM row of ties at -100 as if it were a result
            raise VtrError(f"--{key} must be {what}, not {value}")
    from vtr.cli import interrupted_says
    from vtr.data.retrieval import get_retrieval_spec

    resolved_device = resolve_device(device)  # before the weights load: a device this machine lacks says so first
    # The data is read and checked before the model is loaded (or downloaded): a mistyped path, a missing or broken
    # video is said in seconds.
    if not run_all:
        prepared = {dataset: prepare_split(dataset, annotations, videos, root, allow_missing)}
    else:
        prepared = {}
        for ds in DATASETS:
            spec = get_retrieval_spec(ds)
            folder = Path(root) / spec.name
            if not folder.is_dir():
                print(f"{ds}: skipped (no folder {folder})")
            elif not spec.annotation_path(root).is_file():
                print(f"{ds}: skipped (no annotation file {' or '.join(spec.annotation_files)} in {folder})")
            else:
                prepared[ds] = prepare_split(ds, None, None, root, allow_missing)
        if not prepared:
            raise VtrError(f"no benchmark folder found under {root} (expected some of: {', '.join(DATASETS)})")
    with interrupted_says(f"the features computed so far are kept in {out}; the same command goes on from there"):
        return _evaluate(model, frames, precision, resolved_device, run_all, prepared, dataset, annotations, videos,
                         root, out, k_test=k_test, itm=itm, batch_size=batch_size, workers=workers, device=device,
                         allow_missing=allow_missing)


def _evaluate(model, frames, precision, resolved_device, run_all: bool, prepared: dict, dataset, annotations, videos,
              root, out, **common) -> int:
    """The model loaded, then each benchmark of ``prepared`` run (see :func:`eval_command`)."""
    from vtr.precision import resolve_precision

    loaded = load_eval_model(model or DEFAULT_MODEL, frames)
    bf16 = resolve_precision(precision, resolved_device, loaded.model) == "bf16"
    common = dict(frames=frames, bf16=bf16, **common)
    if not run_all:
        run_benchmark(loaded, dataset, annotations, videos, root, out, prepared=prepared[dataset], **common)
        return 0

    results = {ds: run_benchmark(loaded, ds, None, None, root, Path(out) / ds, prepared=split, **common)
               for ds, split in prepared.items()}
    table = format_comparison_table(loaded.name, results)
    md = (f"## Zero-shot retrieval — {loaded.name} vs published VideoMamba-M (R@1/R@5/R@10)\n\n{table}\n")
    write_text_atomic(Path(out) / "summary.md", md)
    write_text_atomic(Path(out) / "summary.json", json.dumps(
        {"model": loaded.name, "weights_checksum": loaded.weights_checksum, "results": results}, indent=2))
    print(md)
    return 0
