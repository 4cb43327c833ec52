"""Searching an index folder: a query (text, image, video clip or vector) → top windows → segments per video.

Scores are the model's ITC similarity: the query's unit vector against each window's vector (the mean of its
frames' unit embeddings, as :meth:`VideoTextModel.similarity` scores a clip). Example queries (an image or a clip)
are scored by cosine between the example's and the retrieved windows' vectors. Windows are grouped per video and
merged into segments: starting from a video's best window, adjacent or overlapping retrieved windows whose score
is within ``merge_margin`` of the seed join it, so a segment spans the part of the video that matches about as
well as its best moment. A segment's score is its best window's score.

With ``rerank=True`` (text queries), the ``rerank_top`` best windows are decoded again, encoded with their patch
tokens and scored by the matching (ITM) head; results then come from those candidates only, scored by the ITM
logit. Filters (``path_glob`` in sqlite GLOB syntax, ``min_duration``/``max_duration`` in seconds) restrict the
search to matching files (exactly: filtered searches score the matching windows' vectors directly).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from index.catalog import Catalog
from index.decode import VIDEO_BACKEND
from index.embed import load_model
from index.layout import (CATALOG, MANIFEST, VECTORS, index_preprocess, is_index, read_manifest, read_queries,
                          remember_weights_verified, thumbnail_path, weights_checksum, weights_identity,
                          weights_verified)
from index.store import VectorStore
from index.windows import Window, window_frame_indices
from vtr.data.animation import is_animation
from vtr.data.extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vtr.errors import VideoReadError, VtrError
from vtr.precision import check_precision

logger = logging.getLogger(__name__)


#: a filtered search of a store without exact filtering (HNSW, PQ) scores up to this many windows exactly, from the
#: catalog's vectors; Flat and IVF…,Flat stores filter exactly themselves (VectorStore.search_allowed_exactly)
EXACT_FILTERED_MAX = 200_000
#: Everyday moments people look for in their own videos; :meth:`VideoIndex.suggest_queries` offers the ones the
#: index matches best, so a first search is one that fits the collection.
COMMON_QUERIES = (
    "a dog running on the grass", "a cat playing", "children playing in a park", "people dancing at a party",
    "a birthday cake with candles", "someone cooking in a kitchen", "a car driving on a road", "waves on a beach",
    "people swimming in a pool", "snow falling", "a city street with traffic", "a plane taking off",
    "someone riding a bicycle", "a football match", "people hiking in the mountains", "a sunset over the sea",
    "fireworks at night", "a person giving a speech", "a band playing music on stage", "a baby laughing",
    "people eating at a table", "a boat on a lake", "a train passing by", "someone skiing down a slope",
    "a crowd at a concert", "a person walking in the rain", "a horse running", "a garden with flowers",
    "a person playing the guitar", "a wedding ceremony",
)


@dataclass
class Segment:
    path: str
    start: float  # seconds
    end: float
    score: float
    windows: list = field(default_factory=list)  # [{"id", "start", "end", "score"}]
    thumbnail: str | None = None  # JPEG of the best window's middle frame
    copies: list = field(default_factory=list)  # other paths of the same video (same content), this moment folded in
    recorded: float | None = None  # when the video was recorded (seconds since the epoch), if known
    recorded_by: str | None = None  # where that came from: "metadata", "name" or "file" (see index.dates)

    def to_dict(self) -> dict:
        return asdict(self)


def merge_segments(hits: list[tuple[int, float, float, float]], merge_margin: float = 0.02,
                   gap: float = 0.0) -> list[tuple[float, float, float, list]]:
    """One video's hits ``[(window_id, start, end, score)]`` → segments ``[(start, end, score, hits)]``.

    Greedy from the best hit: a segment grows through hits that overlap or touch it (``next.start <= end + gap``)
    and score at least ``seed - merge_margin``. Segments come out best first; a segment lying more than half inside
    a better one is dropped.
    """
    by_start = sorted(hits, key=lambda h: (h[1], h[2]))
    used = [False] * len(by_start)
    order = sorted(range(len(by_start)), key=lambda i: -by_start[i][3])
    segments = []
    for seed in order:
        if used[seed]:
            continue
        used[seed] = True
        floor = by_start[seed][3] - merge_margin
        start, end = by_start[seed][1], by_start[seed][2]
        chosen = [seed]
        grown = True
        while grown:  # absorb every good-enough hit that overlaps or touches the segment
            grown = False
            for i, (_, s, e, score) in enumerate(by_start):
                if not used[i] and score >= floor and s <= end + gap and e >= start - gap:
                    used[i] = True
                    chosen.append(i)
                    start, end = min(start, s), max(end, e)
                    grown = True
        members = [by_start[i] for i in sorted(chosen)]
        # A weaker segment mostly inside a better one of the same video adds nothing.
        if any(min(end, e) - max(start, s) > 0.5 * (end - start) for s, e, _, _ in segments):
            continue
        segments.append((start, end, by_start[seed][3], members))
    return segments


def _window_around(at: float, length: float, duration: float, name: str) -> Window:
    """The window of ``length`` seconds centred on second ``at`` of a video ``duration`` long, inside it."""
    if not math.isfinite(at) or at < 0:
        raise VtrError(f"a moment is seconds from the video's start, 0 or more: not {at:g}")
    if at > duration + 0.5:
        raise VtrError(f"{name} is {duration:.1f} s long: there is no moment at {at:g} s")
    start = min(max(0.0, at - length / 2), max(0.0, duration - length))
    return Window(start, min(duration, start + length))


def _check_filters(min_duration, max_duration, since, until) -> None:
    """Filters that no video can pass are refused before anything is encoded."""
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise VtrError(f"no video is at least {min_duration:g} s and at most {max_duration:g} s long: "
                       "the minimum duration is above the maximum")
    if since is not None and until is not None and since >= until:
        raise VtrError("no video was recorded on or after the first date and before the second: the dates are the "
                       "wrong way round")


def _missing_example(query) -> bool:
    """Whether ``query`` is a path to an image or video that does not exist (a typo searched as words would
    answer something unrelated): a folder in it and an image or video extension, and no such file."""
    if not isinstance(query, (str, Path)):
        return False
    text = str(query).strip()
    looks = (os.sep in text or text.startswith("~")) and len(text.split()) == 1 \
        and Path(text).suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    return looks and not _is_file(text)


def _is_file(query) -> bool:
    """Whether ``query`` names a file here. Never raises: a sentence longer than a file name may be (255 bytes)
    is words, where ``Path.is_file`` raised ``OSError: File name too long``."""
    return os.path.isfile(query)


def _cuda_ordinal(device) -> int:
    """N of a ``cuda:N`` device (str or torch.device); 0 for ``cuda``, ``cpu`` or None."""
    if device is None:
        return 0
    text = str(device)
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    return 0


class VideoIndex:
    """An opened index folder. ``VideoIndex(folder).search("a dog catches a frisbee")``.

    model: None (the manifest's model), a registered name / vtr folder, or a model object; its weights must be
    the ones the index was built with (checked against the manifest's checksum).
    gpu: search on a GPU when faiss-gpu and a GPU are available (None: automatically).
    precision: of the video encoder for example queries: fp32, bf16 or auto/None (see :mod:`vtr.precision`);
    text queries are encoded in fp32 (one short sentence: bf16 would save nothing worth its rounding).
    """

    def __init__(self, index: str, model=None, device: str | None = None, gpu: bool | None = None,
                 nprobe: int | None = None, ef_search: int | None = None, precision: str | None = None):
        precision = check_precision(precision)  # a bad flag fails now, not at the first example query
        for key, value in (("nprobe", nprobe), ("ef_search", ef_search)):
            if value is not None and value < 1:
                raise VtrError(f"--{key.replace('_', '-')} must be at least 1, not {value}")
        self.dir = Path(index)
        self.manifest = read_manifest(self.dir)
        if self.manifest is None or not is_index(self.dir):
            raise VtrError(f"{self.dir} is not an index folder; build one with `vtr index build DIR... --index "
                           f"{self.dir}`")
        self.catalog = Catalog.for_reading(self.dir / CATALOG)
        self._seen = self._version()
        self._search_params = {"nprobe": nprobe, "ef_search": ef_search}
        self._gpu = None  # the GPU the store was moved to
        self._top = None  # the largest window id the store has caught up with
        self._model_spec, self._device = model, device
        self._load_store(gpu, opening=True)
        self._precision = precision
        self._forget_model()

    def _forget_model(self) -> None:
        self._model = None
        self._weights_check = None  # (future of the model's weights checksum, its name) until checked
        self._preprocess = None
        self._tokenizer = None
        self._suggestions = None

    def _load_store(self, gpu: bool | None = False, opening: bool = False) -> None:
        """``self.store``: ``vectors.faiss``, brought up to the catalog (:meth:`_catch_up`), on the GPU when asked
        (``gpu`` None: when there is one)."""
        factory = self.manifest.get("index_factory") or "Flat"
        path = self.dir / VECTORS
        self.store = (VectorStore.load(path, factory) if path.is_file()
                      else VectorStore.empty(self.manifest["embed_dim"]))
        if self._catch_up(whole=True) and opening:
            # A build was interrupted after committing files, or runs now: search what the catalog holds (in
            # memory only).
            logger.warning("%s is behind the catalog (interrupted build?); run `vtr index update` to save it", path)
        self.store.set_search_params(**self._search_params)
        if gpu or gpu is None:
            # the encoder's GPU when one is named (cuda:N), not always the first
            ordinal = _cuda_ordinal(self._device)
            if self.store.to_gpu(ordinal):
                self._gpu = ordinal
            elif gpu:
                logger.warning("GPU search requested but faiss has no GPU support or sees no GPU; using CPU")

    def _catch_up(self, whole: bool = False) -> bool:
        """Make the store hold exactly the catalog's windows (drop the deleted, add the new). Returns whether it
        had to change. Window ids are never reused, so when the catalog's count is the store's plus the windows
        above the largest id caught up with, windows were only added: those are read, not every id (a build in
        another process commits its windows chunk by chunk, and each search after a commit catches up). Otherwise,
        or with ``whole``, every id is compared."""
        count, top = self.catalog.window_span()
        if not whole and self._top is not None:
            if count == self.store.ntotal and top == self._top:
                return False
            new = self.catalog.window_ids(after=self._top)
            if self.store.ntotal + len(new) == count:  # only added (a race adding more falls to the whole way)
                for chunk_ids, vecs in self.catalog.iter_vectors(new):
                    self.store.add(chunk_ids, vecs)
                self._top = int(new[-1]) if len(new) else self._top
                return self._moved_back()
        ids = self.catalog.window_ids()
        self._top = int(ids[-1]) if len(ids) else 0
        try:
            if not self.store.hold(ids, self.catalog.iter_vectors):
                return False
        except RuntimeError:  # a store that cannot remove (HNSW): exact search over the catalog's vectors
            self.store = VectorStore.build(self.manifest["embed_dim"], lambda: self.catalog.iter_vectors(),
                                           len(ids), "Flat")
        return self._moved_back()

    def _moved_back(self) -> bool:
        """After an edit (which drops the store back to the CPU): on its GPU again. Returns True (it changed)."""
        if self._gpu is not None and not self.store.to_gpu(self._gpu):
            self._gpu = None
        return True

    def _version(self) -> tuple:
        """What changes when another process changes the index: the catalog's data version, the manifest's file."""
        try:
            st = os.stat(self.dir / MANIFEST)
            manifest = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            manifest = None
        return self.catalog.data_version(), manifest

    def _follow(self) -> None:
        """Catch up with what another process committed since the index was opened or last followed: a cron
        ``vtr index update``, ``vtr index update --watch``, a build in another terminal, the app's own builds.
        New windows are searched, deleted ones no longer are, and a manifest another model wrote (``--reembed``)
        drops the model loaded for the old one. Called at the start of each search; costs a ``PRAGMA`` and a
        ``stat`` when nothing changed."""
        version = self._version()
        if version == self._seen:
            return
        manifest = read_manifest(self.dir)
        self._suggestions = None
        if manifest is None or manifest == self.manifest:
            self._catch_up()
        else:
            logger.info("%s: the index's settings changed; reopening it", self.dir)
            if {k: v for k, v in manifest.items() if k != "index_factory"} != \
                    {k: v for k, v in self.manifest.items() if k != "index_factory"}:
                self._forget_model()
            self.manifest = manifest
            gpu, self._gpu = self._gpu is not None, None
            self._load_store(gpu)
        self._seen = version  # only once caught up: a failure here is tried again by the next search

    def close(self):
        self.catalog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------- contents
    def status(self) -> dict:
        """What ``vtr index status`` shows (:func:`index.index_status`): ``index``, ``manifest``, and the
        catalog's counts, folders and failed / partial / pending files (:meth:`index.catalog.Catalog.summary`),
        and the folders not there now (``missing_roots``)."""
        from index.build import status_of

        self._follow()
        return status_of(self.dir, self.manifest, self.catalog)

    def folders(self) -> list[str]:
        """Folders to filter a search by (``path_glob``): the folders the index was built from, then every folder
        holding an indexed video, each once."""
        roots = self.catalog.get_meta("roots", [])
        parents = sorted({str(Path(f.path).parent) for f in self.catalog.files("ok")})
        return list(dict.fromkeys(roots + parents))

    def duration(self, video: str) -> float | None:
        """The indexed duration of ``video`` (its path) in seconds; None when it is not in the index."""
        row = self.catalog.file_by_path(str(video))
        return row.duration if row is not None else None

    def thumbnail(self, video: str, seconds: float) -> bytes:
        """A JPEG of ``video``'s frame at ``seconds``, like the index's own thumbnails (``THUMB_WIDTH`` wide), cut
        from the video now: for moments of an index built without thumbnails. Raises VideoReadError."""
        from index.decode import encode_jpeg
        from vtr.data.video import open_video

        with open_video(str(video), backend=VIDEO_BACKEND) as reader:
            rgb = reader.get_frames([reader.clock().frame_at(seconds)])[0].numpy()
            pixel_aspect, colors = reader.pixel_aspect, reader.shown_colors
        return encode_jpeg(rgb, pixel_aspect=pixel_aspect, colors=colors)

    # ------------------------------------------------------------------------------------------ encoding
    @property
    def model(self):
        """The model (loaded on first use). Its weights are checked against the index's checksum beside the first
        encoding (:meth:`_check_weights`): hashing 0.7 GB of release weights is most of the 0.6 s the check cost a
        ``vtr search`` (``bench.cli_latency``: 2.31 s with it, 1.71 s without); it releases the GIL while the
        tokenizer loads and the query is encoded. A model this index loads by name from files that passed
        the check before, unchanged since (:func:`index.layout.weights_verified`), is not hashed again; a model
        object handed in always is (its tensors may have changed since they were read)."""
        if self._model is None:
            spec = self._model_spec if self._model_spec is not None else self.manifest["model"]
            model = load_model(spec, self._device)
            identity = weights_identity(model) if isinstance(spec, (str, os.PathLike)) else None
            if not weights_verified(self.dir, identity, self.manifest["weights_checksum"]):
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(1, thread_name_prefix="vtr-checksum")
                self._weights_check = (pool.submit(weights_checksum, model), getattr(model, "index_source", spec),
                                       identity)
                pool.shutdown(wait=False)  # the thread ends with the hash
            self._model = model
        return self._model

    def _check_weights(self) -> None:
        """Raise VtrError unless the model has the weights the index was built with (waits for the hash)."""
        if self._weights_check is None:
            return
        digest, name, identity = self._weights_check
        if digest.result() != self.manifest["weights_checksum"]:
            raise VtrError(f"the model {name!r} does not have the weights {self.dir} was built with (checksum "
                           "mismatch); pass the same model")
        self._weights_check = None
        remember_weights_verified(self.dir, identity, self.manifest["weights_checksum"])

    NO_RERANK = ("this index's model has no trained matching head (its config says itm_trained: false), so "
                 "re-ranking would order moments worse than the search itself; search without --rerank")

    @property
    def can_rerank(self) -> bool:
        """Whether the model's matching (ITM) head was trained (``ModelConfig.itm_trained``): only then is
        re-ranking offered. The released weights have one; vtr's own runs say whether their matching head learned
        (``pretrain.train.export_model``)."""
        return bool(self.model.cfg.itm_trained)

    @property
    def preprocess(self):
        """How queries are fed to the model: the model's preprocessing, resized as the index was built."""
        if self._preprocess is None:
            self._preprocess = index_preprocess(self.model, self.manifest)
        return self._preprocess

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from vtr.models.registry import get_tokenizer

            self._tokenizer = get_tokenizer(self.model)
        return self._tokenizer

    def encode_text(self, text: str | list[str]):
        """→ (unit query vector [E] (``[N, E]`` for a list), TextEmbedding for ITM)."""
        import torch

        from vtr.data.text import normalize_caption

        model = self.model
        texts = [text] if isinstance(text, str) else list(text)
        batch = self.preprocess.tokenize(self.tokenizer, [normalize_caption(t) for t in texts])
        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        self._check_weights()
        vectors = out.embedding.float().cpu().numpy()
        return (vectors[0] if isinstance(text, str) else vectors), out

    def query_notes(self, text: str) -> list[str]:
        """Warnings about a text query: words the model's vocabulary has no token for (emoji, scripts it lacks:
        each reads as ``[UNK]``), and a query longer than the model reads (``max_txt_l`` tokens), whose end is
        ignored."""
        from vtr.data.text import normalize_caption

        pre = self.preprocess
        text = normalize_caption(text)
        notes = []
        unknown = getattr(self.tokenizer, "unknown_words", lambda _: [])(text)
        if unknown:
            said = ", ".join(f"“{w}”" for w in unknown[:5]) + (", …" if len(unknown) > 5 else "")
            known = self.tokenizer.tokenize(text)
            notes.append(f"The model has no word for {said}: it searched for the rest of the query." if any(
                t != "[UNK]" for t in known) else f"The model has no word for {said}, so the query says nothing it "
                "can search for. Describe the moment in words (the model reads English).")
        n = pre.count_tokens(self.tokenizer, text)
        if n > pre.max_txt_l:
            kept = self.tokenizer.decode(pre.tokenize(self.tokenizer, [text])["input_ids"][0],
                                         skip_special_tokens=True)
            notes.append(f"Your query is {n} tokens long, but the model reads only the first {pre.max_txt_l}: it "
                         f"searched for “{kept}”. Shorten the query to say what matters.")
        return notes

    def suggest_queries(self, n: int = 4) -> list[str]:
        """``n`` queries this index matches best (by their best window's score), from the collection's own
        candidates (``queries.txt`` in the index folder, when present) and the everyday :data:`COMMON_QUERIES`."""
        self._follow()
        if self._suggestions is None:
            if self.store.ntotal == 0:
                return []
            candidates = list(dict.fromkeys(read_queries(self.dir) + list(COMMON_QUERIES)))
            vectors, _ = self.encode_text(candidates)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            best, _ = self.store.search(vectors, 1)
            order = np.argsort(-best[:, 0], kind="stable")
            self._suggestions = [candidates[i] for i in order]
        return self._suggestions[:n]

    def _frames_to_vector(self, frames_uint8, return_tokens: bool = False):
        """frames uint8 [n, T, 3, H, W] (any size) → embeddings [n, E] (and tokens)."""
        return self._encode(self.preprocess(frames_uint8), return_tokens)

    def _encode(self, x, return_tokens: bool = False):
        """Preprocessed clips [n, T, 3, h, w] → the model's ``encode_video`` output, at the index's precision."""
        import torch

        from vtr.precision import autocast, resolve_precision

        model = self.model
        device = next(model.parameters()).device
        with torch.inference_mode(), autocast(resolve_precision(self._precision, device, model), device):
            out = model.encode_video(x.to(device), return_tokens=return_tokens)
        self._check_weights()
        return out

    def encode_example(self, path: str, at: float | None = None) -> np.ndarray:
        """An image (repeated to the model's frame count) or a video clip (sampled like one window; an animated GIF
        is one) → [E]. ``at``: the window of a video around that second (the index's window length), not the whole
        video."""
        import torch

        from vtr.data.video import open_video, sample_frame_indices

        path = str(path)
        t = self.preprocess.num_frames
        if at is not None:
            try:
                with open_video(path, backend=VIDEO_BACKEND) as reader:
                    clock = reader.clock()
                    window = _window_around(float(at), float(self.manifest.get("window_s") or 8.0), clock.duration,
                                            Path(path).name)
                    clip = reader.get_frames(window_frame_indices(window, clock, t)).permute(0, 3, 1, 2).contiguous()
            except VideoReadError as e:
                raise VtrError(f"The example {Path(path).name} cannot be used: {e.cause}.") from e
        elif Path(path).suffix.lower() in IMAGE_EXTENSIONS and not is_animation(path):  # an animated GIF: a clip
            from vtr.data.image import read_image

            try:  # upright, as the user sees the photo (its EXIF orientation)
                image = read_image(path)
            except ValueError as e:  # what is wrong with it is known (a TIFF FFmpeg cannot decode)
                raise VtrError(f"The example {Path(path).name} cannot be used: {e}.") from e
            except Exception as e:  # noqa: BLE001
                logger.debug("cannot read image %s: %s", path, e)
                raise VtrError(f"The example {Path(path).name} is not an image file, or it is damaged.") from e
            clip = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).expand(t, -1, -1, -1).contiguous()
        else:
            try:  # sampled like one window over the whole clip, as read_frames samples it, over the frames its
                # clock counts (as the index counts them: a header's count can hold frames that never show)
                with open_video(path, backend=VIDEO_BACKEND) as reader:
                    clock = reader.clock()
                    duration = clock.duration
                    indices = sample_frame_indices(t, clock.num_frames, "middle")
                    clip = reader.get_frames(indices).permute(0, 3, 1, 2).contiguous()
            except VideoReadError as e:  # named by its file name: the path is a server's upload folder
                raise VtrError(f"The example {Path(path).name} cannot be used: {e.cause}.") from e
            window_s = float(self.manifest.get("window_s") or 8.0)
            if duration > 2 * window_s:
                logger.warning("the example %s is %.0f s long: its %d frames are spread over all of it, as one "
                               "moment of %.0f s; for one moment of it, name a second (`vtr search FILE --at "
                               "SECONDS`)", Path(path).name, duration, t, duration)
        return self._frames_to_vector(clip.unsqueeze(0)).embedding[0].float().cpu().numpy()

    # ------------------------------------------------------------------------------------------- search
    def search(self, query, k: int = 10, rerank: bool = False, rerank_top: int = 20, path_glob: str | None = None,
               min_duration: float | None = None, max_duration: float | None = None, windows: int | None = None,
               merge_margin: float = 0.02, kind: str = "auto", progress: bool = False, since: float | None = None,
               until: float | None = None) -> list[Segment]:
        """Top ``k`` segments for ``query``: text, a path to an image or a video clip, or a vector [E].

        path_glob, min_duration, max_duration, since, until: only videos whose path matches the glob, this long
            (seconds), recorded at or after ``since`` and before ``until`` (seconds since the epoch,
            :func:`index.dates.parse_day_bound` makes them from dates; see :mod:`index.dates`).

        windows: how many windows to retrieve before grouping (default ``max(5 k, 50)``, doubled until they group
            into ``k`` segments or the index has no more).
        rerank: re-score the best windows (at least ``rerank_top`` and ``2 k``, more until they group into ``k``
            segments) with the matching (ITM) head; text queries only.
        kind: ``"auto"`` (a string naming an existing file is an example, otherwise text), ``"text"`` (always
            words: what a server passes on for typed queries) or ``"example"`` (an image or clip file, or a clip's
            vector: scored clip to clip).
        progress: a progress bar over the windows a re-ranking decodes and encodes again (with the release
            model on a CPU, seconds each).
        """
        if kind not in ("auto", "text", "example"):
            raise ValueError(f"kind must be auto, text or example, not {kind!r}")
        self._follow()
        if kind != "text" and isinstance(query, str) and query.startswith("~"):
            query = os.path.expanduser(query)
        if int(k) < 1:
            raise VtrError(f"k is the number of moments to show: at least 1, not {k}")
        _check_filters(min_duration, max_duration, since, until)
        if kind == "example" and not isinstance(query, np.ndarray) and not (isinstance(query, (str, Path))
                                                                            and _is_file(query)):
            raise VtrError(f"query by example needs an image or video file; not found: {query}")
        if kind == "auto" and _missing_example(query):
            raise VtrError(f"no such file: {query} (a query by example names an image or a video; to search for "
                           "these words, leave out the folder or the extension)")
        text_out = None
        example = False
        if isinstance(query, np.ndarray):  # a vector; kind="example": an example's, scored clip to clip
            q = query.astype(np.float32)
            example = kind == "example"
        elif kind != "text" and isinstance(query, (str, Path)) and _is_file(query):
            q = self.encode_example(str(query))
            example = True
        else:
            if not str(query).strip():
                raise VtrError("empty query")
            q, text_out = self.encode_text(str(query))
            for note in self.query_notes(str(query)):  # the CLI shows warnings; the app shows them on the page
                logger.warning("%s", note)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        n_windows = int(windows or max(5 * k, 50))
        if rerank and text_out is None:
            logger.warning("--rerank applies to text queries only; ignored")
        elif rerank and not self.can_rerank:
            raise VtrError(self.NO_RERANK)
        itm: dict[int, float | None] = {}  # window id -> ITM score (None: could not be decoded again)
        while True:
            # Grouping merges windows into segments, so k segments may need more than n windows: widen until
            # there are k, or the index (under the filters) has no more.
            scores, ids = self._search_windows(q, n_windows, path_glob, min_duration, max_duration, since, until)
            if example and len(ids):
                scores = self._cosine(ids, q)
            if rerank and text_out is not None:
                segments = self._reranked(text_out, ids, k, max(int(rerank_top), 2 * k), merge_margin, itm,
                                          progress)
            else:
                segments = self._group(ids, scores, k, merge_margin)
            if len(segments) >= k or len(ids) < n_windows or windows is not None:
                return segments
            n_windows *= 2

    def _indexed_file(self, path):
        """The catalog's row of ``path``, or of a file with its content (a copy, a link); None when neither."""
        from index.catalog import quick_hash

        path = os.path.abspath(os.path.expanduser(str(path)))
        row = self.catalog.file_by_path(path)
        if row is None and os.path.isfile(path):
            row = next(iter(self.catalog.files_by_content(quick_hash(path), os.path.getsize(path))), None)
        return row

    def moment_windows(self, path, start: float, end: float | None = None) -> list[int]:
        """Ids of the windows of the indexed video ``path`` that make the moment ``start``–``end`` seconds: those
        more than half inside it, or it more than half inside them (a search result's span gives its windows);
        ``end`` None: those holding the second ``start``; none of them: the nearest window. A path the index does
        not hold is found by its content (a copy, a link). Raises VtrError when the index holds neither."""
        return self._windows_of_moment(self._indexed_file(path), path, start, end)

    def _windows_of_moment(self, row, path, start, end) -> list[int]:
        """:meth:`moment_windows` of the catalog's ``row`` for ``path`` (None: the index holds no such video)."""
        start = float(start)
        end = start if end is None else float(end)
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            what = f"{start:g}" if end == start else f"{start:g} to {end:g}"
            raise VtrError(f"a moment is seconds from the video's start, 0 or more, its end not before its start: "
                           f"not {what}")
        if row is None:
            raise VtrError(f"{os.path.abspath(os.path.expanduser(str(path)))} is not in this index, nor a copy of a "
                           "video it holds: index it first (`vtr index build`), or search by the clip itself")
        windows = self.catalog.windows_of(row.id)
        if not windows:
            why = f": {row.error}" if row.error else ""
            raise VtrError(f"{row.path} has no indexed moments ({row.status}{why})")
        length = max(row.duration or 0.0, windows[-1].end)
        if start > length + 0.5:
            raise VtrError(f"{Path(row.path).name} is {length:.1f} s long: there is no moment at {start:g} s")
        if end > start:  # the windows more than half inside the span (or the span more than half inside them)
            inside = [w.id for w in windows
                      if min(w.end, end) - max(w.start, start) > 0.5 * min(w.end - w.start, end - start)]
        else:
            inside = [w.id for w in windows if w.start <= start < w.end]
        if not inside:  # in no window (the very end, a gap): the nearest
            inside = [min(windows, key=lambda w: max(w.start - end, start - w.end)).id]
        return inside

    def similar(self, path, start: float, end: float | None = None, k: int = 10, path_glob: str | None = None,
                min_duration: float | None = None, max_duration: float | None = None, merge_margin: float = 0.02,
                since: float | None = None, until: float | None = None) -> list[Segment]:
        """Top ``k`` moments like ``start``–``end`` seconds of the indexed video ``path`` (``end`` None: the moment
        at ``start``), from the index's own vectors: no model is loaded. The query is the mean of that moment's
        window vectors, scored against every window clip to clip (cosine, as for an example). The moment itself is
        left out: every window of its video, or of a copy of it, that overlaps it. Filters as for :meth:`search`.

        A video the index does not hold (nor a copy of it), with ``end`` None: its window around second ``start``
        (the index's window length) is encoded with the model, as an example."""
        if int(k) < 1:
            raise VtrError(f"k is the number of moments to show: at least 1, not {k}")
        _check_filters(min_duration, max_duration, since, until)
        self._follow()
        row = self._indexed_file(path)
        if row is None and _is_file(os.path.expanduser(str(path))) and end is None:
            # a video the index does not hold: its window around that second, encoded as an example
            q = self.encode_example(os.path.expanduser(str(path)), at=start)
            return self.search(q / max(float(np.linalg.norm(q)), 1e-12), k=k, path_glob=path_glob,
                               min_duration=min_duration, max_duration=max_duration, merge_margin=merge_margin,
                               since=since, until=until, kind="example")
        own = self._windows_of_moment(row, path, start, end)
        rows = self.catalog.windows_by_ids(own)
        video = next(iter(rows.values()))[1]
        first, last = min(w.start for w, _ in rows.values()), max(w.end for w, _ in rows.values())
        left_out = {w.id for f in (self.catalog.files_by_content(video.hash, video.size) or [video])
                    for w in self.catalog.windows_of(f.id) if w.start < last and w.end > first}
        _, vectors = _unzip(self.catalog.iter_vectors(own))
        q = np.mean([v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors], axis=0).astype(np.float32)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        n_windows = max(5 * int(k), 50) + len(left_out)
        while True:
            _, ids = self._search_windows(q, n_windows, path_glob, min_duration, max_duration, since, until)
            found = len(ids)
            ids = np.asarray([i for i in ids if int(i) not in left_out], np.int64)
            segments = self._group(ids, self._cosine(ids, q), int(k), merge_margin)
            if len(segments) >= k or found < n_windows:
                return segments
            n_windows *= 2

    def _cosine(self, ids, q) -> np.ndarray:
        """Clip against clip: each window's cosine with the unit ``q``, so a window's norm (how alike its frames
        are) does not outweigh its direction."""
        vecs = dict(zip(*_unzip(self.catalog.iter_vectors(ids))))
        return np.asarray([float(vecs[int(i)] @ q) / max(float(np.linalg.norm(vecs[int(i)])), 1e-12) for i in ids],
                          np.float32)

    def _reranked(self, text_out, ids, k, n_candidates, merge_margin, itm, progress=False) -> list[Segment]:
        """The best ITC candidates re-scored by ITM, widened until they group into ``k`` segments (or run out)."""
        while True:
            candidates = [int(i) for i in ids[:n_candidates]]
            todo = [i for i in candidates if i not in itm]
            if todo:
                kept, scores = self._rerank(text_out, np.asarray(todo, np.int64), progress)
                itm.update(dict.fromkeys(todo))
                itm.update({int(i): float(s) for i, s in zip(kept, scores)})
            good = [i for i in candidates if itm[i] is not None]
            segments = self._group(np.asarray(good, np.int64), np.asarray([itm[i] for i in good], np.float32), k,
                                   merge_margin)
            if len(segments) >= k or n_candidates >= len(ids):
                return segments
            n_candidates *= 2

    def _search_windows(self, q, n, path_glob, min_duration, max_duration, since=None, until=None):
        if path_glob is None and min_duration is None and max_duration is None and since is None and until is None:
            scores, ids = self.store.search(q[None], n)
            keep = ids[0] >= 0
            return scores[0][keep], ids[0][keep]
        allowed = self.catalog.window_ids_matching(path_glob, min_duration, max_duration, since, until)
        if len(allowed) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        found = self.store.search_allowed_exactly(q[None], n, allowed)  # Flat, IVF…,Flat: exact and fast
        if found is None and len(allowed) > EXACT_FILTERED_MAX:
            found = self.store.search(q[None], n, allowed_ids=allowed)  # approximate, as the index itself
        if found is not None:
            scores, ids = found
            keep = ids[0] >= 0
            return scores[0][keep], ids[0][keep]
        # HNSW, PQ, ...: the allowed windows scored exactly, from the catalog's vectors
        all_ids, all_scores = [], []
        for chunk_ids, vecs in self.catalog.iter_vectors(allowed):
            all_ids.append(chunk_ids)
            all_scores.append(vecs @ q)
        ids, scores = np.concatenate(all_ids), np.concatenate(all_scores)
        top = np.argsort(-scores, kind="stable")[:n]
        return scores[top], ids[top]

    #: Windows a re-ranking encodes together on a GPU, which wants batches (not measured: no GPU run yet). On a CPU
    #: it encodes one at a time: on a 2-core Zen 3 a release-size window took 3.49 s encoded 4 to a call and 3.33 s
    #: alone (``python -m bench.rerank``, bench/README.md), so batching buys nothing there.
    RERANK_BATCH_CUDA = 4

    def _rerank(self, text_out, ids, progress=False, batch: int | None = None):
        """Score candidate windows with the ITM head: decode their frames again, encode them with their tokens,
        ``batch`` windows at a time (default: 1 on a CPU, ``RERANK_BATCH_CUDA`` on a GPU), and score each against
        the query."""
        import torch
        from tqdm import tqdm

        from vtr.data.video import open_video

        rows = self.catalog.windows_by_ids(ids)
        model = self.model
        pre = self.preprocess
        if batch is None:
            batch = self.RERANK_BATCH_CUDA if next(model.parameters()).device.type == "cuda" else 1
        batch = max(1, int(batch))
        kept, scores = [], []
        left_out: dict[str, int] = {}  # path -> moments left out
        why: dict[str, str] = {}  # path -> the reader's reason
        gone: set[str] = set()  # files that would not open: tried once, not once per window
        pending: list[tuple[int, torch.Tensor]] = []  # (window id, [1, T, 3, h, w]) decoded, not yet encoded

        def score(bar):
            if not pending:
                return
            video = self._encode(torch.cat([clip for _, clip in pending]), return_tokens=True)
            n = len(pending)
            with torch.inference_mode():  # each window its own video: nothing for itm_score_pairs to share
                s = model.itm_score(text_out.hidden.expand(n, -1, -1), text_out.attention_mask.expand(n, -1),
                                    video.tokens)
            kept.extend(wid for wid, _ in pending)
            scores.extend(float(x) for x in s.float().cpu())
            bar.update(len(pending))
            pending.clear()

        with tqdm(total=len(ids), desc="re-ranking with the matching head", unit="moment", disable=not progress,
                  dynamic_ncols=True) as bar:
            for wid in ids:
                wrow, frow = rows[int(wid)]
                path = frow.path
                if path in gone:
                    left_out[path] += 1
                    bar.update(1)
                    continue
                try:
                    reader = open_video(path, backend=VIDEO_BACKEND)
                except Exception as e:  # noqa: BLE001 - a file that vanished or changed since indexing
                    gone.add(path)
                    left_out[path], why[path] = 1, str(e)
                    bar.update(1)
                    continue
                try:
                    with reader:  # the frames the index embedded
                        idx = window_frame_indices(Window(wrow.start, wrow.end), reader.clock(), pre.num_frames)
                        clip = reader.get_frames(idx).permute(0, 3, 1, 2).contiguous()
                except Exception as e:  # noqa: BLE001 - this window no longer decodes; the file's others may
                    left_out[path] = left_out.get(path, 0) + 1
                    why[path] = f"{e} (at {wrow.start:.1f}-{wrow.end:.1f} s)"
                    bar.update(1)
                    continue
                pending.append((int(wid), self.preprocess(clip.unsqueeze(0))))  # at the model's size: any source
                if len(pending) == batch:
                    score(bar)
            score(bar)
        for path, n in left_out.items():  # after the bar, once per file
            logger.warning("rerank: %d moment%s of %s left out, %s cannot be read now: %s", n, "" if n == 1 else "s",
                           path, "the file" if path in gone else "its frames", why[path])
        return np.asarray(kept, np.int64), np.asarray(scores, np.float32)

    def _group(self, ids, scores, k, merge_margin) -> list[Segment]:
        rows = self.catalog.windows_by_ids(ids)
        per_file: dict[int, list] = {}
        files = {}
        for wid, score in zip(ids, scores):
            if int(wid) not in rows:
                continue
            wrow, frow = rows[int(wid)]
            per_file.setdefault(frow.id, []).append((int(wid), wrow.start, wrow.end, float(score)))
            files[frow.id] = frow
        found = []  # (segment, its file's content hash)
        dates = self.catalog.recorded_of(per_file)
        for file_id, hits in per_file.items():
            recorded, recorded_by = dates.get(file_id, (None, None))
            for start, end, score, members in merge_segments(hits, merge_margin):
                best = max(members, key=lambda h: h[3])
                thumb = thumbnail_path(self.dir, best[0])
                found.append((Segment(
                    path=files[file_id].path, start=start, end=end, score=score,
                    windows=[{"id": h[0], "start": h[1], "end": h[2], "score": h[3]} for h in members],
                    thumbnail=str(thumb) if thumb.is_file() else None, recorded=recorded, recorded_by=recorded_by),
                    files[file_id].hash))
        found.sort(key=lambda pair: -pair[0].score)
        return _fold_copies(found)[:k]


def _fold_copies(found: list[tuple[Segment, str | None]]) -> list[Segment]:
    """One segment per moment of a video kept in several places (a backup, a copy exported again): ``found`` is
    ``(segment, its file's content hash)``, best first; segments of the same content over the same span are one
    result, the first (the best; among equals, the first found) naming the others in ``copies``. Copies hold the
    same frames, so their windows, vectors and scores are the same."""
    kept, first = [], {}
    for seg, digest in found:
        key = (digest, round(seg.start, 3), round(seg.end, 3)) if digest else None
        if key is not None and key in first:
            first[key].copies.append(seg.path)
            continue
        if key is not None:
            first[key] = seg
        kept.append(seg)
    return kept


def _unzip(chunks):
    ids, vecs = [], []
    for chunk_ids, chunk_vecs in chunks:
        ids.extend(int(i) for i in chunk_ids)
        vecs.extend(chunk_vecs)
    return ids, vecs


def search(index: str, query, k: int = 10, model=None, **kwargs) -> list[Segment]:
    """One-shot search; see :meth:`VideoIndex.search` (open a :class:`VideoIndex` to search repeatedly)."""
    with VideoIndex(index, model=model) as idx:
        return idx.search(query, k=k, **kwargs)
