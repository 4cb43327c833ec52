"""A learnable synthetic video-text corpus: moving shapes captioned from their attributes, for the offline demo,
the learning benchmark and tests.

Each clip shows ``count`` shapes of one ``colour`` and ``shape`` doing one ``motion`` on a dark noisy background;
its caption is composed from those attributes ("two red circles move up", "a blue square shrinks"). Motions come
in **time-reversed twins** — moves up / moves down, grows / shrinks, appears / disappears — and a twin is rendered
as the exact time reversal of a forward clip, so the two captions differ *only* in frame order and a bag of
frames cannot tell them apart. Every shape is symmetric under a horizontal flip, so the training reader's
flip augmentation never changes a caption's truth; no attribute is horizontal for the same reason.

**Splits.** Attribute combinations ``(colour, shape, count, motion)`` are split once, by seed: ``heldout``
combinations never occur in training (checked: every single attribute value and every pair of values still
occurs in training, so the held-out set tests composition, not new words). The held-out split has one video per
combination, so each caption has exactly one true video.

**Layout** written by :func:`generate_corpus` (every stage reads only files, so each can be re-run alone)::

    OUT/corpus.json                 settings, seed, the train/held-out combinations, counts
    OUT/train/videos/*.mp4          training clips (kept for inspection)
    OUT/train/captions.jsonl        {"video", "caption", "colour", "shape", "count", "motion"} per clip
    OUT/shards/{00000..}.tar        the same clips as WebDataset shards (vtr.data.shards writer, video2dataset layout)
    OUT/heldout/videos/*.mp4        one clip per held-out combination
    OUT/heldout/annotations.json    MSRVTT-style: [{"video", "caption", "duration", "twin_caption", attributes}]
    OUT/long/*.mp4 + *.json         longer videos made of several clips in a row; the sidecar lists each clip's
                                    [start, end) seconds and caption (ground truth for search)

Same seed and size → identical files: each clip draws from its own RNG seeded by ``(seed, split, index)``, and clips
are stored as lossless H.264 (qp 0, single-threaded, our own RGB→YUV conversion), whose bytes — unlike lossy
x264's, which varied between runs here — depend only on the frames. A static noise texture per clip keeps the
lossless files small (~10 KB per 16-frame clip).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path

import numpy as np

from vtr.atomic import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 100, 250),
    "yellow": (240, 225, 40),
    "purple": (170, 60, 230),
    "white": (245, 245, 245),
    # the "alt" vocabulary's
    "orange": (250, 140, 20),
    "cyan": (30, 215, 225),
    "pink": (250, 120, 195),
    "grey": (140, 140, 140),
    "lime": (165, 240, 45),
}
SHAPES: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles",  # singular -> plural
                          "diamond": "diamonds", "ring": "rings"}
COUNTS: dict[int, str] = {1: "a", 2: "two", 3: "three"}
# motion -> (singular verb phrase, plural verb phrase); forward motions first, then their time-reversed twins
MOTIONS: dict[str, tuple[str, str]] = {
    "up": ("moves up", "move up"),
    "grows": ("grows", "grow"),
    "appears": ("appears", "appear"),
    "down": ("moves down", "move down"),
    "shrinks": ("shrinks", "shrink"),
    "disappears": ("disappears", "disappear"),
    # the "alt" vocabulary's words for the same three motions and their twins
    "rises": ("rises", "rise"),
    "expands": ("expands", "expand"),
    "shows up": ("shows up", "show up"),
    "falls": ("falls", "fall"),
    "contracts": ("contracts", "contract"),
    "vanishes": ("vanishes", "vanish"),
}
TWIN: dict[str, str] = {"up": "down", "grows": "shrinks", "appears": "disappears",
                        "down": "up", "shrinks": "grows", "disappears": "appears",
                        "rises": "falls", "expands": "contracts", "shows up": "vanishes",
                        "falls": "rises", "contracts": "expands", "vanishes": "shows up"}
# rendered directly; their twins are rendered as the time reversal
FORWARD = ("up", "grows", "appears", "rises", "expands", "shows up")
RENDER_AS = {"rises": "up", "expands": "grows", "shows up": "appears"}  # other words, the same forward motion


@dataclass(frozen=True)
class Vocabulary:
    """The attribute values a corpus draws from (all of them keys of the tables above)."""

    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    counts: tuple[int, ...]
    motions: tuple[str, ...]


VOCABULARIES: dict[str, Vocabulary] = {
    "default": Vocabulary(("red", "green", "blue", "yellow", "purple", "white"), ("circle", "square", "triangle"),
                          (1, 2, 3), ("up", "grows", "appears", "down", "shrinks", "disappears")),
    # other colours, shapes and motion words: a corpus the demo recipe was not tuned on
    "alt": Vocabulary(("orange", "cyan", "pink", "grey", "lime"), ("diamond", "ring", "circle", "square"),
                      (1, 2, 3), ("rises", "expands", "shows up", "falls", "contracts", "vanishes")),
}

_SPLIT_IDS = {"train": 1, "heldout": 2, "long": 3}


@dataclass(frozen=True, order=True)
class Combo:
    """One attribute combination; its caption is a pure function of it."""

    colour: str
    shape: str
    count: int
    motion: str

    @property
    def caption(self) -> str:
        noun = self.shape if self.count == 1 else SHAPES[self.shape]
        verb = MOTIONS[self.motion][0 if self.count == 1 else 1]
        return f"{COUNTS[self.count]} {self.colour} {noun} {verb}"

    @property
    def twin(self) -> "Combo":
        """The combination whose clips are this one's clips played backwards."""
        return dataclasses.replace(self, motion=TWIN[self.motion])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def all_combos(vocabulary: str = "default") -> list[Combo]:
    """Every attribute combination of a vocabulary, in a fixed order (colour, shape, count, motion)."""
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; known: {', '.join(VOCABULARIES)}")
    v = VOCABULARIES[vocabulary]
    return [Combo(c, s, n, m) for c, s, n, m in product(v.colours, v.shapes, v.counts, v.motions)]


