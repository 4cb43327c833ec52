"""Window policies: which windows of a video get a vector.

``shots`` (the default for new indexes): windows follow the video's shots. Hard cuts are found on cheap frames
(``DETECT_FPS`` frames a second scaled to ``DETECT_SIZE`` by the decoder), each shot gets ``ceil(length /
window_s)`` equal windows that do not overlap and never straddle a cut, and shots shorter than ``MIN_SHOT_S`` join
the previous one (a file is planned in spans of ``chunk_windows · window_s`` seconds, one per decode task; a span's
end is a window boundary). A window whose frames are a near-duplicate of the last window the encoder ran on in its
span (a static scene cut into several windows, a still slide) reuses that window's vector instead of running the
encoder (:class:`DuplicateFilter`). Fewer windows (about one per shot or per ``window_s`` instead of two per
``window_s``) and no encoder for still ones.

A span is decoded once (:func:`index.decode._shots_in_one_pass`, "one pass" below): a grid of frames a second
(:func:`grid_fps`) gives cut detection its frames and each window the grid frames nearest to its sampled ones. A
span that does not decode whole (a damaged file) is read in two passes instead: :func:`detection_frames` on cheap
frames, then each window's own sampled frames, which also salvage the windows that decode.

``stride`` (:func:`index.windows.plan_windows`; the default before shots, and of indexes built before policies were
recorded): ``window_s`` windows every ``stride_s`` seconds, so every moment lies in two windows.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from index.windows import Window, plan_windows

logger = logging.getLogger(__name__)

POLICIES = ("stride", "shots")
DEFAULT_POLICY = "shots"  # of a new index; an existing one keeps the policy in its manifest
DETECT_FPS = 4.0
DETECT_SIZE = (32, 18)  # width, height of the frames cut detection compares
CUT_THRESHOLD = 30.0  # mean absolute RGB difference (0-255) between consecutive detection frames that is a cut
CUT_RATIO = 3.0  # ... and that many times the larger of its neighbours' differences (motion is not a cut)
HIST_THRESHOLD = 0.25  # colour-histogram distance (0-1) between consecutive detection frames that is a cut
MIN_SHOT_S = 1.0
DUPLICATE_TOL = 2.0  # mean absolute difference (0-255) of 16×16 window thumbnails below which a window is reused


def check_policy(policy: str) -> str:
    from vtr.errors import VtrError

    if policy not in POLICIES:
        raise VtrError(f"unknown window policy {policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


# --------------------------------------------------------------------------------------------- detection
def detection_frames(path: str, start: float = 0.0, end: float | None = None, fps: float = DETECT_FPS,
                     size: tuple[int, int] = DETECT_SIZE, cheap: bool = True):
    """(times [n] seconds, frames uint8 [n, h, w, 3]): about ``fps`` frames a second of ``[start, end)``, scaled by
    the decoder. Times count from the stream's first frame, as window times do.

    One decoding thread: this runs in the decode workers, beside the encoder's threads. Packets that do not decode (a
    file damaged in the middle) are skipped, as players skip them: cut detection sees the frames around the damage,
    and the windows' own decoding decides what is indexed (:func:`index.decode._salvage`).

    ``cheap``: on streams of at least twice ``fps`` frames a second, the decoder skips the frames no other frame
    references (the B-frames of most H.264/HEVC) and the in-loop deblocking filter, which thumbnails of 32×18 block
    means do not see: about half the decoding of ordinary footage (``bench/README.md``, eleventh round). A cut is then
    found at the first decoded frame after it, at most a frame or two later than on the ``fps`` grid of every frame,
    which itself places cuts to 1/``fps`` s.
    When the skipping left a gap of more than 1/``fps`` s between two decoded frames (a stream that slows down, as
    phones do in the dark, or a damaged one) or fewer than half the grid's frames (a stream whose frames are all
    marked unreferenced), the span is decoded again in full.
    """
    times, frames, expected, gap = _detection_pass(path, start, end, fps, size, cheap)
    if cheap and (len(times) < 0.5 * expected or gap > 1.0 / fps + 1e-3):
        times, frames, _, _ = _detection_pass(path, start, end, fps, size, False)
    if not frames:
        return np.zeros(0), np.zeros((0, size[1], size[0], 3), np.uint8)
    return np.asarray(times), np.stack(frames)


def _detection_pass(path, start, end, fps, size, cheap):
    """One decoding pass of :func:`detection_frames`: (times, frames, grid frames expected in the span, the largest
    gap in seconds between two consecutive decoded frames)."""
    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.image import shown_rgb
    from vtr.data.sources import ffmpeg_input
    from vtr.data.video import count_table, decode_from, frame_rate, main_video_stream, time_origin

    times, frames = [], []
    to_rgb = VideoReformatter()  # one swscale context for the pass (a frame's own reformat builds one per frame)
    with av.open(ffmpeg_input(path)) as container:
        stream = main_video_stream(container)
        stream.thread_count = 1
        rate = float(frame_rate(stream) or 0.0)
        by_count = count_table(path) or False  # timestamps that jump: timed by count, as the reader times it
        # a slower stream would lose grid frames to the skipping; frames timed by count must all be decoded
        if cheap and rate >= 2 * fps and not by_count:
            stream.codec_context.skip_frame = "NONREF"
            stream.codec_context.options = {"skip_loop_filter": "all"}  # read when the decoder opens
        tb = float(stream.time_base) if stream.time_base else 0.0
        if end is not None or by_count:  # (a jump makes the container's duration a guess)
            stop = end
        else:
            stop = container.duration / av.time_base if container.duration else None
        expected = max(0.0, (stop - start) * min(fps, rate or fps)) if stop is not None else 1.0
        # the index's second 0 is its reader's, the first frame shown: from the start, the first frame this pass
        # decodes (set below); a later span seeks from it, so it is read first
        origin = None
        if start > 0 or by_count:
            shown_from = time_origin(path)
            origin = int(round(shown_from / tb)) if shown_from is not None and tb else stream.start_time
        decoded = (decode_from(container, stream, start, origin * tb, frames=_decodable_frames, by_count=by_count)
                   if (start > 0 or by_count) and tb and origin is not None else _decodable_frames(container, stream))
        next_t, last_t, gap = start, None, 0.0
        for frame in decoded:
            if frame.pts is None:
                continue
            if origin is None:
                origin = frame.pts
            t = (frame.pts - origin) * tb
            if end is not None and t >= end:
                break
            gap, last_t = (max(gap, t - last_t) if last_t is not None else gap), t
            if t + 1e-6 < next_t:
                continue
            next_t = _next_step(t, fps)
            times.append(t)
            frames.append(shown_rgb(frame, to_rgb, size[0], size[1]))  # as the windows: HDR tone-mapped, ...
    return times, frames, expected, gap


def _next_step(t: float, fps: float) -> float:
    """The grid step after a frame taken at ``t`` s: the next multiple of ``1 / fps`` (on a grid, so there is no drift
    where ``fps`` does not divide the frame rate). Cut detection's passes and the one pass's grid both follow it."""
    return (math.floor(t * fps + 1e-6) + 1) / fps


def _decodable_frames(container, stream):
    """:func:`vtr.data.video.decodable_frames`: a damaged packet (or a damaged stretch of the container) is skipped
    instead of ending the file."""
    from vtr.data.video import decodable_frames

    return decodable_frames(container, stream)


def _colour_histograms(frames: np.ndarray, bins: int = 8) -> np.ndarray:
    """[n, h, w, 3] uint8 -> [n, 3, bins] per-channel histograms, each summing to 1."""
    n = len(frames)
    q = (frames.reshape(n, -1, 3).astype(np.int64) * bins) // 256  # [n, P, 3] bin of each value
    onehot = q[..., None] == np.arange(bins)  # [n, P, 3, bins]
    return onehot.mean(axis=1)


def _spikes(diff: np.ndarray, threshold: float, ratio: float) -> np.ndarray:
    """Steps whose difference is above ``threshold`` and ``ratio`` times both neighbouring differences."""
    before = np.concatenate([[0.0], diff[:-1]])
    after = np.concatenate([diff[1:], [0.0]])
    return (diff > threshold) & (diff > ratio * np.maximum(before, after))


def find_cuts(times: np.ndarray, frames: np.ndarray, threshold: float = CUT_THRESHOLD, ratio: float = CUT_RATIO,
              hist_threshold: float = HIST_THRESHOLD) -> list[float]:
    """Cut times (seconds, the first frame of the new shot) from detection frames [n, h, w, 3].

    A step between consecutive frames is a cut when one of two differences spikes, i.e. is above its threshold
    and ``ratio`` times both neighbouring steps' (a pan or steady motion changes every step alike, a cut one
    step): the mean absolute pixel difference (0-255), or the colour-histogram distance (half the L1 distance of
    8-bin channel histograms, 0-1), which panning and motion leave almost unchanged.
    """
    if len(frames) < 2:
        return []
    f = frames.astype(np.float32)
    pixel = np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))  # step i: frames i -> i + 1
    hist = _colour_histograms(frames)
    colour = 0.5 * np.abs(hist[1:] - hist[:-1]).sum(-1).mean(-1)
    cut = _spikes(pixel, threshold, ratio) | _spikes(colour, hist_threshold, ratio)
    return [float(times[i + 1]) for i in np.flatnonzero(cut)]


def plan_shot_windows(duration: float, cuts: list[float], window_s: float, min_shot_s: float = MIN_SHOT_S,
                      start: float = 0.0) -> list[Window]:
    """Windows of ``[start, duration]`` inside shots: ``ceil(len / window_s)`` equal windows per shot, shots under
    ``min_shot_s`` merged into the previous one (or the next, for the first)."""
    duration = max(float(duration), start)
    bounds = [start] + sorted(c for c in cuts if start < c < duration) + [duration]
    shots: list[list[float]] = []
    for a, b in zip(bounds, bounds[1:]):
        if shots and (b - a < min_shot_s or shots[-1][1] - shots[-1][0] < min_shot_s):
            shots[-1][1] = b
        else:
            shots.append([a, b])
    if len(shots) > 1 and shots[-1][1] - shots[-1][0] < min_shot_s:
        shots[-2][1] = shots.pop()[1]
    windows = []
    for a, b in shots:
        n = max(1, math.ceil((b - a) / window_s - 1e-6))
        step = (b - a) / n
        windows += [Window(round(a + k * step, 6), round(a + (k + 1) * step, 6)) for k in range(n)]
    return windows


def plan_chunk_windows(path: str, duration: float, policy: str, window_s: float, stride_s: float,
                       chunk: int, chunk_windows: int) -> tuple[list[Window], int, int]:
    """(windows of chunk ``chunk``, windows in the file or -1 when unknown, number of chunks) under ``policy``.

    ``stride``: the file's windows cut in chunks of ``chunk_windows``. ``shots``: chunks are spans of
    ``chunk_windows · window_s`` seconds, each planned from its own detection frames (a task decodes only its
    span at detection size, so a long file costs no more per task than a short one); a span's end acts as a cut.
    """
    if check_policy(policy) == "stride":
        windows = plan_windows(duration, window_s, stride_s)
        return windows[chunk * chunk_windows:(chunk + 1) * chunk_windows], len(windows), \
            count_chunks(duration, policy, window_s, stride_s, chunk_windows)
    lo, hi, n_chunks = shot_span(duration, window_s, chunk, chunk_windows)
    times, frames = detection_frames(path, lo, hi)
    cuts = find_cuts(times, frames)
    logger.debug("%s [%.1f, %.1f): %d cuts", path, lo, hi, len(cuts))
    return plan_shot_windows(hi, cuts, window_s, start=lo), -1, n_chunks


def count_chunks(duration: float, policy: str, window_s: float, stride_s: float, chunk_windows: int) -> int:
    """The number of chunks (decode tasks) of a video of ``duration`` seconds under ``policy``: what
    :func:`plan_chunk_windows` returns for it, known before any frame is decoded."""
    if check_policy(policy) == "stride":
        return max(1, -(-len(plan_windows(duration, window_s, stride_s)) // chunk_windows))
    return shot_span(duration, window_s, 0, chunk_windows)[2]


def shot_span(duration: float, window_s: float, chunk: int, chunk_windows: int) -> tuple[float, float, int]:
    """(start, end, number of spans) of span ``chunk`` of the ``shots`` policy: ``chunk_windows · window_s``
    seconds, the last one to the end of the video."""
    span = chunk_windows * window_s
    duration = max(float(duration), 0.0)
    n_chunks = max(1, math.ceil(duration / span - 1e-6))
    return chunk * span, (duration if chunk == n_chunks - 1 else (chunk + 1) * span), n_chunks


# ------------------------------------------------------------------------------------------------ one pass
# The shots policy in one decoding pass (index.decode, the default): the frames of a grid of :func:`grid_fps`
# frames a second (DETECT_FPS for the defaults), decoded at full quality, give both the cut detection's small frames
# and every window's frames, each window's sampled frame being replaced by the grid frame nearest to it in time
# inside the window. Two passes (cut detection on cheap frames, then the windows' own frames) decoded most of a
# span's frames twice: at a phone's bitrate the detection pass was about 40% of the shots policy's decoding
# (bench/README.md, twenty-eighth round). A window's frames move by at most half a grid step (0.125 s for the
# defaults), and never across a cut: a cut is a grid frame, and a window takes grid frames inside it.
def grid_fps(num_frames: int, window_s: float) -> float:
    """Frames a second of the one pass's grid: DETECT_FPS (cut detection's frames), or more where a window of
    ``window_s`` seconds samples ``num_frames`` frames more densely than one every two grid steps (short windows:
    the demo's 2 s), so that a whole window's sampled frames stay distinct and within a quarter of their segment.
    Cut detection takes the DETECT_FPS frames among them (a grid's frames include those of any coarser grid whose
    rate divides its own)."""
    need = 2.0 * num_frames / window_s
    return DETECT_FPS if need <= DETECT_FPS else DETECT_FPS * math.ceil(need / DETECT_FPS)


def grid_frames(clock, start: float, end: float, fps: float = DETECT_FPS) -> list[int]:
    """Indices of about ``fps`` frames a second of ``[start, end)`` on ``clock``: the first frame at or after each
    step of a grid of ``1 / fps`` s (the frames :func:`detection_frames` takes when it decodes every frame); all of
    them for a slower stream. A span in which no frame starts (a still of a screen recording) gets the frame on
    screen at its start."""
    lo, hi = clock.frame_range(start, end)
    picked, next_t = [], -math.inf
    for i in range(lo, hi):
        t = max(clock.time_of(i), start)
        if t + 1e-6 < next_t:
            continue
        next_t = _next_step(t, fps)
        picked.append(i)
    return picked


def nearest_on_grid(wanted: list[int], window: Window, grid: list[int], clock) -> list[int]:
    """For each frame index of ``wanted`` (a window's sampled frames), the index of the ``grid`` frame nearest to
    it in time (the earlier on a tie) among the grid frames shown in ``window``; among all of them when none is (a
    window shorter than a grid step)."""
    times = np.asarray([clock.time_of(i) for i in grid])
    inside = np.flatnonzero((times >= window.start - 1e-6) & (times < window.end - 1e-6))
    if not len(inside):
        inside = np.arange(len(grid))
    want = np.asarray([clock.time_of(i) for i in wanted])
    nearest = inside[np.argmin(np.abs(times[inside][None, :] - want[:, None]), axis=1)]
    return [grid[k] for k in nearest]


# ----------------------------------------------------------------------------------------- duplicates
class DuplicateFilter:
    """Which windows can reuse the vector of the window embedded just before them.

    ``split(frames [n, T, 3, S, S] uint8, groups=None)`` -> (indices to encode, source [n]: for each window the
    index whose vector it takes, or -1 for "the last vector of the previous call"). Windows are compared in the
    order they come. ``groups`` (sizes of consecutive runs of windows summing to n, e.g. the decoded chunks of a
    build) keeps comparisons inside each run: a run's first window is always encoded. Without it the state carries
    across calls, so a static scene split over two calls is still caught.

    The index build groups by chunk (:func:`index.embed.embed_chunks`): chunks arrive in the order the decode
    workers finish them, and a window compared with whatever came before it took, in one build, the vector of a
    near-identical window of another file (a copy of the video, a truncated one) and in the next build its own
    (cosine 0.998): the same folder gave different indexes from run to run.
    """

    def __init__(self, tol: float = DUPLICATE_TOL):
        self.tol = float(tol)
        self._ref = None  # thumbnail of the last window that was encoded (what a duplicate would reuse)

    @staticmethod
    def thumbnails(frames: np.ndarray) -> np.ndarray:
        """[n, T, 3, S, S] uint8 -> [n, T, 3, 16, 16] float32 block means (S cropped to a multiple of 16)."""
        n, t, c, s, _ = frames.shape
        b = max(1, s // 16)
        f = frames[..., : b * 16, : b * 16].astype(np.float32)
        return f.reshape(n, t, c, 16, b, 16, b).mean(axis=(4, 6))

    def split(self, frames: np.ndarray, groups: list[int] | None = None):
        thumbs = self.thumbnails(frames)
        source = np.full(len(frames), -1, dtype=np.int64)
        encode = []
        ref, ref_index = self._ref, -1
        if groups is not None and sum(groups) != len(frames):
            raise ValueError(f"groups of {sum(groups)} windows for {len(frames)} windows")
        starts = set(np.cumsum([0, *groups[:-1]]).tolist()) if groups else set()
        for k in range(len(frames)):
            if k in starts:
                ref = None  # a new group: nothing before it to reuse
            # compared with the last *encoded* window, not the previous one: a slow drift cannot chain along
            if ref is not None and float(np.abs(thumbs[k] - ref).mean()) < self.tol:
                source[k] = ref_index
            else:
                encode.append(k)
                ref, ref_index = thumbs[k], k
                source[k] = k
        self._ref = ref
        return np.asarray(encode, dtype=np.int64), source
