"""Decoding windows in worker processes, so that one bad or hanging file cannot stall or crash a build.

Work is cut into *tasks*: ``(file, chunk)`` with up to ``chunk_windows`` windows each. A task opens the file,
plans its windows (:mod:`index.windows`), decodes the frames of its chunk (large sources scaled by the decoder
first: :func:`decoder_size`), resizes them to the model's resolution (uint8, so little is sent between processes) and encodes one JPEG thumbnail per window (the window's
middle sampled frame). The first chunk tells how many chunks the file has as soon as it has opened the file; the
others are queued then, and decoded by the other workers beside it.

:class:`DecodePool` runs tasks in ``workers`` spawned processes; by default (``workers=None``) it starts two and
starts more while the builder waits for decoded windows (:func:`auto_worker_cap`). Each worker has its own pipes, so
the pool always knows which task each worker is on: a task running longer than ``timeout_s`` gets its worker killed
and its file failed ("timed out"); a worker that dies (a decoder segfault) fails its current file ("decoder process
crashed") and is replaced; other files carry on. A worker's send blocks until the builder takes the result, so
memory stays bounded by about two chunks per worker however slow the encoder is. ``workers=0`` decodes in the
calling process (no timeout; for debugging).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Iterator

import numpy as np

from index.policies import (DETECT_SIZE, count_chunks, find_cuts, grid_fps, grid_frames, nearest_on_grid,
                            plan_chunk_windows, plan_shot_windows, shot_span)
from index.windows import DEFAULT_STRIDE_S, DEFAULT_WINDOW_S, plan_windows, window_frame_indices

logger = logging.getLogger(__name__)

THUMB_WIDTH = 160

#: The decoder of everything the index reads from people's videos (windows, thumbnails cut later, re-ranking, example
#: clips): PyAV, whose reads drop the frames no wanted frame needs (vtr.data.video.SKIP_CODECS; about half of
#: ordinary H.264/HEVC footage) and share one colour converter. It decodes a chunk's windows in about half of decord's
#: time, a chunk with its cut detection in 0.67-0.80x, and reads MPEG-TS, MPEG-PS and AVI with B-frames right, where
#: decord 0.6 returns other frames (bench/README.md, fourteenth round).
VIDEO_BACKEND = "pyav"

#: Decode workers an automatic pool (``workers=None``) starts with: the fixed default before, which keeps two cores
#: busy with the release model (bench/README.md, thirty-first round).
AUTO_START = 2
#: Another worker starts when the builder waited for decoded windows this share of the time (or more) while tasks
#: waited for a worker. Where the encoder runs elsewhere (a GPU) or is cheap, decoding is what a build waits for.
STARVED_SHARE = 0.15
#: The least time a measurement of that share lasts; it starts once every worker busy since the last start has
#: delivered a chunk (a new worker's first chunk takes a chunk's decode time: 5-20 s at 720p).
GROW_AFTER_S = 2.0
#: A worker is started only while this much memory is available (a worker holds about 0.33 GB at 720p:
#: WORKER_BYTES, rounded up).
GROW_MEMORY_BYTES = 2 << 30
WORKER_BYTES = 400 << 20


def auto_worker_cap() -> int:
    """The most decode workers an automatic pool grows to: the cores this process may use less one for the process
    that embeds, split between the processes of a torchrun job on this node (LOCAL_WORLD_SIZE); at least
    :data:`AUTO_START`."""
    from vtr.device import usable_cores

    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(AUTO_START, usable_cores() // local - 1)


def auto_start(device) -> int:
    """Decode workers an automatic pool starts with for an encoder on ``device``: :data:`AUTO_START` on a CPU, where
    the encoder needs the cores too and the pool grows if it waits; on a GPU every worker :func:`auto_worker_cap`
    allows while memory does (:data:`WORKER_BYTES` each, :data:`GROW_MEMORY_BYTES` kept free). There the encoder
    is 60-90x faster than a decode worker (bf16 VideoMamba-M 9.1 ms a clip on an H200 at batch 8, against 0.5-0.8
    CPU-s to decode a window of a phone's 720p: bench/README.md, seventeenth, twenty-ninth and thirty-second rounds),
    so decoding is what a build waits for from its start, and growing from two would wait a chunk's decode (5-20 s)
    first."""
    from vtr.device import device_type

    if device_type(device) != "cuda":
        return AUTO_START
    cap, memory = auto_worker_cap(), _memory_available()
    if memory is not None:
        cap = min(cap, max(AUTO_START, (memory - GROW_MEMORY_BYTES) // WORKER_BYTES))
    return cap


def _memory_available() -> int | None:
    """Bytes of memory available to new processes (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class DecodeSettings:
    num_frames: int = 8
    img_size: int = 224
    window_s: float = DEFAULT_WINDOW_S
    stride_s: float = DEFAULT_STRIDE_S
    chunk_windows: int = 16
    thumbnails: bool = True
    window_policy: str = "stride"  # see index.policies
    antialias: bool = True  # the model's resize (vtr.models.retrieval.Preprocess.antialias), as in the manifest
    # Sources larger than twice the model's size are scaled by the decoder first for weights that antialias (see
    # decoder_size); False: every frame is converted to RGB at full resolution and only Preprocess resizes (what
    # evaluation does).
    decoder_scale: bool = True
    # shots: cut detection and the windows' frames from one decoding pass of a grid of 4 or more frames a second
    # (index.policies, "one pass"); False: two passes, cut detection on cheap frames and then each window's own
    # sampled frames (the shots policy before the twenty-eighth round; benches compare the two)
    one_pass: bool = True
    # Codec threads per decode worker (0: FFmpeg's automatic count, one per core). One: the workers decode beside
    # an encoder that already uses every core, so more threads only preempt it (bench/README.md, issue 14).
    decoder_threads: int = 1
    video_backend: str = VIDEO_BACKEND  # or "auto", "decord", as open_video takes them (benches compare them)

    @property
    def preprocess(self):
        """The model's preprocessing, the one owner of how frames are resized (normalising happens at embedding)."""
        from vtr.models.retrieval import Preprocess

        return Preprocess(num_frames=self.num_frames, img_size=self.img_size, antialias=self.antialias)


@dataclass
class ChunkResult:
    """Decoded windows ``[first, first + n)`` of a file."""

    key: object  # the caller's file key
    path: str
    meta: dict  # num_frames, fps, duration, width, height
    n_windows: int  # in the whole file; -1 when the window policy plans chunk by chunk (shots)
    n_chunks: int
    chunk: int
    windows: list  # [(start, end)] seconds
    frames: np.ndarray  # uint8 [n, T, 3, S, S]
    thumbnails: list = field(default_factory=list)  # JPEG bytes per window
    partial: str | None = None  # why some planned windows of this chunk are missing (damaged file), else None
    planned: int = 0  # windows the chunk was planned with (before a damaged file lost some)


@dataclass
class FileFailure:
    key: object
    path: str
    reason: str


def encode_jpeg(rgb: np.ndarray, width: int = THUMB_WIDTH, pixel_aspect: float = 1.0,
                colors: np.ndarray | None = None) -> bytes:
    """uint8 [H, W, 3] → JPEG bytes (PyAV's mjpeg encoder), scaled to ``width`` keeping the aspect ratio the frame
    is shown at (``pixel_aspect``: :attr:`vtr.data.video.VideoReader.pixel_aspect`; HDV's circles stay round), in
    the colours players show (``colors``: :attr:`vtr.data.video.VideoReader.shown_colors`, applied to the RGB)."""
    import fractions

    import av

    if colors is not None:
        rgb = np.clip(rgb.astype(np.float32) @ colors.T.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)

    width, height = _thumbnail_size(rgb, width, pixel_aspect)
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame = frame.reformat(width=width, height=height, format="yuvj420p", interpolation="AREA")
    packets = list(ctx.encode(frame)) + list(ctx.encode(None))
    return b"".join(bytes(p) for p in packets)


def thumbnail_rgb(rgb: np.ndarray, width: int = THUMB_WIDTH, pixel_aspect: float = 1.0,
                  reformatter=None) -> np.ndarray:
    """``rgb`` scaled to the size of its :func:`encode_jpeg` thumbnail (square pixels): what a thumbnail needs of a
    frame, under a third of a model-size frame's bytes. ``encode_jpeg(thumbnail_rgb(rgb, ...), colors=...)`` is its
    thumbnail, within rounding (the colours applied after the scaling instead of before). ``reformatter``: a PyAV
    VideoReformatter kept for many frames (a frame's own reformat builds a swscale context each time: 4× the
    time at 796×448)."""
    import av
    from av.video.reformatter import VideoReformatter

    width, height = _thumbnail_size(rgb, width, pixel_aspect)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return (reformatter or VideoReformatter()).reformat(frame, width=width, height=height,
                                                        interpolation="AREA").to_ndarray()


def _thumbnail_size(rgb: np.ndarray, width: int, pixel_aspect: float) -> tuple[int, int]:
    h, w = rgb.shape[:2]
    shown_w = w * pixel_aspect
    width = min(width, max(2, int(round(shown_w))))
    height = max(2, int(round(h * width / shown_w / 2)) * 2)
    return max(2, width // 2 * 2), height


def decoder_size(width: int, height: int, img_size: int, antialias: bool = True) -> tuple[int, int] | None:
    """(width, height) the decoder scales a ``width × height`` source to before the model's resize: short side
    ``2 · img_size``, aspect kept. None (decode as it is) when the short side is not above that, or for weights
    whose resize does not antialias (``antialias=False``, the release).

    Why 2×: the final S×S resize stays :meth:`Preprocess.resize` (its bicubic, antialiased) on a 2× oversampled
    frame, so what the model sees moves little (tests/index/test_decode_size.py states the tolerance), while the
    RGB conversion and the float resize no longer run at 720p/1080p/4K (swscale scales in the same pass as its
    YUV→RGB conversion, in the decoder's thread). Why not without antialias: that resize point-samples the full
    frame and aliases, which a low-passed decoder scale cannot reproduce (mean pixel difference 13/255, embedding
    cosine 0.977 on the test model, against 1.8/255 and 0.9992 with antialias).
    """
    short = 2 * int(img_size)
    if not antialias or min(width, height) <= short:
        return None
    f = short / min(width, height)
    return (max(short, int(round(width * f))), max(short, int(round(height * f))))


def decode_chunk(path: str, chunk: int, settings: DecodeSettings, key=None, on_plan=None) -> ChunkResult:
    """Open ``path`` and decode chunk ``chunk`` of its windows (raises VideoReadError/any error on failure).

    A file damaged or cut short in the middle keeps the windows that decode (see :func:`_salvage`); the result
    says why the others are missing (``partial``). ``on_plan(n_chunks)`` is called once the file is open, before
    any frame is decoded, with the number of chunks the result will give (the pool queues the others then).
    """
    import torch

    from vtr.data.video import open_video
    from vtr.errors import VideoReadError

    pre = settings.preprocess
    partial = None
    with open_video(path, backend=settings.video_backend, threads=settings.decoder_threads) as reader:
        clock = reader.clock()  # frames on the player's clock, also when the frame rate varies
        meta = {"num_frames": clock.num_frames, "fps": float(reader.fps), "duration": clock.duration,
                "width": int(reader.width), "height": int(reader.height),
                "timed_by_count": reader.timed_by_count}
        if on_plan is not None:
            on_plan(count_chunks(meta["duration"], settings.window_policy, settings.window_s, settings.stride_s,
                                 settings.chunk_windows))
        pixel_aspect, colors = reader.pixel_aspect, reader.shown_colors
        size = (decoder_size(reader.width, reader.height, settings.img_size, settings.antialias)
                if settings.decoder_scale else None)
        if settings.window_policy == "shots" and settings.one_pass:
            one = _shots_in_one_pass(reader, clock, meta["duration"], chunk, settings, size)
            if one is not None:
                part, frames, thumbs, n_chunks = one
                if chunk == n_chunks - 1:
                    partial = _cut_short_reason(path, meta["duration"])
                return _result(key, path, meta, -1, n_chunks, chunk, part, frames, thumbs, partial, settings)
        part, n_windows, n_chunks = plan_chunk_windows(path, meta["duration"], settings.window_policy,
                                                       settings.window_s, settings.stride_s, chunk,
                                                       settings.chunk_windows)
        planned = len(part)
        if settings.window_policy == "stride":  # the file's whole plan: which chunk owns a damaged file's tail
            windows, lo = plan_windows(meta["duration"], settings.window_s, settings.stride_s), \
                chunk * settings.chunk_windows
        else:  # shots: chunks are disjoint spans of time, planned alone; this span is all there is to see
            windows, lo = part, 0
        per_window = [window_frame_indices(w, clock, settings.num_frames) for w in part]
        wanted = sorted({i for idx in per_window for i in idx})
        try:
            decoded = reader.get_frames(wanted, size=size)  # uint8 [N, H, W, 3]
        except VideoReadError as e:
            part, per_window, partial = _salvage(reader, windows, lo, part, per_window, settings, e)
            wanted = sorted({i for idx in per_window for i in idx})
            decoded = reader.get_frames(wanted, size=size) if wanted else None
    if partial is None and chunk == n_chunks - 1:  # once per file: its last chunk says what its tail lacks
        partial = _cut_short_reason(path, meta["duration"])
    pos = {i: k for k, i in enumerate(wanted)}
    frames, thumbs = [], []
    for idx in per_window:
        clip = decoded[[pos[i] for i in idx]]  # [T, H, W, 3]
        frames.append(pre.resize(clip.permute(0, 3, 1, 2).contiguous()))
        if settings.thumbnails:
            thumbs.append(encode_jpeg(clip[len(idx) // 2].numpy(), pixel_aspect=pixel_aspect, colors=colors))
    return _result(key, path, meta, n_windows, n_chunks, chunk, part, frames, thumbs, partial, settings, planned)


def _result(key, path, meta, n_windows, n_chunks, chunk, part, frames, thumbs, partial, settings,
            planned=None) -> ChunkResult:
    import torch

    s = settings.img_size
    stacked = torch.stack(frames).numpy() if frames else np.zeros((0, settings.num_frames, 3, s, s), np.uint8)
    return ChunkResult(key=key, path=path, meta=meta, n_windows=n_windows, n_chunks=n_chunks, chunk=chunk,
                       windows=[(w.start, w.end) for w in part], frames=stacked, thumbnails=thumbs,
                       partial=partial, planned=len(part) if planned is None else planned)


def _shots_in_one_pass(reader, clock, duration: float, chunk: int, settings: DecodeSettings, size):
    """The ``shots`` policy's span ``chunk`` from one decoding pass (:mod:`index.policies`, "one pass"):
    ``(windows, frames [T, 3, S, S] per window, thumbnails, number of spans)``, or None when the grid's frames do
    not all decode (a damaged file: the two passes then salvage what decodes, :func:`_salvage`).

    Of each grid frame only what is used stays while the span decodes (:class:`_GridCopies`): the model's S×S copy,
    cut detection's 32×18 one and the thumbnail's (about 0.2 MB at S = 224: a span of the defaults, 128 s at 4
    frames a second, holds 100 MB)."""
    import torch

    from vtr.errors import VideoReadError

    lo, hi, n_chunks = shot_span(duration, settings.window_s, chunk, settings.chunk_windows)
    try:
        grid = grid_frames(clock, lo, hi, grid_fps(settings.num_frames, settings.window_s))
    except ValueError:  # a span past the clock's last frame: the two passes say what is wrong
        return None
    if not grid:
        return None
    copies = _GridCopies(len(grid), settings, reader.pixel_aspect)
    try:
        kept = reader.map_frames(grid, copies.keep, size=size)  # a row of copies per grid frame
    except VideoReadError as e:
        logger.debug("%s [%.1f, %.1f) does not decode in one pass (%s): two passes", reader.name, lo, hi, e.cause)
        return None
    row = dict(zip(grid, kept))
    detect = [i for i in grid_frames(clock, lo, hi) if i in row]  # DETECT_FPS: the grid's frames or some of them
    times = np.asarray([clock.time_of(i) for i in detect])
    cuts = find_cuts(times, copies.small[[row[i] for i in detect]]) if detect else []
    part = plan_shot_windows(hi, cuts, settings.window_s, start=lo)
    frames, thumbs = [], []
    for window in part:
        idx = nearest_on_grid(window_frame_indices(window, clock, settings.num_frames), window, grid, clock)
        frames.append(torch.from_numpy(copies.model[[row[i] for i in idx]]))
        if settings.thumbnails:
            thumbs.append(encode_jpeg(copies.thumbnail(row[idx[len(idx) // 2]]), colors=reader.shown_colors))
    return part, frames, thumbs, n_chunks


class _GridCopies:
    """What the one pass keeps of each grid frame, in rows of arrays allocated before decoding starts.

    Each frame's copies are small beside what making them frees again (the 796×448 float frame of the model's
    resize, 4 MB): allocated one by one, under vtr's malloc settings (no ``mmap``, nothing handed back:
    ``vtr._keep_freed_memory``) each landed in the hole the last frame's temporaries left, so the next frame's
    could not reuse it and the heap grew by 4 MB a frame (2.1 GB at peak for a 128 s span of 720p, against 0.7 GB
    in two passes and 0.4 GB now). :meth:`keep` returns a row number; rows past the planned count (a decode that
    starts over) grow the arrays."""

    def __init__(self, n: int, settings: DecodeSettings, pixel_aspect: float):
        from av.video.reformatter import VideoReformatter

        s = settings.img_size
        self.pre, self.thumbnails, self.pixel_aspect = settings.preprocess, settings.thumbnails, pixel_aspect
        self.model = np.empty((n, 3, s, s), np.uint8)
        self.small = np.empty((n, DETECT_SIZE[1], DETECT_SIZE[0], 3), np.uint8)
        self.thumbs = None  # [n, h, w, 3], sized by the first frame; another size (a stream that changes) aside
        self.odd: dict[int, np.ndarray] = {}
        self.rows = 0
        self.to_thumbnail = VideoReformatter()  # one swscale context for the span

    def keep(self, rgb: np.ndarray) -> int:
        import torch

        k = self.rows
        self.rows += 1
        if k == len(self.model):
            self.model, self.small = (np.concatenate([a, np.empty_like(a)]) for a in (self.model, self.small))
            if self.thumbs is not None:
                self.thumbs = np.concatenate([self.thumbs, np.empty_like(self.thumbs)])
        model = self.pre.resize(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous())
        self.model[k] = model.numpy()
        # cut detection's frame from the model's (squashed: differences and histograms do not see the aspect)
        w, h = DETECT_SIZE
        small = torch.nn.functional.adaptive_avg_pool2d(model[None].float(), (h, w))[0]
        self.small[k] = small.round_().to(torch.uint8).permute(1, 2, 0).numpy()
        if self.thumbnails:
            thumb = thumbnail_rgb(rgb, pixel_aspect=self.pixel_aspect, reformatter=self.to_thumbnail)
            if self.thumbs is None:
                self.thumbs = np.empty((len(self.model), *thumb.shape), np.uint8)
            if thumb.shape == self.thumbs.shape[1:]:
                self.thumbs[k] = thumb
            else:
                self.odd[k] = thumb
        return k

    def thumbnail(self, k: int) -> np.ndarray:
        return self.odd[k] if k in self.odd else self.thumbs[k]


def _salvage(reader, windows, lo, part, per_window, settings, error):
    """The windows of a chunk that still decode after ``error``: each one tried alone; and, when the decoder told
    how far the file decodes from its start, one last window ending there (owned by the chunk holding the first
    window that reaches past it). Returns ``(windows, frame indices, reason)``."""
    from vtr.errors import VideoReadError

    kept, kept_idx = [], []
    for w, idx in zip(part, per_window):
        try:
            reader.get_frames(idx)
        except VideoReadError:
            continue
        kept.append(w)
        kept_idx.append(idx)
    n = error.decodable_frames
    clock = reader.clock()
    duration = clock.duration
    if n:
        last = clock.time_of(n)
        first_past = next((j for j, w in enumerate(windows)
                           if max(window_frame_indices(w, clock, settings.num_frames)) >= n), None)
        tail = plan_windows(last, settings.window_s, settings.stride_s)[-1]
        # windows[0] starts before the damage: the whole file's plan, or (shots) the span that holds it
        if (first_past is not None and lo <= first_past < lo + len(part) and windows[0].start < last
                and all(w.end < tail.end for w in kept)):
            idx = window_frame_indices(tail, clock.truncated(n), settings.num_frames)
            try:
                reader.get_frames(idx)
            except VideoReadError:
                pass
            else:
                kept.append(tail)
                kept_idx.append(idx)
        reason = f"the video cannot be decoded past {last:.1f} s of {duration:.1f} s (damaged or cut short)"
    else:
        reason = f"some of the video cannot be decoded (damaged): {error.cause}"
    order = sorted(range(len(kept)), key=lambda k: (kept[k].start, kept[k].end))
    return [kept[k] for k in order], [kept_idx[k] for k in order], reason


def _cut_short_reason(path: str, seconds: float) -> str | None:
    """Why a file whose packets stop long before its header's duration is listed as indexed in part (None when it
    is whole): nothing fails while decoding such a file, so without this it would look complete."""
    from vtr.data.video import cut_short

    short = cut_short(path, seconds)
    if short is None:
        return None
    # short: the app's table shows it in one cell (an interrupted copy or download; or damage that hides the rest)
    return f"the file stops at {short[0]:.1f} s of the {short[1]:.1f} s its header declares (cut short or damaged)"


def _reason(e: BaseException) -> str:
    from vtr.errors import VideoReadError

    if isinstance(e, VideoReadError):
        return e.cause
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]


def _worker_main(task_conn, result_conn, settings: DecodeSettings):
    import signal

    import torch

    # A terminal's Ctrl-C reaches the whole process group: the build stops its workers itself, and each worker's
    # KeyboardInterrupt traceback was printed above the build's one-line message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    while True:
        try:
            task = task_conn.recv()
        except EOFError:
            return
        if task is None:
            return
        tid, key, path, chunk = task
        result_conn.send(("start", tid))
        try:
            plan = (lambda n, tid=tid: result_conn.send(("plan", tid, n))) if chunk == 0 else None
            result = decode_chunk(path, chunk, settings, key=key, on_plan=plan)
        except Exception as e:  # noqa: BLE001 - any failure of one file is reported, never fatal
            logger.debug("decode %s failed: %s", path, traceback.format_exc())
            result_conn.send(("error", tid, _reason(e)))
        else:
            result_conn.send(("ok", tid, result))


class _Worker:
    def __init__(self, ctx, settings):
        self.task_recv, self.task_send = ctx.Pipe(duplex=False)
        self.result_recv, self.result_send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_worker_main, args=(self.task_recv, self.result_send, settings), daemon=True)
        self.process.start()
        self.assigned: deque = deque()  # task ids, in the order the worker runs them
        self.started_at: float | None = None  # when the current (first assigned) task started
        self.delivered = 0  # tasks finished

    def kill(self):
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        for c in (self.task_recv, self.task_send, self.result_recv, self.result_send):
            c.close()


class DecodePool:
    """Decode files' windows in worker processes; iterate :meth:`run` for ChunkResult / FileFailure events."""

    def __init__(self, settings: DecodeSettings, workers: int | None = None, timeout_s: float = 120.0,
                 per_worker: int = 2, start: int | None = None):
        self.settings = settings
        self.workers = None if workers is None else int(workers)  # None: automatic (AUTO_START, more when waited on)
        self.start = start  # workers an automatic pool starts with (None: AUTO_START; see auto_start)
        self.timeout_s = float(timeout_s)
        self.per_worker = int(per_worker)
        self.peak_workers = 0  # the most worker processes the last run had at once

    def run(self, files: list[tuple]) -> Iterator[ChunkResult | FileFailure]:
        """files: ``[(key, path)]`` or ``[(key, path, chunks)]``. Yields every chunk of every good file and one
        FileFailure per bad file; ``chunks`` (a list of chunk numbers) decodes only those, e.g. what an interrupted
        build left to do."""
        if self.workers is not None and self.workers <= 0:
            yield from self._run_inline(files)
            return
        yield from self._run_pool(files)

    def _run_inline(self, files):
        for key, path, *only in files:
            try:
                if only and only[0] is not None:
                    chunks = [decode_chunk(path, c, self.settings, key=key) for c in only[0]]
                else:
                    first = decode_chunk(path, 0, self.settings, key=key)
                    chunks = [first] + [decode_chunk(path, c, self.settings, key=key)
                                        for c in range(1, first.n_chunks)]
            except Exception as e:  # noqa: BLE001
                yield FileFailure(key, path, _reason(e))
                continue
            yield from chunks

    def _run_pool(self, files):
        pool = _PoolRun(self.settings, self.workers, self.timeout_s, self.per_worker, files, self.start)
        try:
            yield from pool.events()
        finally:
            self.peak_workers = pool.peak
            pool.shut_down()


class _PoolRun:
    """One :meth:`DecodePool.run` over worker processes: the task queue, the workers and what each is doing.

    A task is one chunk of one file. Chunk 0 of a file tells how many chunks it has once the file is open, before
    it decodes, so the others are queued then (unless the caller listed the chunks) and other workers decode them
    beside it. (They waited for chunk 0's whole result before, and a build of one file had one worker: a long file
    decoded on one core, 1.6-1.7x slower where decoding is what the build waits for; ``bench/README.md``,
    thirty-first round.) Each worker holds up to ``per_worker`` tasks; a worker
    that dies or overruns ``timeout_s`` fails the file of the task it was running and is replaced.

    ``workers=None`` starts :data:`AUTO_START` workers and more, up to :func:`auto_worker_cap`, while the caller
    waits for results and tasks wait for a worker (:meth:`grow`): on a GPU's host, or with a cheap encoder, decoding
    is what a build waits for, and two workers decoded about 3 windows a second of a phone's 720p.
    """

    def __init__(self, settings: DecodeSettings, workers: int | None, timeout_s: float, per_worker: int, files,
                 start: int | None = None):
        self.ctx = mp.get_context("spawn")  # fork would copy the encoder's threads and locks
        self.settings, self.timeout_s, self.per_worker = settings, timeout_s, per_worker
        self.pending: deque = deque()  # (tid, key, path, chunk)
        self.tasks: dict[int, tuple] = {}
        self.failed: set = set()
        self.next_tid = 0
        self.listed: set = set()  # files whose chunks were given: chunk 0 does not schedule the others
        self.planned: dict = {}  # file -> chunks queued when its chunk 0 said how many there are
        for key, path, *only in files:
            chunks = only[0] if only and only[0] is not None else [0]
            if only and only[0] is not None:
                self.listed.add(key)
            for c in chunks:
                self._queue(key, path, c)
        # as many workers as there are tasks, up to ``limit``; more start as chunks are queued (:meth:`assign`), and
        # an automatic pool raises ``limit`` up to ``cap`` while its caller waits (:meth:`grow`)
        self.cap = auto_worker_cap() if workers is None else max(1, workers)
        self.limit = min(start or AUTO_START, self.cap) if workers is None else self.cap
        self.workers = [_Worker(self.ctx, settings) for _ in range(min(self.limit, max(1, len(self.pending))))]
        self.peak = len(self.workers)
        self.outstanding = 0  # tasks queued or running
        self.startup_failures = 0
        # the caller's waits: time spent in events() since it last asked for one, summed over the measurement
        self.asked: float | None = None  # when the caller last asked for an event (None until it had one)
        self.waited = 0.0
        self.measuring_since: float | None = None  # None: not measuring (workers started since have not delivered)

    def _queue(self, key, path, chunk) -> None:
        self.pending.append((self.next_tid, key, path, chunk))
        self.next_tid += 1

    def events(self) -> Iterator[ChunkResult | FileFailure]:
        """Decode until every task is done, yielding results and failures as the workers report them."""
        self.assign()
        while self.outstanding or self.pending:
            by_conn = {w.result_recv: i for i, w in enumerate(self.workers)}
            sentinels = {w.process.sentinel: i for i, w in enumerate(self.workers)}
            ready = wait(list(by_conn) + list(sentinels), timeout=0.5)
            events = []
            dead = set()
            for obj in ready:
                if obj in by_conn:
                    i = by_conn[obj]
                    try:
                        self.receive(self.workers[i], events)
                    except (EOFError, OSError):
                        dead.add(i)
                else:
                    dead.add(sentinels[obj])
            for i in sorted(dead):
                self.workers[i].process.join(timeout=2)
                code = self.workers[i].process.exitcode
                events += self.fail_worker(i, f"decoder process crashed (exit code {code})")
            now = time.monotonic()
            for i, w in enumerate(self.workers):
                if w.started_at is not None and w.assigned and now - w.started_at > self.timeout_s:
                    events += self.fail_worker(i, f"timed out: decoding took longer than {self.timeout_s:g} s")
            self.assign()
            self.grow(now)
            for event in events:
                if self.asked is not None:
                    self.waited += time.monotonic() - self.asked
                yield event
                self.asked = time.monotonic()

    def grow(self, now: float) -> None:
        """An automatic pool's decision: when the caller waited for results at least :data:`STARVED_SHARE` of the
        last :data:`GROW_AFTER_S` or more while tasks waited for a worker, allow as many more workers as would have
        kept it busy (n / (1 - share), at least one more), up to ``cap`` and while memory allows. The measurement
        starts once every busy worker has delivered a chunk, so a worker still starting is not counted as missing."""
        if self.limit >= self.cap or self.asked is None:
            return
        if self.measuring_since is None:
            if all(w.delivered or not w.assigned for w in self.workers):
                self.measuring_since, self.waited, self.asked = now, 0.0, now  # the wait before it is not measured
            return
        span = now - self.measuring_since
        if span < GROW_AFTER_S:
            return
        share = min(1.0, (self.waited + max(0.0, now - self.asked)) / span)
        if share >= STARVED_SHARE and self.pending:
            memory = _memory_available()
            if memory is None or memory >= GROW_MEMORY_BYTES:
                n = len(self.workers)
                self.limit = min(self.cap, max(n + 1, math.ceil(n / max(1.0 - share, 0.1))))
                logger.info("decoding is what the encoder waits for (%.0f%% of %.1f s): up to %d decode workers",
                            100 * share, span, self.limit)
                self.measuring_since = None
                self.assign()
                return
        self.measuring_since, self.waited, self.asked = now, 0.0, now

    def assign(self) -> None:
        """Give the pending tasks (skipping those of files that already failed) to the least busy workers, up to
        ``per_worker`` each, starting another worker rather than queueing behind a busy one while fewer than
        ``limit`` run (a build of one long file has one task at first, chunk 0, and then its other chunks)."""
        while self.pending:
            w = min(self.workers, key=lambda w: len(w.assigned))
            if w.assigned and len(self.workers) < self.limit:
                w = _Worker(self.ctx, self.settings)
                self.workers.append(w)
                self.peak = max(self.peak, len(self.workers))
            if len(w.assigned) >= self.per_worker:
                return
            task = self.pending.popleft()
            if task[1] in self.failed:
                continue
            self.tasks[task[0]] = task
            w.assigned.append(task[0])
            w.task_send.send(task)
            self.outstanding += 1

    def receive(self, w: _Worker, events: list) -> None:
        """Append to ``events`` what the messages ``w`` has sent say; raises EOFError/OSError when it died (the
        events of the messages read before stay in ``events``)."""
        while w.result_recv.poll():
            msg = w.result_recv.recv()
            if msg[0] == "start":
                w.started_at = time.monotonic()
                continue
            if msg[0] == "plan":  # chunk 0 opened its file: the other chunks can start
                _, key, path, _ = self.tasks[msg[1]]
                if key not in self.listed and key not in self.failed and key not in self.planned:
                    self.planned[key] = msg[2]
                    for c in range(1, msg[2]):
                        self._queue(key, path, c)
                continue
            tid = w.assigned.popleft()
            assert tid == msg[1]
            w.delivered += 1
            _, key, path, chunk = self.tasks.pop(tid)
            self.outstanding -= 1
            w.started_at = None
            if key in self.failed:
                continue
            if msg[0] == "error":
                self.failed.add(key)
                events.append(FileFailure(key, path, msg[2]))
            else:
                result: ChunkResult = msg[2]
                if chunk == 0 and key not in self.listed:  # the chunks its plan did not queue (none, normally)
                    for c in range(self.planned.pop(key, 1), result.n_chunks):
                        self._queue(key, path, c)
                events.append(result)

    def fail_worker(self, i: int, reason: str) -> list:
        """The worker's current task fails its file; its other tasks go back to the queue."""
        w = self.workers[i]
        w.kill()
        events = []
        if w.started_at is None:  # died before starting a task: not a file's fault
            self.startup_failures += 1
            if self.startup_failures > 3:
                from vtr.errors import VtrError

                raise VtrError(f"video decoding worker processes die before decoding anything ({reason})")
        elif w.assigned:
            tid = w.assigned.popleft()
            _, key, path, _ = self.tasks.pop(tid)
            self.outstanding -= 1
            self.failed.add(key)
            events.append(FileFailure(key, path, reason))
        for tid in reversed(w.assigned):
            self.pending.appendleft(self.tasks.pop(tid))
            self.outstanding -= 1
        self.workers[i] = _Worker(self.ctx, self.settings)
        return events

    def shut_down(self) -> None:
        for w in self.workers:
            try:
                w.task_send.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self.workers:
            w.process.join(timeout=1)
            w.kill()