def _value_pairs(combos) -> set:
    pairs = set()
    for c in combos:
        items = list(enumerate(dataclasses.astuple(c)))
        pairs.update(combinations(items, 2))
    return pairs


def split_combos(num_heldout: int, seed: int = 0, vocabulary: str = "default") -> tuple[list[Combo], list[Combo]]:
    """``(train, heldout)`` combinations: ``num_heldout`` drawn by ``seed`` such that every pair of attribute values
    (colour+shape, shape+motion, ...) still occurs in training. Both lists sorted."""
    combos = all_combos(vocabulary)
    if not 0 < num_heldout < len(combos):
        raise ValueError(f"num_heldout must be in [1, {len(combos) - 1}], got {num_heldout}")
    everything = _value_pairs(combos)
    rng = np.random.default_rng([seed, 0])
    for _ in range(1000):
        order = rng.permutation(len(combos))
        heldout = sorted(combos[i] for i in order[:num_heldout])
        train = sorted(combos[i] for i in order[num_heldout:])
        if _value_pairs(train) == everything:
            return train, heldout
    raise ValueError(f"could not hold out {num_heldout} combinations and keep every attribute pair in training")


# ------------------------------------------------------------------------------------------------ rendering
def _shape_mask(shape: str, yy, xx, cy: float, cx: float, r: float) -> np.ndarray:
    if shape == "circle":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if shape == "square":
        h = 0.85 * r
        return (np.abs(yy - cy) <= h) & (np.abs(xx - cx) <= h)
    if shape == "triangle":  # apex up; symmetric under a horizontal flip
        top, bottom = cy - r, cy + 0.8 * r
        half_width = (yy - top) / (bottom - top) * r
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
    if shape == "diamond":
        return np.abs(yy - cy) + np.abs(xx - cx) <= r
    if shape == "ring":
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    raise ValueError(f"unknown shape {shape!r}")


