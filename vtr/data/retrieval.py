"""Zero-shot retrieval benchmarks: registry, annotation loading, video presence check, and a frame Dataset.

Data-root layout (one folder per benchmark; ``video`` entries of the annotation file are relative to ``videos/``)::

    ROOT/msrvtt/msrvtt_ret_test1k.json     ROOT/msrvtt/videos/video9770.mp4
    ROOT/didemo/didemo_ret_test.json       ROOT/didemo/videos/<name>.mp4
    ROOT/anet/anet_ret_val_1.json          ROOT/anet/videos/v_<ytid>.mp4        (or anet_ret_val.json)
    ROOT/lsmdc/lsmdc_ret_test_1000.json    ROOT/lsmdc/videos/<MOVIE>/<clip>.avi
    ROOT/msvd/msvd_ret_test.json           ROOT/msvd/videos/<ytid>_<s>_<e>.avi

Texts follow file order (evaluation.md §1), as UMT's ``ImgTxtRetEvalDataset`` builds them: an entry whose
``caption`` is a string gives one text, a list gives one text per caption (MSVD: several ground truths per
video) — except in paragraph mode (DiDeMo, ANet), where the list is joined into one text. Every text goes
through ``vtr.data.text.normalize_caption``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from vtr.errors import VtrError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalDatasetSpec:
    """How one benchmark is evaluated.

    text_mode: ``"single"`` (one caption string per video), ``"paragraph"`` (caption list joined into one text),
    ``"multi"`` (caption list = several texts, each a ground truth for the video).
    annotation_files: accepted annotation file names, the first is the default.
    """

    name: str
    title: str
    annotation_files: tuple[str, ...]
    text_mode: str
    max_txt_l: int
    num_frames: int = 8
    trimmed30: bool = False
    video_dir: str = "videos"
    entry_format: str = ""

    def annotation_path(self, root) -> Path:
        """The first accepted annotation file that exists under ``root/<name>/`` (else the default one)."""
        folder = Path(root) / self.name
        for fname in self.annotation_files:
            if (folder / fname).exists():
                return folder / fname
        return folder / self.annotation_files[0]

    def video_path(self, root) -> Path:
        return Path(root) / self.name / self.video_dir


RETRIEVAL_DATASETS: dict[str, RetrievalDatasetSpec] = {
    spec.name: spec
    for spec in [
        RetrievalDatasetSpec("msrvtt", "MSRVTT 1k-A (JSFusion)", ("msrvtt_ret_test1k.json",), "single", 32,
                             entry_format='{"video": "video9770.mp4", "caption": str, "duration": float}'),
        RetrievalDatasetSpec("didemo", "DiDeMo test", ("didemo_ret_test.json",), "paragraph", 64, trimmed30=True,
                             entry_format='{"video": "<name>.mp4", "caption": [sentence, ...]}'),
        RetrievalDatasetSpec("anet", "ActivityNet Captions val", ("anet_ret_val_1.json", "anet_ret_val.json"),
                             "paragraph", 150,
                             entry_format='{"video": "v_<ytid>.mp4", "caption": [...], "timestamp": [[s, e], ...], '
                                          '"duration": float}'),
        RetrievalDatasetSpec("lsmdc", "LSMDC test", ("lsmdc_ret_test_1000.json",), "single", 96,
                             entry_format='{"video": "<MOVIE>/<clip>.avi", "caption": str}'),
        RetrievalDatasetSpec("msvd", "MSVD test", ("msvd_ret_test.json",), "multi", 64,
                             entry_format='{"video": "<ytid>_<s>_<e>.avi", "caption": [c1, c2, ...]}'),
    ]
}


def get_retrieval_spec(name: str) -> RetrievalDatasetSpec:
    try:
        return RETRIEVAL_DATASETS[name.lower()]
    except KeyError:
        raise VtrError(f"unknown retrieval dataset {name!r}; known: {', '.join(RETRIEVAL_DATASETS)}") from None


@dataclass
class RetrievalSplit:
    """Texts and videos of one benchmark split, indexed in annotation-file order.

    videos: absolute-or-relative video paths; txt2video[t] = video index of text t;
    video2txt[v] = indices of video v's texts. ``partial`` is True when videos were dropped by
    ``check_videos(..., allow_missing=True)``; ``num_missing_videos`` / ``num_missing_texts`` say how many.
    """

    name: str
    texts: list[str]
    videos: list[Path]
    txt2video: list[int]
    video2txt: list[list[int]]
    spec: RetrievalDatasetSpec
    partial: bool = False
    num_missing_videos: int = 0
    num_missing_texts: int = 0
    video_ids: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (video, why) dropped by check_readable

    def __len__(self):
        return len(self.videos)


def _read_annotations(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise VtrError(f"annotation file not found: {path}") from None
    except OSError as e:  # a folder, no permission, a name too long
        raise VtrError(f"cannot read the annotation file {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise VtrError(f"annotation file {path} is not valid JSON: {e}") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) and "video" in d and "caption" in d for d in data):
        raise VtrError(f"annotation file {path} must be a JSON list of {{'video': ..., 'caption': ...}} entries")
    return data


def load_retrieval_split(name: str, annotation_file=None, video_dir=None, root=None) -> RetrievalSplit:
    """Build a :class:`RetrievalSplit` from a VINDLU-style annotation file.

    Either pass ``annotation_file`` and ``video_dir`` explicitly, or ``root`` (see the module docstring layout).
    No video is opened or checked here: call :func:`check_videos` before decoding.
    """
    from vtr.data.text import join_paragraph, normalize_caption

    spec = get_retrieval_spec(name)
    if annotation_file is None or video_dir is None:
        if root is None:
            raise VtrError(f"{spec.name}: pass annotation_file and video_dir, or a data root")
        annotation_file = annotation_file or spec.annotation_path(root)
        video_dir = video_dir or spec.video_path(root)
    annotation_file, video_dir = Path(annotation_file), Path(video_dir)

    texts: list[str] = []
    videos: list[Path] = []
    video_ids: list[str] = []
    txt2video: list[int] = []
    video2txt: list[list[int]] = []
    for v, entry in enumerate(_read_annotations(annotation_file)):
        caption = entry["caption"]
        if spec.text_mode == "paragraph":
            captions = [join_paragraph(caption)]  # join first, normalise after (evaluation.md §1)
        else:
            captions = caption if isinstance(caption, list) else [caption]
        if not captions:
            raise VtrError(f"{annotation_file}: entry {v} ({entry['video']}) has no caption")
        video_ids.append(entry["video"])
        videos.append(video_dir / entry["video"])
        video2txt.append([])
        for c in captions:
            video2txt[v].append(len(texts))
            txt2video.append(v)
            texts.append(normalize_caption(c))
    logger.info("%s: %d videos, %d texts from %s", spec.name, len(videos), len(texts), annotation_file)
    return RetrievalSplit(spec.name, texts, videos, txt2video, video2txt, spec, video_ids=video_ids)


def find_missing_videos(split: RetrievalSplit) -> list[Path]:
    """Every video path of the split that is not an existing file (no decoding)."""
    return [p for p in split.videos if not os.path.isfile(p)]


def check_videos(split: RetrievalSplit, allow_missing: bool = False) -> RetrievalSplit:
    """Check that every video file exists before any decoding starts.

    Without ``allow_missing`` a missing file raises :class:`VtrError` listing the first 20 and the count.
    With it, returns the split restricted to the present videos and their texts, re-indexed in the same order,
    with ``partial=True`` and the numbers of dropped videos and texts (a partial split's scores are not the
    benchmark's).
    """
    missing = find_missing_videos(split)
    if not missing:
        return split
    if not allow_missing:
        listed = "\n  ".join(str(p) for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise VtrError(f"{split.name}: {len(missing)} of {len(split.videos)} video files are missing:\n  {listed}{more}"
                       "\n(fix the data root, or --allow-missing evaluates the videos present, the results marked "
                       "partial)")
    logger.warning("%s: %d of %d videos missing; evaluating a partial split", split.name, len(missing),
                   len(split.videos))
    return _without(split, set(missing))


def check_readable(split: RetrievalSplit, allow_missing: bool = False, backend: str = "auto",
                   threads: int = 4, progress: bool = True) -> RetrievalSplit:
    """Open every video of the split (its container and first frame, as the evaluation's decoder opens it) before
    the features are computed, so that a download cut short or a file that is no video is found in seconds, all
    of them at once, not one per run after hours of decoding. Without ``allow_missing`` they raise VtrError
    naming the first 20 and why; with it, the split without them and their texts (``partial``, listed in
    ``unreadable``), as :func:`check_videos` drops missing ones."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from vtr.data.video import open_video

    def why_not(path) -> str | None:
        try:
            with open_video(path, backend=backend):
                return None
        except Exception as e:  # noqa: BLE001 - whatever stops the decoder is the reason, said as it is
            return str(e).removeprefix(f"cannot read video {path}: ")

    with ThreadPoolExecutor(max(1, threads)) as pool:
        reasons = list(tqdm(pool.map(why_not, split.videos), total=len(split.videos), desc="opening videos",
                            unit="video", disable=not progress or len(split.videos) < 100))
    bad = [(path, why) for path, why in zip(split.videos, reasons) if why is not None]
    if not bad:
        return split
    if not allow_missing:
        listed = "\n  ".join(f"{p}: {why}" for p, why in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise VtrError(f"{split.name}: {len(bad)} of {len(split.videos)} video files cannot be read:\n  {listed}{more}"
                       "\n(replace them, or --allow-missing evaluates without them, the results marked partial)")
    logger.warning("%s: %d of %d videos cannot be read; evaluating a partial split", split.name, len(bad),
                   len(split.videos))
    out = _without(split, {p for p, _ in bad})
    return replace(out, unreadable=split.unreadable + [(str(p), why) for p, why in bad])


def _without(split: RetrievalSplit, dropped: set) -> RetrievalSplit:
    """The split without the videos in ``dropped`` and their texts, re-indexed in the same order, ``partial``."""
    keep = [v for v, p in enumerate(split.videos) if p not in dropped]
    texts, txt2video, video2txt = [], [], []
    for new_v, old_v in enumerate(keep):
        video2txt.append([])
        for t in split.video2txt[old_v]:
            video2txt[new_v].append(len(texts))
            txt2video.append(new_v)
            texts.append(split.texts[t])
    dropped_texts = len(split.texts) - len(texts)
    logger.info("%s: %d videos, %d texts left", split.name, len(keep), len(texts))
    return replace(split, texts=texts, videos=[split.videos[v] for v in keep], txt2video=txt2video,
                   video2txt=video2txt, video_ids=[split.video_ids[v] for v in keep] if split.video_ids else [],
                   partial=True, num_missing_videos=split.num_missing_videos + len(split.videos) - len(keep),
                   num_missing_texts=split.num_missing_texts + dropped_texts)


class RetrievalVideos(torch.utils.data.Dataset):
    """Frames of each video of a split: ``dataset[i] -> (i, frames float [T, 3, H, W])``.

    Decoding happens in ``__getitem__`` so DataLoader workers parallelise it; the dataset holds only paths and
    settings (picklable). A file that cannot be read raises :class:`vtr.errors.VideoReadError` naming it.
    ``trimmed30`` defaults to the benchmark's setting (DiDeMo).
    """

    def __init__(self, split: RetrievalSplit, num_frames: int | None = None, transform: Callable | None = None,
                 sample: str = "middle", trimmed30: bool | None = None, backend: str = "auto"):
        self.videos = list(split.videos)
        self.num_frames = int(num_frames or split.spec.num_frames)
        if transform is None:
            from vtr.data.transforms import EvalTransform

            transform = EvalTransform()
        self.transform = transform
        self.sample = sample
        self.trimmed30 = split.spec.trimmed30 if trimmed30 is None else bool(trimmed30)
        self.backend = backend

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index: int):
        from vtr.data.video import read_frames

        frames = read_frames(self.videos[index], self.num_frames, sample=self.sample, trimmed30=self.trimmed30,
                             backend=self.backend)
        return index, self.transform(frames)


def retrieval_dataset_names() -> Sequence[str]:
    return tuple(RETRIEVAL_DATASETS)