def render_clip(combo: Combo, rng: np.random.Generator, num_frames: int = 16, size: int = 64) -> np.ndarray:
    """uint8 [T, size, size, 3] frames of ``combo`` (positions, sizes, timing and background drawn from ``rng``).

    A twin motion (down, shrinks, disappears) is the forward clip of its twin played backwards.
    """
    forward = combo.motion in FORWARD
    motion = combo.motion if forward else TWIN[combo.motion]
    motion = RENDER_AS.get(motion, motion)
    n, T = combo.count, num_frames
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    margin = size * 0.1
    col_w = (size - 2 * margin) / n
    r_max = min(0.42 * col_w, size * 0.17)  # shapes never overlap: each lives in its own column
    r_min = max(2.0, size * 0.045)
    t = np.linspace(0.0, 1.0, T, dtype=np.float32)
    # per-shape centre x (inside its column) and base y, radius
    cx = margin + col_w * (np.arange(n) + 0.5) + rng.uniform(-0.12, 0.12, n) * col_w
    r = np.full((n, T), rng.uniform(0.65, 1.0) * r_max, np.float32)
    cy = np.repeat(rng.uniform(0.3, 0.7, (n, 1)) * size, T, axis=1)
    visible = np.ones((n, T), bool)
    if motion == "up":
        room = size - 2 * r_max - 4  # centre y range that keeps every shape inside the frame
        travel = rng.uniform(0.6, 1.0) * room
        start = size - r_max - 2 - rng.uniform(0.0, room - travel)
        cy = np.repeat((start - travel * t)[None, :], n, axis=0)
    elif motion == "grows":
        r0, r1 = rng.uniform(r_min, r_min + 1.0), rng.uniform(0.85, 1.0) * r_max
        r = np.repeat((r0 + (r1 - r0) * t)[None, :], n, axis=0)
    elif motion == "appears":
        k = int(rng.integers(T // 4, 3 * T // 4 + 1))
        visible[:, :k] = False
    background = rng.uniform(10, 70)
    tint = rng.uniform(-8, 8, 3)
    frames = np.empty((T, size, size, 3), np.float32)
    colour = np.asarray(COLOURS[combo.colour], np.float32)
    for i in range(T):
        frame = np.broadcast_to(background + tint, (size, size, 3)).copy()
        for j in range(n):
            if visible[j, i]:
                frame[_shape_mask(combo.shape, yy, xx, cy[j, i], cx[j], r[j, i])] = colour
        frames[i] = frame
    frames += rng.normal(0.0, 4.0, (1, size, size, 3)).astype(np.float32)  # a static texture: cheap to store
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return frames if forward else frames[::-1].copy()


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB (H, W even) -> uint8 [H * 3 / 2, W] planar YUV 4:2:0, BT.601 limited range.

    Done here so the YUV planes (what a lossless file stores) are a pure function of the RGB frames."""
    x = frame.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = frame.shape[:2]

    def down(c):  # 2x2 mean
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y.reshape(-1), down(u).reshape(-1), down(v).reshape(-1)]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(path, frames: np.ndarray, fps: int = 8, crf: int = 0) -> Path:
    """Encode uint8 [T, H, W, 3] RGB frames (H, W even) as lossless H.264 (yuv420p), single-threaded, with our own
    colour conversion and explicit timestamps, so the bytes depend only on the frames. ``crf``: lossy quality
    instead (0 keeps it lossless; lossy x264 output is not reproducible byte for byte)."""
    import av

    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            quality = {"crf": str(crf)} if crf else {"qp": "0"}  # qp 0: lossless
            stream.options = {**quality, "preset": "veryfast", "threads": "1"}
            stream.codec_context.thread_count = 1
            for i, f in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(f), format="yuv420p")
                frame.pts = i  # explicit timestamps: x264's rate control reads them
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


# ------------------------------------------------------------------------------------------------ the corpus
@dataclass(frozen=True)
class CorpusConfig:
    """Sizes of one corpus.

    num_train: training clips (combinations cycled in a seeded order, so each appears about equally often; a
        clip and its time-reversed twin side by side, see :func:`write_train_clips`).
    num_heldout: held-out combinations (= held-out videos; chance R@1 = 1/num_heldout).
    num_long / clips_per_long: long videos for indexing and how many clips each chains.
    num_frames / size / fps: every clip's frames, square side in pixels, and frame rate.
    per_shard: clips per WebDataset shard.
    vocabulary: the attribute values and words (a key of ``VOCABULARIES``).
    """

    num_train: int = 4000
    num_heldout: int = 72
    num_long: int = 6
    clips_per_long: int = 8
    num_frames: int = 16
    size: int = 64
    fps: int = 8
    per_shard: int = 100
    vocabulary: str = "default"

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps


SIZES: dict[str, CorpusConfig] = {
    "default": CorpusConfig(),
    "small": CorpusConfig(num_train=1500, num_heldout=60, num_long=4, clips_per_long=6),
    "tiny": CorpusConfig(num_train=48, num_heldout=12, num_long=2, clips_per_long=3, per_shard=24),
}


def corpus_config(size: str | CorpusConfig = "default", **overrides) -> CorpusConfig:
    cfg = size if isinstance(size, CorpusConfig) else SIZES.get(size)
    if cfg is None:
        raise ValueError(f"unknown corpus size {size!r}; known: {', '.join(SIZES)}")
    return dataclasses.replace(cfg, **overrides)


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_IDS[split], index])


def training_units(train: list[Combo]) -> list[tuple[Combo, ...]]:
    """The training set's units: ``(forward, twin)`` when both are training combinations (written as one clip and
    its exact time reversal, next to each other), else the single combination."""
    units, trained = [], set(train)
    for combo in train:
        if combo.motion in FORWARD:
            units.append((combo, combo.twin) if combo.twin in trained else (combo,))
        elif combo.twin not in trained:
            units.append((combo,))
    return units


def train_plan(train: list[Combo], num_train: int, seed: int) -> list[tuple[Combo, int]]:
    """``(combo, source)`` of each training clip: the units cycled, each cycle in a seeded order; ``source`` is the
    index of the clip whose frames it shows (itself, or for the second clip of a pair, the first, reversed)."""
    units = training_units(train)
    rng = np.random.default_rng([seed, 4])
    plan: list[tuple[Combo, int]] = []
    while len(plan) < num_train:
        for u in rng.permutation(len(units)):
            first = len(plan)
            plan += [(combo, first) for combo in units[u]]
    return plan[:num_train]


def _row(video: str, combo: Combo, **extra) -> dict:
    return {"video": video, "caption": combo.caption, **combo.to_dict(), **extra}


def _write_unit(args) -> list[dict]:
    """One training unit (a clip, or a clip and its time-reversed twin): render once, write each clip's mp4."""
    out, cfg, seed, shuffle_time, unit = args
    rows, frames = [], None
    for i, combo, source in unit:
        name = f"train_{i:05d}.mp4"
        if source == i:
            frames = render_clip(combo, clip_rng(seed, "train", i), cfg.num_frames, cfg.size)
            clip = frames
        else:  # the twin of the previous clip: the same frames, played backwards
            clip = frames[::-1]
        if shuffle_time:
            clip = clip[clip_rng(seed, "train", i).permutation(len(clip))]
        if not (out / "videos" / name).is_file():
            write_mp4(out / "videos" / name, clip, cfg.fps)
        rows.append(_row(name, combo, **({"twin_of": f"train_{source:05d}.mp4"} if source != i else {})))
    return rows


def write_train_clips(out, cfg: CorpusConfig, train: list[Combo], seed: int, shuffle_time: bool = False,
                      processes: int = 1) -> Path:
    """``out/videos/train_NNNNN.mp4`` + ``out/captions.jsonl``, in :func:`train_plan` order: a clip and its
    time-reversed twin are neighbours, so a reader with a small shuffle buffer puts both in one batch (each is the
    other's hard negative, separable by frame order alone).

    shuffle_time: each clip's frames in a seeded random order (the bag-of-frames control: same clips, no usable
    order). processes: encoding processes; every clip's bytes depend only on (seed, index), so the corpus is the
    same for any number.
    """
    out = Path(out)
    units: list[list] = []
    for i, (combo, source) in enumerate(train_plan(train, cfg.num_train, seed)):
        if source == i:
            units.append([])
        units[-1].append((i, combo, source))
    tasks = [(out, cfg, seed, shuffle_time, unit) for unit in units]
    if processes > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(processes) as pool:
            results = list(pool.map(_write_unit, tasks, chunksize=32))
    else:
        results = [_write_unit(t) for t in tasks]
    rows = [row for unit_rows in results for row in unit_rows]
    write_text_atomic(out / "captions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return out / "captions.jsonl"


def write_heldout(out, cfg: CorpusConfig, heldout: list[Combo], seed: int) -> Path:
    """``out/videos/heldout_NNN.mp4`` + ``out/annotations.json`` (MSRVTT layout, one entry per combination)."""
    out = Path(out)
    entries = []
    for i, combo in enumerate(heldout):
        name = f"heldout_{i:03d}.mp4"
        write_mp4(out / "videos" / name, render_clip(combo, clip_rng(seed, "heldout", i), cfg.num_frames, cfg.size),
                  cfg.fps)
        entries.append(_row(name, combo, duration=cfg.clip_seconds, twin_caption=combo.twin.caption))
    (out / "annotations.json").write_text(json.dumps(entries, indent=1))
    return out / "annotations.json"


def write_long_videos(out, cfg: CorpusConfig, heldout: list[Combo], seed: int) -> list[Path]:
    """``out/long_NNN.mp4``: ``clips_per_long`` clips of random combinations in a row, with ``long_NNN.json``
    holding ``{"video", "duration", "clips": [{"start", "end", "caption", "heldout", attributes}]}``."""
    out = Path(out)
    combos, held = all_combos(), set(heldout)
    paths = []
    for v in range(cfg.num_long):
        rng = clip_rng(seed, "long", v)
        frames, clips = [], []
        for c in range(cfg.clips_per_long):
            combo = combos[int(rng.integers(len(combos)))]
            frames.append(render_clip(combo, rng, cfg.num_frames, cfg.size))
            start = c * cfg.clip_seconds
            clips.append({"start": round(start, 6), "end": round(start + cfg.clip_seconds, 6),
                          "caption": combo.caption, "heldout": combo in held, **combo.to_dict()})
        name = f"long_{v:03d}"
        paths.append(write_mp4(out / f"{name}.mp4", np.concatenate(frames), cfg.fps))
        sidecar = {"video": f"{name}.mp4", "duration": cfg.clips_per_long * cfg.clip_seconds, "clips": clips}
        (out / f"{name}.json").write_text(json.dumps(sidecar, indent=1))
    return paths


def write_train_shards(out, cfg: CorpusConfig, train: list[Combo], seed: int, shuffle_time: bool = False,
                       processes: int = 1) -> Path:
    """Training clips written to ``out/`` (videos + captions.jsonl), then sharded into ``out/../shards[_shuffled]``
    by :func:`vtr.data.shards.make_shards`. Returns the shard folder."""
    from vtr.data.shards import make_shards

    out = Path(out)
    captions = write_train_clips(out, cfg, train, seed, shuffle_time=shuffle_time, processes=processes)
    shards = out.parent / ("shards_shuffled" if shuffle_time else "shards")
    total = make_shards(out / "videos", captions, shards, per_shard=cfg.per_shard, processes=processes)
    if total["failed"]:
        raise RuntimeError(f"{total['failed']} synthetic clips failed to shard (see {shards}/*_stats.json)")
    return shards


def generate_corpus(out, size: str | CorpusConfig = "default", seed: int = 0, shuffled_train: bool = False,
                    processes: int = 1) -> dict:
    """Write the whole corpus under ``out`` (layout in the module docstring); returns what ``corpus.json`` holds.

    shuffled_train: also write ``train_shuffled/`` + ``shards_shuffled/``, the same training clips with their
    frames in random order (the bag-of-frames control of ``bench/learning.py``).
    """
    cfg = corpus_config(size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train, heldout = split_combos(cfg.num_heldout, seed, cfg.vocabulary)
    vocab = VOCABULARIES[cfg.vocabulary]
    write_train_shards(out / "train", cfg, train, seed, processes=processes)
    if shuffled_train:
        write_train_shards(out / "train_shuffled", cfg, train, seed, shuffle_time=True, processes=processes)
    write_heldout(out / "heldout", cfg, heldout, seed)
    write_long_videos(out / "long", cfg, heldout, seed)
    info = {
        "format": "vtr-synthetic", "version": 1, "seed": seed, "config": dataclasses.asdict(cfg),
        "attributes": {"colour": list(vocab.colours), "shape": list(vocab.shapes), "count": list(vocab.counts),
                       "motion": list(vocab.motions), "twin": {m: TWIN[m] for m in vocab.motions}},
        "train_combos": [c.to_dict() for c in train], "heldout_combos": [c.to_dict() for c in heldout],
        "paths": {"shards": "shards", "heldout_annotations": "heldout/annotations.json",
                  "heldout_videos": "heldout/videos", "long_videos": "long",
                  **({"shards_shuffled": "shards_shuffled"} if shuffled_train else {})},
        "seconds": round(time.time() - t0, 1),
    }
    (out / "corpus.json").write_text(json.dumps(info, indent=1))
    logger.info("synthetic corpus: %d train clips, %d held-out, %d long videos in %s (%.1fs)", cfg.num_train,
                len(heldout), cfg.num_long, out, info["seconds"])
    return info


def read_heldout(corpus) -> list[dict]:
    """The held-out entries (``video``, ``caption``, ``twin_caption``, attributes) of a corpus folder."""
    return json.loads((Path(corpus) / "heldout" / "annotations.json").read_text())


__all__ = ["COLOURS", "SHAPES", "COUNTS", "MOTIONS", "TWIN", "VOCABULARIES", "Vocabulary", "Combo", "all_combos", "split_combos", "render_clip",
           "write_mp4", "CorpusConfig", "SIZES", "corpus_config", "generate_corpus", "write_train_shards",
           "write_heldout", "write_long_videos", "read_heldout"]
