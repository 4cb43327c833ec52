"""Video decoding and frame sampling for evaluation and training (evaluation.md §2).

One reader interface over two backends:

- **decord** (default, what the reference code uses): random access by frame index via ``get_batch``, where it
  returns the frames asked for (H.264 in MP4/MOV/MKV/FLV, and streams without B-frames there: see
  :func:`decord_unsuited`).
- **PyAV**: fallback for files decord cannot open, the index's decoder (see below), and the only backend where
  decord is not installed (decord ships x86_64 wheels only).

``open_video(source)`` accepts a path or the file's bytes and returns a :class:`VideoReader` with
``num_frames, fps, duration, width, height`` (read from the container header, no full decode) and
``get_frames(indices) -> uint8 [T, H, W, 3]`` (RGB24). Memory is bounded by the frames asked for: decord decodes
only the requested indices; PyAV decodes forward from the start (or from the keyframe before a far-away frame)
and keeps only the requested frames.

Frame numbering is "the i-th frame in presentation order", as in decord. Caveats of the PyAV backend:

- ``num_frames`` is the container's frame count when it has one (mp4, avi); otherwise (mkv/webm and other
  containers without one) it is estimated as ``int(fps * container duration)`` — decord does the same for such
  containers when its packet index is unusable. A frame index inside the estimate that does not decode (a
  truncated file) raises :class:`VideoReadError`.
- After a seek (only for frames more than ``seek_threshold`` frames past the decoder position), a decoded
  frame's index is recovered from its timestamp, ``round((pts - first) * time_base * fps)``: exact for
  constant-frame-rate video; for variable-frame-rate video it can differ from decord's counting, unless the
  reader's :meth:`~VideoReader.clock` was read (the index reads it), which places every frame by its own time.
  A seek starts from a keyframe shown at or before the frame (MP4 seeks by decoding time and MPEG-TS lands on any
  packet: :meth:`PyAVVideoReader._seek_to`). Set ``seek_threshold=None`` for strictly sequential counting.
- Once the clock was read, H.264 and HEVC reads drop the frames that no wanted frame needs (the unreferenced
  B-frames, about half of ordinary footage) and give the same bits as decoding every frame: the index decodes with
  PyAV for that (:meth:`PyAVVideoReader._decode_skipping`).

Time: the reference places frame ``i`` at ``i / fps`` (``fps`` the stream's average rate), which evaluation keeps.
That is only true of constant-frame-rate video; phones (in low light), screen recorders and browsers' webm vary
the rate, and there ``i / fps`` drifts from the clock by seconds. :meth:`VideoReader.clock` reads every frame's
presentation time (decord's frame index; PyAV demuxes the packets without decoding them) and returns a
:class:`Clock` that maps seconds to frames on the real clock when the rate varies, and by ``i / fps`` when it
does not; the index places its windows with it, so a moment's times are the player's times.

Both backends return frames upright: a display rotation in the container (phones store portrait video as landscape
frames plus a rotation) is applied as players apply it, and ``width``/``height`` are the upright frame's (PyAV
decodes the first frame when opening, the only place FFmpeg reports the rotation to it).

Both backends convert YUV to RGB24 with FFmpeg's swscale defaults; on the h264/mp4 and mpeg4/avi/mkv files the
tests write, decord 0.6.0 and PyAV 18 return bit-identical frames for the same indices. Not so on MPEG-TS (camcorders'
.mts, broadcast), MPEG-PS (.mpg, DVDs) and AVI with B-frames (DivX/Xvid), where decord 0.6.0 returns other frames than
asked (AVI: asked for 50, 51, 120 of 200, it gave 19, 20, 122; TS: asked for 0, 1, 2, it gave 32, 33, 34); the index
decodes with PyAV. Evaluation keeps decord, as the reference does.

PyAV's reader also shows two kinds of footage as players do, where decord (and FFmpeg's plain conversion) does not:
HDR (PQ, HLG: phones' video) is tone-mapped to SDR (:mod:`vtr.data.hdr`; ``"auto"`` takes PyAV for it), and an
interlaced frame (a camcorder's 1080i) is deinterlaced on its own (:func:`deinterlace_frame`). ``"auto"`` keeps
decord for interlaced video, so evaluation reads such a benchmark video as the reference does.
"""

from __future__ import annotations

import abc
import io
import itertools
import logging
import math
import os
import random
import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from vtr.data.animation import animated_webp
from vtr.data.colors import BT601_TO_BT709, BT709, guessed_matrix, said_matrix
from vtr.data.hdr import HLG as HDR_HLG, PQ as HDR_PQ
from vtr.data.image import format_has_alpha, shown_rgb
from vtr.data.motion_photo import embedded_video
from vtr.data.sources import ffmpeg_input
from vtr.errors import VideoReadError

logger = logging.getLogger(__name__)

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

#: PyAV seeks (to the keyframe before the target) instead of decoding forward when the next needed frame is
#: more than this many frames past the decoder's position.
DEFAULT_SEEK_THRESHOLD = 250


# --------------------------------------------------------------------------------------------------------------
# Decoding workers
# --------------------------------------------------------------------------------------------------------------

def start_loader(loader: torch.utils.data.DataLoader):
    """``iter(loader)``, with its worker processes forked from a parent that leaves them no garbage to collect.

    A fork copies the parent's objects but not its threads. PyAV's scaler (``VideoReformatter``) owns FFmpeg slice
    threads; one left in the parent's uncollected reference cycles is freed by the child's garbage collector,
    whose ``pthread_cond_destroy`` then waits forever for threads that do not exist there (a DataLoader that
    hangs). So the parent collects first, and the objects it still holds are frozen while the workers fork:
    the children never collect them, and the parent goes on collecting its own after the workers started."""
    import gc

    gc.collect()
    gc.freeze()
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


# --------------------------------------------------------------------------------------------------------------
# Frame sampling (pure functions)
# --------------------------------------------------------------------------------------------------------------

def sample_frame_indices(num_frames: int, vlen: int, mode: str = "middle", rng=None) -> list[int]:
    """Pick ``num_frames`` frame indices out of ``vlen`` frames, exactly like UMT/VINDLU ``get_frame_indices``.

    The video is split into ``n = min(num_frames, vlen)`` segments with edges ``e = int(linspace(0, vlen, n+1))``;
    segment i is ``[e_i, e_{i+1} - 1]``.

    - ``"middle"`` (evaluation): index ``(e_i + e_{i+1} - 1) // 2``. vlen 300, 4 frames -> 37, 112, 187, 262.
    - ``"rand"`` (training): one index drawn uniformly from ``[e_i, e_{i+1} - 1)`` (the segment's last frame is
      never drawn). If any segment holds a single frame (so that range is empty) the reference falls back to
      ``sorted(permutation(vlen)[:n])``, and so does this function.

    If ``vlen < num_frames`` the list is padded by repeating the last index.

    rng: for ``"rand"`` only. ``None`` uses the global ``random`` / ``numpy.random`` state like the reference;
    an ``int`` seeds a fresh ``numpy.random.Generator``; a ``numpy.random.Generator`` or ``random.Random`` is used
    as given.
    """
    num_frames, vlen = int(num_frames), int(vlen)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if vlen < 1:
        raise ValueError(f"cannot sample frames from a video of {vlen} frames")
    acc_samples = min(num_frames, vlen)
    edges = np.linspace(start=0, stop=vlen, num=acc_samples + 1).astype(int)
    ranges = [(int(edges[i]), int(edges[i + 1]) - 1) for i in range(acc_samples)]

    if mode == "middle":
        indices = [(lo + hi) // 2 for lo, hi in ranges]
    elif mode == "rand":
        if isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(int(rng))
        if all(hi > lo for lo, hi in ranges):
            if rng is None:
                indices = [random.choice(range(lo, hi)) for lo, hi in ranges]
            elif isinstance(rng, random.Random):
                indices = [rng.choice(range(lo, hi)) for lo, hi in ranges]
            else:
                indices = [int(rng.integers(lo, hi)) for lo, hi in ranges]
        else:  # the reference's `except:` branch: a one-frame segment makes random.choice fail
            if rng is None:
                perm = np.random.permutation(vlen)
            elif isinstance(rng, random.Random):
                perm = np.array(rng.sample(range(vlen), vlen))
            else:
                perm = rng.permutation(vlen)
            indices = sorted(int(i) for i in perm[:acc_samples])
    else:
        raise ValueError(f"unknown sampling mode {mode!r}; expected 'middle' or 'rand'")

    if len(indices) < num_frames:
        indices = indices + [indices[-1]] * (num_frames - len(indices))
    return indices


def window_frame_range(fps: float, vlen: int, start: float | None, end: float | None) -> tuple[int, int]:
    """Frame range ``[lo, hi)`` of the frames whose timestamp ``i / fps`` lies in ``[start, end)`` seconds.

    A window narrower than one frame period yields the first frame at or after ``start``. Raises ValueError
    if the window lies outside the video.
    """
    lo = 0 if start is None else max(0, math.ceil(float(start) * fps - 1e-6))
    hi = vlen if end is None else min(vlen, math.ceil(float(end) * fps - 1e-6))
    if start is not None and end is not None and end < start:
        raise ValueError(f"time window end {end} < start {start}")
    if lo >= vlen:
        raise ValueError(f"time window starts at {start} s, after the video ends ({vlen / fps:.3f} s)")
    if hi <= lo:
        hi = lo + 1
    return lo, hi


#: Frame times further than this share of a frame period from ``i / fps`` make a video variable-rate.
VFR_TOLERANCE = 0.5

#: Containers whose timestamps can jump (FFmpeg's ``AVFMT_TS_DISCONT``): MPEG-TS and MPEG-PS, a TV recording's or a
#: camcorder's, and files joined end to end (``cat a.ts b.ts``). A step of the video's decoding times forward by more
#: than :data:`DISCONTINUITY_S`, or back by more than :data:`DISCONTINUITY_BACK_S` (less is a muxer's jitter), is a
#: discontinuity, not time passing: ``ffmpeg`` itself takes a step of more than 10 s (its
#: ``-dts_delta_threshold``) for a new start and goes on from the frame before it. (FFmpeg reads a step back in
#: MPEG-TS as the 26.5-hour wrap of its clock: a step forward of about a day.)
DISCONTINUOUS_FORMATS = frozenset({"mpegts", "mpeg"})
DISCONTINUITY_S = 10.0
DISCONTINUITY_BACK_S = 0.5

#: Raw H.264 and HEVC streams, without a container (FFmpeg's demuxer names): what a Raspberry Pi's camera writes
#: (``rpicam-vid -o video.h264``, as its documentation shows), and many CCTV recorders' and IP cameras' exports
#: (``.264``, ``.h265``). Their packets and frames carry no time, nor the file its frame count: the frames are timed
#: by count (frame ``k`` at ``k / rate``, :func:`frame_rate`), counted from the packets, and decoded from the keyframe
#: before a far frame by its byte position (:class:`CountTable`), as a recording whose timestamps jump.
RAW_FORMATS = frozenset({"h264", "hevc"})

#: How messages name a raw stream's codec.
RAW_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC"}

#: The rate FFmpeg's raw demuxers and players (ffplay, VLC, mpv) take for a raw stream whose parameters give none.
RAW_DEFAULT_FPS = 25

#: The formats whose frames can be timed by count: their timestamps can jump, or they have none.
COUNTED_FORMATS = DISCONTINUOUS_FORMATS | RAW_FORMATS


class Clock:
    """Where a video's frames lie in time (see the module docstring): frame ``i`` at ``i / fps`` (constant
    frame rate, ``times`` None) or at ``times[i]`` seconds from the first frame (variable frame rate)."""

    def __init__(self, fps: float, num_frames: int, times: np.ndarray | None = None, end: float | None = None):
        self.fps, self.num_frames = float(fps), int(num_frames)
        self.times = None if times is None else np.asarray(times, np.float64)
        self._end = end
        if self.times is not None:
            self.num_frames = len(self.times)

    @classmethod
    def from_times(cls, fps: float, num_frames: int, times, end: float | None = None) -> "Clock":
        """A variable-rate clock when ``times`` (seconds, presentation order) stray from ``i / fps`` by more than
        ``VFR_TOLERANCE`` of a frame, else the constant-rate one. Times that cannot be a frame sequence (fewer
        than 2, not increasing) say nothing: constant rate."""
        if times is None or fps <= 0:
            return cls(fps, num_frames)
        t = np.asarray(times, np.float64)
        if len(t) < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            return cls(fps, num_frames)
        t = t - t[0]
        if np.max(np.abs(t - np.arange(len(t)) / fps)) <= VFR_TOLERANCE / fps:
            return cls(fps, num_frames)
        if end is None or end <= t[-1]:
            end = float(2 * t[-1] - t[-2])  # the last frame lasts as long as the one before it
        return cls(fps, len(t), t, end)

    @property
    def variable(self) -> bool:
        return self.times is not None

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last: ``num_frames / fps`` at a constant rate."""
        if self.times is None:
            return self.num_frames / self.fps if self.fps > 0 else 0.0
        return float(self._end)

    def time_of(self, index: int) -> float:
        """When frame ``index`` is shown (``num_frames``: the end of the video)."""
        if self.times is None:
            return index / self.fps
        return float(self.times[index]) if index < self.num_frames else self.duration

    def frame_range(self, start: float | None, end: float | None) -> tuple[int, int]:
        """Frames ``[lo, hi)`` whose times lie in ``[start, end)`` seconds: :func:`window_frame_range` at a constant
        rate. At a variable rate a window in which no frame starts (a frame can last seconds in a screen
        recording) gets the frame on screen at ``start``. Raises ValueError for a window past the end."""
        if self.times is None:
            return window_frame_range(self.fps, self.num_frames, start, end)
        if start is not None and end is not None and end < start:
            raise ValueError(f"time window end {end} < start {start}")
        if start is not None and float(start) >= self.duration:
            raise ValueError(f"time window starts at {start} s, after the video ends ({self.duration:.3f} s)")
        n = self.num_frames
        lo = 0 if start is None else int(np.searchsorted(self.times, float(start) - 1e-6, side="left"))
        hi = n if end is None else min(n, int(np.searchsorted(self.times, float(end) - 1e-6, side="left")))
        if hi <= lo:
            lo = self.frame_at(start)
            hi = lo + 1
        return lo, hi

    def frame_at(self, seconds: float) -> int:
        """The frame on screen at ``seconds`` (clamped to the video)."""
        if self.times is None:
            i = int(float(seconds) * self.fps)
        else:
            i = int(np.searchsorted(self.times, float(seconds) + 1e-6, side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)

    def truncated(self, num_frames: int) -> "Clock":
        """This clock over the first ``num_frames`` frames (a file that decodes only that far)."""
        if self.times is None:
            return Clock(self.fps, num_frames)
        return Clock(self.fps, num_frames, self.times[:num_frames], self.time_of(num_frames))

    def __repr__(self):
        kind = f"variable, {self.duration:.3f} s" if self.variable else "constant"
        return f"Clock({kind}, {self.num_frames} frames, average {self.fps:.3f} fps)"


# --------------------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------------------

def main_video_stream(container):
    """The video stream a player shows, as FFmpeg picks it (``av_find_best_stream``, which decord uses too): not a
    one-picture stream stored before it (a cover image: yt-dlp's ``--embed-thumbnail``, Matroska attachments). None
    when the container has no video, and when its only pictures are covers (``attached_pic``: a song's or a podcast
    episode's artwork), which FFmpeg would pick, and which is no video: its one picture does not decode as frames
    over the sound's length (the index called such a file damaged)."""
    moving = [s for s in container.streams.video if not is_cover(s)]
    if not moving:
        return None
    try:
        best = container.streams.best("video")
    except Exception:  # noqa: BLE001 - an FFmpeg that cannot rank them: the first, as before
        best = None
    return best if best is not None and not is_cover(best) else moving[0]


def is_cover(stream) -> bool:
    """Whether ``stream`` holds only a cover picture that goes with the file's sound (``attached_pic``)."""
    import av

    return bool(int(stream.disposition) & int(av.stream.Disposition.attached_pic))


def main_sound_stream(container, video=None):
    """The sound a player plays with ``video``, as FFmpeg picks it (``av_find_best_stream`` related to the video): in
    a recording of a whole TV multiplex, the video's own channel; the track marked default; not a track for the
    visually or hearing impaired (a broadcast's audio description) where another is there. None when the container
    has no sound. Before, previews and exports took the first track, whichever it was."""
    if not container.streams.audio:
        return None
    try:
        return container.streams.best("audio", related=video) or container.streams.audio[0]
    except Exception:  # noqa: BLE001 - an FFmpeg that cannot rank them: the first, as before
        return container.streams.audio[0]


def codec_name(stream) -> str:
    """The format ``stream`` is coded in ("h264", "av1"), not the decoder FFmpeg picked for it: AV1's is
    ``libdav1d``, which no list of formats names."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name  # an older PyAV may not have canonical_name


def rewind(container, stream=None) -> None:
    """Seek ``container`` (by ``stream``'s clock when given) back to its start. FFmpeg refuses the usual backward
    seek to time 0 ("Operation not permitted") where a stream's first keyframe comes after 0 and the demuxer knows of
    none before it: an FLV of Flash's own video codec (Sorenson H.263, as the web's videos were until about 2010) with
    sound starts its video a few milliseconds in. A seek forward to 0 lands on that first keyframe: the start. A raw
    stream (:data:`RAW_FORMATS`) has no time to seek by: to its first byte.

    A demuxer that seeks by the keyframes it has read (FFmpeg's generic index) and whose clock does not start at 0 (a
    Dahua recorder's ``.dav``, timed by its date) refuses the seek back too, and in a container just opened, whose
    first second FFmpeg read to find its streams, it knows of no keyframe before that second: the seek forward landed
    after it, and a clip cut from the start of such a file lost its first second. One packet read first puts the
    first keyframe in its index."""
    import av

    if container.format.flags & AVFMT_GENERIC_INDEX and (container.start_time or 0) > 0:
        first = stream if stream is not None else main_video_stream(container)
        try:  # (the video's: its keyframe is where the seek lands)
            next(iter(container.demux(first) if first is not None else container.demux()), None)
        except av.FFmpegError:  # (the seek says what is wrong)
            pass
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        if container.format.name in RAW_FORMATS:  # no time to seek by: to its first byte
            container.seek(0, unsupported_byte_offset=True)
            return
        container.seek(0, stream=stream, backward=False, any_frame=False)


#: FFmpeg's flag of a demuxer that seeks by the keyframes it has read (``AVFMT_GENERIC_INDEX``).
AVFMT_GENERIC_INDEX = 0x0100


#: An average frame rate above this is a time base, not a rate (high-speed cameras record at up to 1000 fps, but
#: store the footage to play at 24-60): FFmpeg's guess is taken instead (:func:`frame_rate`).
MAX_AVERAGE_FPS = 1000

def frame_rate(stream):
    """A PyAV stream's frame rate (a Fraction; None when the file gives none): its average rate, unless that is
    missing or above :data:`MAX_AVERAGE_FPS`, then FFmpeg's guess. FFmpeg 7's raw DV demuxer (a camcorder's .dv, as
    dvgrab writes it) reports an average of 60000 (the inverse of its 1/60000 time base); its guess from the codec
    says 25 (PAL) or 29.97 (NTSC), as decord reads. The reader, cut detection and the app's preview all use it."""
    if stream.type == "video" and stream.container.format.name in RAW_FORMATS:
        return raw_rate(stream)
    rate = stream.average_rate
    if not rate or rate > MAX_AVERAGE_FPS:
        rate = stream.guessed_rate or stream.base_rate
    return rate or None


def raw_rate(stream) -> Fraction:
    """The frame rate of a raw H.264/HEVC stream (:data:`RAW_FORMATS`): the one its sequence parameters give (their
    timing information, as an encoder writes it), else :data:`RAW_DEFAULT_FPS`, as players take it. FFmpeg's
    average rate there is its raw demuxer's default (25) whatever the stream says: a 30 fps stream was timed 1.2x
    too slow."""
    rate = stream.codec_context.framerate
    if rate and 0 < rate <= MAX_AVERAGE_FPS:
        return Fraction(rate.numerator, rate.denominator)
    return Fraction(RAW_DEFAULT_FPS)


def shown_colors(stream) -> np.ndarray | None:
    """:attr:`VideoReader.shown_colors` of a PyAV video stream: :data:`~vtr.data.colors.BT601_TO_BT709` for a YUV
    stream that says no matrix and is HD (:func:`~vtr.data.colors.guessed_matrix`), whose frames FFmpeg converts as
    BT.601 (as decord does, and so the release's training did: the model's frames keep it) while players show them
    as BT.709: a red 200,30,30 came out 185,11,31 in the index's thumbnails, beside a preview that shows it right.
    None otherwise."""
    cc = stream.codec_context
    fmt = cc.format
    if fmt is None or fmt.is_rgb or fmt.has_palette or stream_flags(stream)[0]:  # RGB, a palette, or HDR (its own)
        return None
    if said_matrix(cc.colorspace) is not None:
        return None
    return BT601_TO_BT709 if guessed_matrix(cc.width, cc.height) == BT709 else None


def frames_shown(stream, fps: float) -> int | None:
    """How many frames of a PyAV video stream players show, when an edit list hides some that its header counts;
    None when it hides none. A video trimmed without re-encoding (`ffmpeg -ss ... -c copy`, LosslessCut) keeps the
    frames from the keyframe before its cut, which the decoder needs, and an edit list that hides them: the header
    counts them, the decoder drops them, and the stream's duration is the part shown. Counted from the header, the
    frames past the shown ones "could not be decoded", and frame times were off by the hidden part. From the header
    alone, so a first guess: :func:`_edit_list_shows` confirms it."""
    count = int(stream.frames or 0)
    if count <= 0 or not stream.duration or not stream.time_base or fps <= 0:
        return None
    shown = int(round(float(stream.duration * stream.time_base) * fps))
    return shown if 0 < shown < count else None


def time_origin(path) -> float | None:
    """:attr:`PyAVVideoReader.time_origin` of the video at ``path`` (where the index's second 0 lies on its
    timestamps, in seconds); None when it cannot be opened."""
    try:
        with open_video(str(path), backend="pyav") as reader:
            return reader.time_origin
    except Exception as e:  # noqa: BLE001 - the caller's own reading says what is wrong with the file
        logger.debug("no time origin for %s: %s", path, e)
        return None


def hides_frames(path) -> bool:
    """Whether the video at ``path`` holds frames that players never show and that readers before 2026-12-06
    counted as frames: frames an edit list hides (:func:`frames_shown`: a video trimmed without re-encoding), or
    frames before its first keyframe (:func:`_undecodable_start`: a recording started between keyframes), or after it
    and shown before it (one started on a keyframe of an open group of pictures, :func:`opens_on_leading_frames`).
    From its header and first packets (about a millisecond); False when it cannot be read."""
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            stream = main_video_stream(container)
            return stream is not None and _starts_hidden(container, stream)
    except Exception as e:  # noqa: BLE001 - the reader says what is wrong with such a file
        logger.debug("cannot read the start of %s: %s", path, e)
        return False


def drops_frames(path) -> bool:
    """Whether the video at ``path`` is an AVI whose header counts more frame periods than it holds frames: a capture
    that dropped some (:meth:`PyAVVideoReader._drops`), which readers before 2026-12-06 counted frame by frame,
    drifting. From its header and the index FFmpeg reads with it (about a millisecond), not its packets; False when
    it cannot be read, and where this PyAV does not list a stream's index."""
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            stream = main_video_stream(container)
            return stream is not None and _avi_frames(container, stream) is not None
    except Exception as e:  # noqa: BLE001 - the reader says what is wrong with such a file
        logger.debug("cannot read the index of %s: %s", path, e)
        return False


def _avi_frames(container, stream) -> int | None:
    """The frames an AVI's index lists for ``stream`` when they are fewer than the frame periods its header counts
    and span all of them (a capture that dropped frames: :func:`drops_frames`), else None. An AVI cut short has no
    index (it is written last): FFmpeg lists the packets it has read so far, which span a few periods."""
    if container.format.name != "avi" or not stream.frames:
        return None
    entries = getattr(stream, "index_entries", None)  # a PyAV that lists no index: not known
    if not entries or len(entries) >= stream.frames:
        return None
    return len(entries) if entries[len(entries) - 1].timestamp - entries[0].timestamp + 1 == stream.frames else None


def _jumps(dts: list, time_base: float) -> bool:
    """Whether decoding times ``dts`` (in decoding order, in ``time_base`` units) jump (see
    :data:`DISCONTINUOUS_FORMATS`)."""
    d = np.diff(np.asarray([t for t in dts if t is not None], np.float64)) * time_base
    return bool(len(d) and (d.min() < -DISCONTINUITY_BACK_S or d.max() > DISCONTINUITY_S))


class CountTable:
    """Where decoding may start in a file whose timestamps jump (:func:`discontinuous`), whose frames are timed by
    count: frame ``k`` is the ``k``-th frame the decoder gives from the file's start, at ``k / rate`` s. Read from
    its packets with the reader's clock (:meth:`PyAVVideoReader.count_table`, no decoding), it lists each keyframe's
    count and byte position, so that a frame far into a long recording is decoded from the keyframe before it (a
    seek by byte, which MPEG-TS and MPEG-PS allow, and which a jump does not make ambiguous as it makes a seek by
    time) instead of from the start of the file; and the first frame and its time of each part between two jumps,
    which times the sound of each part beside its pictures (:func:`decode_from`).

    A keyframe's count is its place in presentation order: the frames of the parts before it and the frames of its
    own part shown before it (an open group of pictures, as MPEG-2 and broadcast H.264 write them, decodes frames
    after a keyframe that are shown before it; from the keyframe those cannot be decoded, and are passed over)."""

    def __init__(self, frames: int, rate: float, time_base: float, key_count, key_pos, key_part, part_count,
                 part_first, part_last):
        self.frames, self.rate, self.time_base = int(frames), float(rate), float(time_base)
        self.key_count = np.asarray(key_count, np.int64)  # each keyframe's count, ascending
        self.key_pos = np.asarray(key_pos, np.int64)  # its packet's byte position
        self.key_part = np.asarray(key_part, np.int64)  # the part (between jumps) it lies in
        self.part_count = np.asarray(part_count, np.int64)  # the count of each part's first frame shown
        self.part_first = np.asarray(part_first, np.int64)  # its presentation time (the video's time base)
        self.part_last = np.asarray(part_last, np.int64)  # the part's last presentation time

    @classmethod
    def from_packets(cls, pts: list, dts: list, keys: list, positions: list, keyed: int | None, closed: bool,
                     rate: float, time_base: float) -> tuple[CountTable, int]:
        """The table of a stream's packets in decoding order (``pts``, ``dts``, whether each is a keyframe, its byte
        position or None), ``keyed`` its first keyframe's place (``closed``: it opens a closed group of pictures,
        :func:`_closed_gop`). A keyframe of MPEG-1/2 video is given as the frames of its group shown before it (its
        picture's temporal reference, :func:`_temporal_reference`; None where the packet shows none), which counts it
        where an MPEG-PS demuxer's timestamps do not (they are the stream's, given to packets as they come, which can
        be a frame off either way, and repeat). Returns ``(table, frames dropped at the start)``: as
        :func:`_undecodable_start`, the frames before the first keyframe, and those after it shown before it, are not
        counted (decoders drop them); only in its own part (a part after a jump back in time is all shown before it).

        Presentation order differs from decoding order only among neighbours (a decoder holds back a few frames to
        reorder them), so a keyframe's count is the frames decoded before it, less those of them shown after it,
        plus those decoded after it and shown before it, each looked for among :data:`REORDER_PACKETS` neighbours
        of its part a few seconds apart at most: a part's timestamps need not run on (MPEG-PS parts joined end to end
        wrap FFmpeg's clock within a part), and those of its neighbours do."""
        pts = np.asarray(pts, np.int64)
        step = np.diff(np.asarray(dts, np.float64)) * time_base
        part = np.concatenate([[0], np.cumsum((step < -DISCONTINUITY_BACK_S) | (step > DISCONTINUITY_S))])
        kept = np.ones(len(pts), bool)
        if keyed is not None:
            kept[:keyed] = False
            near = np.arange(len(pts) - keyed) <= REORDER_PACKETS
            near &= (part[keyed:] == part[keyed]) & (np.abs(pts[keyed:] - pts[keyed]) * time_base < REORDER_S)
            kept[keyed:] &= ~near | (pts[keyed:] >= pts[keyed]) | closed
        before = np.concatenate([[0], np.cumsum(kept)])  # kept packets before each one in decoding order

        def neighbours(i):
            lo, hi = max(0, i - REORDER_PACKETS), min(len(pts), i + REORDER_PACKETS + 1)
            j = np.arange(lo, hi)
            return j[kept[j] & (part[j] == part[i]) & (np.abs(pts[j] - pts[i]) * time_base < REORDER_S)]

        def count(i):
            if keys[i] is not True:  # MPEG-1/2: the frames of its group shown before it come after it
                return int(before[i] + keys[i])
            j = neighbours(i)
            return int(before[i] - np.sum((j < i) & (pts[j] > pts[i])) + np.sum((j > i) & (pts[j] < pts[i])))

        # where to read a keyframe from: its own byte position, else (MPEG-PS gives one only to a packet that starts
        # a PES, and a small frame can start inside one) that of the packet before it that has one, with no other
        # keyframe between them (reading skips to the first keyframe out)
        start_at, last, key_since = [None] * len(pts), None, False
        for i, at in enumerate(positions):
            if at is not None and at >= 0:
                last, key_since = at, False
            if keys[i] is not False:  # (None: a keyframe that cannot be counted, not one to start at)
                start_at[i] = last if not key_since and keys[i] is not None else None
                key_since = True
        entries = [i for i in np.flatnonzero(kept) if start_at[i] is not None]
        parts = np.unique(part[kept])
        starts = [int(np.flatnonzero(kept & (part == s))[0]) for s in parts]  # each part's first packet decoded
        first = []  # and its first frame shown: the earliest of its neighbours
        for i in starts:
            j = neighbours(i)
            first.append(int(pts[j[j >= i]].min()))
        counts = np.asarray([count(i) for i in entries], np.int64)
        order = np.argsort(counts, kind="stable")  # (in decoding order they ascend; CountTable.entry relies on it)
        entries = [entries[k] for k in order]
        table = cls(int(before[-1]), rate, time_base, counts[order], [start_at[i] for i in entries],
                    np.searchsorted(parts, part[entries]), before[starts], first,
                    [pts[kept & (part == s)].max() for s in parts])
        return table, len(pts) - int(before[-1])

    def entry(self, frame: int) -> int | None:
        """The last keyframe at or before frame ``frame`` (its place in the table), None where that is the file's
        first (decoding from the start is as quick)."""
        i = int(np.searchsorted(self.key_count, frame, side="right")) - 1
        return i if i >= 0 and self.key_count[i] > 0 else None

    def part_of(self, seconds: float, part: int, jumped: bool) -> tuple[int, bool]:
        """The part a sound frame at ``seconds`` (its own timestamp) lies in, and whether its time lies in that part's
        (give or take :data:`SOUND_SLACK_S`). ``part``: where the frame before lay, ``jumped``: whether the sound's
        timestamps jumped since one that lay in it (parts joined end to end can share times). That part while they
        did not jump and the time lies in it, else the next part it lies in, else the next one after a jump."""
        ticks = seconds / self.time_base
        slack = SOUND_SLACK_S / self.time_base

        def inside(s):
            return bool(self.part_first[s] - slack <= ticks <= self.part_last[s] + slack)

        if not jumped and inside(part):
            return part, True
        later = [s for s in range(part + 1, len(self.part_count)) if inside(s)]
        if later:
            return later[0], True
        return (min(part + 1, len(self.part_count) - 1) if jumped else part), False

    def sound_offset(self, part: int, origin: float) -> float:
        """Seconds to add to a sound timestamp of part ``part`` to time it as that part's pictures: the first part
        keeps its own times (as the reader's second 0 lies on them), a later one is moved to where its first frame
        is counted."""
        if part == 0:
            return 0.0
        return origin + self.part_count[part] / self.rate - self.part_first[part] * self.time_base


#: Codecs whose keyframes' places are read from their pictures (:func:`_temporal_reference`).
MPEG_VIDEO_CODECS = frozenset({"mpeg1video", "mpeg2video"})


def _temporal_reference(packet) -> int | None:
    """The temporal reference of an MPEG-1/2 packet's first picture: its place in presentation order within its
    group of pictures (an I-picture of an open group follows the B-pictures shown before it); None where the packet
    holds no picture header."""
    data = bytes(packet)
    at = data.find(b"\x00\x00\x01\x00")
    if at < 0 or at + 6 > len(data):
        return None
    return (data[at + 4] << 2) | (data[at + 5] >> 6)


#: Neighbours in decoding order among which a frame's place in presentation order is found (decoders reorder a few
#: frames: B-frames, pyramids of them; :meth:`CountTable.from_packets`), and how far apart in time they may lie.
REORDER_PACKETS = 64
REORDER_S = 5.0

#: How far (seconds) a sound frame may lie outside the times of its part's pictures (a muxer interleaves sound
#: ahead of or behind the pictures by up to about a second) and still be of that part (:meth:`CountTable.part_of`).
SOUND_SLACK_S = 2.0


def discontinuous(path) -> bool:
    """Whether the video at ``path`` is an MPEG-TS/PS whose timestamps jump (:data:`DISCONTINUOUS_FORMATS`: a TV
    recording that resumed, files joined end to end), or a raw stream (:data:`RAW_FORMATS`), which has none, so that
    its frames are timed by count (:func:`decode_from`'s ``by_count``): :func:`count_table` is not None."""
    return count_table(path) is not None


def count_table(path) -> CountTable | None:
    """Where decoding may start in the video at ``path``, whose frames are timed by count (:class:`CountTable`);
    None where they are not, or it cannot be read. An MPEG-TS/PS's or a raw stream's packets are read (once per
    process, with the reader's clock); other formats are not read (their header alone: cut detection asks for every
    chunk of every video)."""
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            if container.format.name not in COUNTED_FORMATS:
                return None
        with open_video(str(path), backend="pyav") as reader:
            return reader.count_table()
    except Exception as e:  # noqa: BLE001 - the caller's own reading says what is wrong with the file
        logger.debug("cannot tell whether the timestamps of %s jump: %s", path, e)
        return None


#: Times in a row the demuxer may give up for a moment (EAGAIN) before the file counts as ended (:func:`demuxed`).
DEMUX_RETRIES = 1000


def demuxed(container, *streams):
    """``container.demux(*streams)``, on past a stretch where the demuxer gives up for a moment: FFmpeg's MPEG-TS
    demuxer says "try again" (EAGAIN) after bytes it cannot resynchronise in, as a stretch of zeros (a download or a
    copy with holes, a disk's bad sectors read back as zeros), and PyAV ends the packets there with the error: the
    rest of the file was lost (a 195 s recording with 200 KB of zeros in its middle was indexed as its first 33 s, and
    said nothing). Asked again, it goes on after the stretch. Every reading loop over a file's packets goes through
    this."""
    import av

    again = 0
    while True:
        try:
            for packet in container.demux(*streams):
                again = 0
                yield packet
            return
        except av.error.BlockingIOError:
            again += 1
            if again > DEMUX_RETRIES:
                raise


def stalls_demuxer(path) -> bool:
    """Whether FFmpeg's demuxer gives up for a moment in the file at ``path`` (:func:`demuxed`: a stretch of zeros in
    an MPEG-TS), where readers before 2026-12-06 ended it. Reads its packets (no decoding); False when it cannot be
    read."""
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            for _ in container.demux():
                pass
    except av.error.BlockingIOError:
        return True
    except Exception as e:  # noqa: BLE001 - the reader says what is wrong with such a file
        logger.debug("cannot read the packets of %s: %s", path, e)
    return False


def _first_packet(container, stream):
    """The stream's first packet that holds data, in decoding order (None in an empty stream)."""
    return next((p for p in demuxed(container, stream) if p.size), None)


def _edit_list_shows(stream, fps: float, first) -> int | None:
    """:func:`frames_shown`, confirmed by the stream's ``first`` packet: an edit list that hides frames hides that
    one too (FFmpeg marks it ``is_discard``). The count alone is not enough, as a variable-rate video's duration ×
    average rate falls short of its count (a phone's MP4 of 40 frames came to 37)."""
    shown = frames_shown(stream, fps)
    return shown if shown is not None and first is not None and first.is_discard else None


def _starts_hidden(container, stream) -> bool:
    """Whether the stream starts with frames players do not show (see :func:`hides_frames`); reads its first
    packets from ``container``."""
    first = _first_packet(container, stream)
    if first is None:
        return False
    rate = frame_rate(stream)
    return (not first.is_keyframe or bool(rate and _edit_list_shows(stream, float(rate), first) is not None)
            or _leads(container, stream, first))


def _leads(container, stream, first) -> bool:
    """Whether ``first``, the stream's first packet and a keyframe, is followed by frames shown before it that do
    not decode (:func:`_undecodable_start`): a recording started on a keyframe of an open group of pictures (MPEG-2
    broadcast, DVDs, open-GOP H.264 and HEVC). Reads up to :data:`REORDER_PACKETS` packets after it."""
    import itertools

    if not first.is_keyframe or first.pts is None or _closed_gop(stream, first):
        return False
    after = itertools.islice((p for p in demuxed(container, stream) if p.size), REORDER_PACKETS)
    return any(p.pts is not None and p.pts < first.pts for p in after)


def opens_on_leading_frames(path) -> bool:
    """Whether the video at ``path`` starts on a keyframe followed by frames shown before it that do not decode
    (:func:`_leads`), which readers before 2026-12-06 counted as frames. Reads its first packets (about a
    millisecond); False when it cannot be read."""
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            stream = main_video_stream(container)
            if stream is None:
                return False
            first = _first_packet(container, stream)
            return first is not None and _leads(container, stream, first)
    except Exception as e:  # noqa: BLE001 - the reader says what is wrong with such a file
        logger.debug("cannot read the start of %s: %s", path, e)
        return False


def _closed_gop(stream, packet) -> bool:
    """Whether an MPEG-1/2 keyframe ``packet`` opens a closed group of pictures (its GOP header says so): the frames
    after it shown before it then refer to no earlier picture, and decode. Other codecs: False (an H.264 IDR or an
    HEVC IDR has no such frames; after another keyframe they refer to pictures before it)."""
    if stream.codec_context.name not in MPEG_VIDEO_CODECS:
        return False
    data = bytes(packet)
    at = data.find(b"\x00\x00\x01\xb8")
    return at >= 0 and at + 8 <= len(data) and bool(data[at + 7] & 0x40)


def _undecodable_start(pts: list, keyed: int | None, closed: bool = False) -> tuple[list, int]:
    """The presentation times (decoding order) of a stream less those of the frames before its first keyframe
    (index ``keyed``), and of those after it shown before it (among its :data:`REORDER_PACKETS` next ones): a
    recording that starts between keyframes (a TV or an IP camera's, a file whose start was cut off) begins with
    frames that reference pictures it does not hold, and one that starts on a keyframe of an open group of pictures
    (MPEG-2 broadcast and DVDs, open-GOP H.264 and HEVC) with frames shown before it that reference pictures before
    it. Decoders drop them, players never show them, and counted as frames they shifted every later frame's index.
    ``closed``: the keyframe opens a closed group (:func:`_closed_gop`), whose frames all decode. Returns ``(times
    kept, how many dropped)``; nothing is dropped from a stream without keyframes."""
    if keyed is None:
        return pts, 0
    first = pts[keyed]
    near = keyed + 1 + REORDER_PACKETS
    kept = pts[keyed:keyed + 1] + [p for k, p in enumerate(pts[keyed + 1:], keyed + 1)
                                   if closed or k >= near or p >= first]
    return kept, len(pts) - len(kept)


def pixel_aspect_of(stream) -> float:
    """A stored pixel's width on screen against its height, from a PyAV stream's sample aspect ratio: 4/3 for HDV
    (1440×1080, shown 1920 wide), 32/27 for a wide DVD; 1.0 where the file gives none or an implausible one."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return float(sar) if sar and 0.2 < sar < 5 else 1.0


class VideoReader(abc.ABC):
    """An opened video. Metadata attributes: ``num_frames, fps, duration (= num_frames / fps, as the reference
    computes it), width, height``; ``backend`` is ``"decord"`` or ``"pyav"``. ``pixel_aspect``: how much wider than
    tall a decoded pixel is shown (:func:`pixel_aspect_of`; what is shown to people follows it, the model input keeps
    the stored pixels as the official decoding does; decord does not say: 1.0)."""

    backend: str = ""
    num_frames: int
    fps: float
    width: int
    height: int
    pixel_aspect: float = 1.0
    #: The 3x3 matrix that turns this reader's RGB into the RGB players show, where they differ
    #: (:func:`shown_colors`); None where they agree. Thumbnails use it; the model's frames keep the reader's RGB.
    shown_colors: np.ndarray | None = None

    def __init__(self, name: str):
        self.name = name
        self._clock = None
        self._discontinuous = False  # timestamps that jump: frames timed by count (PyAVVideoReader)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    @property
    def timed_by_count(self) -> bool:
        """Whether the frames are timed by count, the file's timestamps jumping (:func:`discontinuous`); known once
        :meth:`clock` has read them."""
        return self._discontinuous

    def clock(self) -> Clock:
        """Where the frames lie in time, read once (see the module docstring); evaluation does not use it."""
        if self._clock is None:
            try:
                times, end = self._frame_times()
            except Exception as e:  # noqa: BLE001 - a file whose timing cannot be read keeps i / fps
                logger.debug("cannot read frame times of %s: %s", self.name, e)
                times, end = None, None
            # PyAV's count is an estimate where the header has none (mkv, webm: duration x rate, and the duration
            # can be the audio's), or counts frames an edit list hides: the timed frames are the count
            counted = times is not None and (getattr(self, "_count_estimated", False)
                                             or getattr(self, "_edited", False))
            self._clock = Clock.from_times(self.fps, len(times) if counted else self.num_frames, times, end)
            if self._clock.variable:
                logger.debug("%s has a variable frame rate: %r", self.name, self._clock)
            if self._clock.variable or counted:
                self.num_frames = self._clock.num_frames
        return self._clock

    def _frame_times(self) -> tuple[np.ndarray | None, float | None]:
        """(every frame's presentation time in seconds, in presentation order; the end of the last frame), or
        (None, None) when the backend cannot tell."""
        return None, None

    def get_frames(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB ``[T, H, W, 3]``.

        size: ``(width, height)`` to have the decoder scale to (FFmpeg's swscale, bicubic, in the same pass as
        the YUV→RGB conversion): a downscaled frame never exists at full resolution in RGB. None: the source size.
        """
        indices, size = self._checked(indices, size)
        if not indices:
            w, h = size or (self.width, self.height)
            return torch.empty((0, h, w, 3), dtype=torch.uint8)
        return torch.from_numpy(np.ascontiguousarray(self._get_frames(indices, size)))

    def map_frames(self, indices: Sequence[int], fn, size: tuple[int, int] | None = None) -> list:
        """``[fn(frame) for frame in get_frames(indices, size)]``, each frame a uint8 RGB ``[H, W, 3]`` array, without
        holding every decoded frame at once: what ``fn`` keeps of a frame (the model's small copy of it, say) is all
        that stays. This base reads :data:`MAP_BATCH` frames at a time; PyAV hands each frame to ``fn`` as it comes
        out of its one decoding pass. ``fn`` may be handed a frame more than once (a PyAV read that gives up
        skipping and starts over): what it returned for a frame before is then dropped."""
        indices, size = self._checked(indices, size)
        order = sorted(set(indices))
        kept = {}
        for k in range(0, len(order), MAP_BATCH):
            part = order[k:k + MAP_BATCH]
            for i, frame in zip(part, self._get_frames(part, size)):
                kept[i] = fn(frame)
        return [kept[i] for i in indices]

    def _checked(self, indices: Sequence[int], size: tuple[int, int] | None) -> tuple[list[int], tuple | None]:
        """(indices as ints, size or None for the source's): :meth:`get_frames`' arguments checked."""
        indices = [int(i) for i in indices]
        estimated = self._clock is None and getattr(self, "_count_estimated", False)
        if estimated and max(indices, default=0) >= self.num_frames:
            self.clock()  # a count estimated as duration × rate can fall short (an .mpg by 2): the packets count
        for i in indices:
            if not 0 <= i < self.num_frames:
                raise IndexError(f"frame index {i} out of range for {self.name} ({self.num_frames} frames)")
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if size[0] < 1 or size[1] < 1:
                raise ValueError(f"decode size must be positive (width, height), got {size}")
            if size == (self.width, self.height):
                size = None
        return indices, size

    @abc.abstractmethod
    def _get_frames(self, indices: list[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """Decode the frames at ``indices`` (validated, non-empty) as uint8 [T, H, W, 3], scaled to ``size``
        (width, height) when given; each backend's own."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"{type(self).__name__}({self.name!r}, backend={self.backend}, frames={self.num_frames}, "
                f"fps={self.fps:.3f}, {self.width}x{self.height})")


class DecordVideoReader(VideoReader):
    backend = "decord"

    def __init__(self, source, name: str, fallback=None):
        super().__init__(name)
        import decord  # optional dependency (x86_64 wheels only)

        self._source = source
        self._fallback = fallback  # callable -> VideoReader, used if decoding fails (backend="auto")
        try:
            src = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
            self._vr = decord.VideoReader(src, num_threads=1)
            self._sized = {}  # (width, height) -> a decord reader that scales to it (decord fixes the size at open)
            self.num_frames = len(self._vr)
            self.fps = float(self._vr.get_avg_fps())
            first_shape = None
            if self.num_frames > 0:
                first_shape = self._vr[0].shape
                self._vr.seek(0)
        except Exception as e:  # decord raises RuntimeError / DECORDError with C++ log text
            raise VideoReadError(name, f"decord cannot open it ({_first_line(e)})") from e
        if self.num_frames < 1:
            raise VideoReadError(name, "the video stream has zero frames")
        self.height, self.width = int(first_shape[0]), int(first_shape[1])

    def _reader(self, size):
        if size is None:
            return self._vr
        if size not in self._sized:
            import decord

            src = self._source
            src = io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray, memoryview)) else str(src)
            self._sized[size] = decord.VideoReader(src, num_threads=1, width=size[0], height=size[1])
        return self._sized[size]

    def _get_frames(self, indices, size=None):
        try:
            return self._reader(size).get_batch(indices).asnumpy()
        except Exception as e:
            if self._fallback is not None:
                logger.warning("decord failed to decode %s (%s); retrying with PyAV", self.name, _first_line(e))
                with self._fallback() as reader:
                    if self._clock is not None and self._clock.variable:
                        reader.clock()  # PyAV places the frames it seeks to by their times, as decord counts them
                    return reader._get_frames(indices, size)
            raise VideoReadError(self.name,
                                 f"decord failed to decode frames {_span(indices)} ({_first_line(e)})") from e

    def _frame_times(self):
        # [n, (start, end)]; decord ends the last frame one nominal frame period after it starts: not used
        return np.asarray(self._vr.get_frame_timestamp(list(range(self.num_frames))), np.float64)[:, 0], None

    def close(self):
        self._vr = None
        self._sized = {}


#: Frames :meth:`VideoReader.map_frames` reads at a time where the backend converts a batch at once (decord).
MAP_BATCH = 32

#: Codecs whose decoders drop, when asked (``skip_frame=NONREF``), exactly the frames no other frame references
#: (H.264: ``nal_ref_idc`` 0; HEVC: the sub-layer non-reference NAL types), so the others decode to the same bits:
#: :meth:`PyAVVideoReader._decode_skipping`.
SKIP_CODECS = frozenset({"h264", "hevc"})

#: Damaged packets in a row (the decoder refuses them: a hole of zeros in an MP4's data, bad sectors) that reading
#: passes over, as players do, showing the next frame for each of theirs (:meth:`PyAVVideoReader._decode_skipping`);
#: more is a stream that does not decode, whose reading stops there as before.
DAMAGED_PACKETS = 25

#: How many packets after a seek :meth:`PyAVVideoReader._seek_to` reads for a keyframe before it seeks further back
#: (keyframes come every 1-10 s in ordinary footage: 250 frames is x264's default).
KEYFRAME_SCAN = 600

#: Files whose packet times PyAV keeps per process (oldest dropped first), keyed by path, size and mtime.
FRAME_TIMES_CACHE = 8
_FRAME_TIMES: dict = {}
_FRAME_TIMES_LOCK = threading.Lock()  # the app opens videos from several threads


def _file_identity(source):
    """(path, size, mtime_ns) of a file source, None for bytes (or a file that cannot be stat'ed)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    try:
        st = os.stat(source)
    except OSError:
        return None
    return os.path.realpath(source), st.st_size, st.st_mtime_ns


class PyAVVideoReader(VideoReader):
    backend = "pyav"

    def __init__(self, source, name: str, seek_threshold: int | None = DEFAULT_SEEK_THRESHOLD, threads: int = 0):
        super().__init__(name)
        import av

        self.seek_threshold = seek_threshold
        self._source = source
        self._reformatter = None  # one swscale context for all of this reader's conversions (see _rgb)
        self._keep = None  # what map_frames keeps of each frame as it is converted (see _rgb)
        self._packet_pts = None  # every packet's presentation time, sorted (read with the clock)
        self._pts_map = None  # {packet pts: frame index}, False when the packet times cannot place frames
        self._count_table = None  # where to start decoding a file whose timestamps jump (read with the clock)
        self.frames_decoded = 0  # frames the decoder gave out for get_frames (the cost of a read)
        self.damaged_packets = 0  # packets the decoder refused and get_frames passed over
        try:
            opened = ffmpeg_input(source)
        except ValueError as e:  # an animated WebP whose frames cannot be drawn: what is wrong with it
            raise VideoReadError(name, str(e)) from e
        try:
            self._container = av.open(opened)
        except Exception as e:
            # FFmpeg's text names the path and an errno; people need to know what is wrong with the file.
            logger.debug("PyAV cannot open %s: %s", name, e)
            raise VideoReadError(name, "not a video file, or damaged beyond reading") from e
        try:
            stream = main_video_stream(self._container)
            if stream is None:
                covers = any(is_cover(s) for s in self._container.streams.video)
                raise VideoReadError(name, "no video stream: sound with a cover picture" if covers
                                     else "no video stream (audio-only or data file)")
            stream.thread_type = "AUTO"
            if threads:
                stream.thread_count = int(threads)
            self._stream = stream
            rate = frame_rate(stream)
            self.fps = float(rate) if rate else 0.0
            self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
            self._stored_size = (self.width, self.height)  # before a rotation turns it (see _rgb)
            self.num_frames = int(stream.frames or 0)
            self._count_estimated = self.num_frames <= 0
            # a capture's dropped frames are counted in its header, not in its index: its frames are the index's,
            # each at its own time (clock(), read below: frames by index and by time agree only then; _drops)
            dropping = _avi_frames(self._container, stream)
            self.num_frames = dropping or self.num_frames
            shown = self._shown_by_edit_list() if frames_shown(stream, self.fps) is not None else None
            self._edited = shown is not None  # the clock's packet times then give the count (see clock)
            if shown is not None:
                logger.debug("%s: an edit list shows %d of its %d frames", name, shown, self.num_frames)
                self.num_frames = shown
            if self.num_frames <= 0:
                # No frame count in the header (mkv, webm, ...): estimate from duration x fps, like decord.
                seconds = None
                if self._container.duration:
                    seconds = self._container.duration / 1_000_000  # AV_TIME_BASE
                elif stream.duration and stream.time_base:
                    seconds = float(stream.duration * stream.time_base)
                self.num_frames = int(self.fps * seconds) if seconds and self.fps else 0
            if self.num_frames <= 0 and self.fps > 0:
                # Neither a count nor a duration (a browser's MediaRecorder webm, a live capture): the packets are
                # the frames, and their times the clock
                try:
                    times, end = self._frame_times()
                except av.FFmpegError as e:  # a raw H.264/HEVC stream (a CCTV export) cannot be read again
                    raise VideoReadError(name, f"its frames cannot be counted ({_first_line(e)}): a raw stream "
                                               "without a container? Put it in one, e.g. `ffmpeg -i FILE -c copy "
                                               "FILE.mkv`") from e
                if times is not None:
                    self.num_frames = len(times)
                    self._clock = Clock.from_times(self.fps, self.num_frames, times, end)
            if self.num_frames < 1:
                raise VideoReadError(name, "the video stream has zero frames")
            if self.fps <= 0:
                raise VideoReadError(name, "the video stream has no frame rate")
        except BaseException:
            self._container.close()
            raise
        self._start_pts = stream.start_time if stream.start_time is not None else 0
        self._used = False
        self.rotation = self._probe_rotation()
        self.pixel_aspect = pixel_aspect_of(stream)
        self.shown_colors = shown_colors(stream)
        if self.rotation in (90, 270):
            self.width, self.height = self.height, self.width
            self.pixel_aspect = 1.0 / self.pixel_aspect  # turned upright, a wide pixel is a tall one
        if dropping:
            self.clock()

    def jumps(self) -> bool:
        """Whether the file's frames are timed by count (:func:`discontinuous`): its timestamps jump, or it has none
        (a raw stream, :data:`RAW_FORMATS`). Its clock read for an MPEG-TS/PS or a raw stream (every packet, once per
        process), nothing read for another format."""
        if self._container.format.name not in COUNTED_FORMATS:
            return False
        self.clock()
        return self.timed_by_count

    def count_table(self) -> CountTable | None:
        """Where decoding may start in this file, whose frames are timed by count (:class:`CountTable`); None where
        they are not (or where its packets cannot be read). Reads the clock, as :meth:`jumps`."""
        return self._count_table if self.jumps() else None

    def _shown_by_edit_list(self) -> int | None:
        """:func:`_edit_list_shows` of this reader's stream, its first packet read from a container of its own."""
        import av

        try:
            with av.open(ffmpeg_input(self._source)) as probe:
                stream = main_video_stream(probe)
                return _edit_list_shows(stream, self.fps, _first_packet(probe, stream)) if stream is not None else None
        except Exception as e:  # noqa: BLE001 - unreadable a moment after it opened (replaced?): the header's count
            logger.debug("cannot read the first packet of %s: %s", self.name, e)
            return None

    @property
    def edited(self) -> bool:
        """Whether an edit list hides some of the stream's frames (a video trimmed without re-encoding), or the
        stream starts with frames that cannot be decoded (a recording started between keyframes; known once the
        :meth:`clock` was read): the header or the packets count them, :attr:`num_frames` does not."""
        return bool(self._edited)

    @property
    def time_origin(self) -> float:
        """Where this reader's second 0 lies on the stream's timestamps, in seconds: its first frame shown, which
        lies after the stream's start where the first frames cannot be decoded. Previews and exports
        (:mod:`vtr.data.cut`) and cut detection (``index.policies``) count seconds from it too."""
        return float(self._origin() * self._stream.time_base)

    def _probe_rotation(self) -> int:
        # Phones store portrait video as landscape frames plus a display rotation; players (and decord) turn
        # the frames upright, so must we, or the model sees the world sideways. FFmpeg attaches the rotation to
        # each decoded frame, not to anything PyAV reads from the header: decode the first one.
        try:
            frame = next(iter(self._container.decode(self._stream)), None)
        except Exception as e:  # noqa: BLE001 - a file that fails here fails with its cause in get_frames
            logger.debug("cannot decode the first frame of %s: %s", self.name, e)
            frame = None
        finally:
            self._used = True
        self._first_pts = frame.pts if frame is not None else None  # the first frame's time (see _origin)
        degrees = int(round(getattr(frame, "rotation", 0) or 0)) % 360 if frame is not None else 0
        return degrees if degrees in (90, 180, 270) else 0

    def _get_frames(self, indices, size=None):
        # scaling in the RGB conversion's own swscale call (bicubic, as decord's scale filter)
        if size is not None and self.rotation in (90, 270):
            size = (size[1], size[0])  # the stored frame is scaled, then turned upright
        fmt = {"format": "rgb24"} if size is None else {"format": "rgb24", "width": size[0], "height": size[1],
                                                          "interpolation": "BICUBIC"}
        wanted = sorted(set(indices))
        got = self._decode_skipping(wanted, fmt)
        if got is not None:
            return self._gathered(got, indices)
        wanted_set = set(wanted)
        got = {}
        stream = self._stream
        decoder = None
        pos = -1            # index of the last decoded frame
        by_pts = False      # after a seek, indices come from timestamps instead of counting
        keyed = False       # after a seek by byte (frames timed by count), counting starts at a keyframe
        table = self._count_table if self._discontinuous else None
        damaged, last, placed = 0, None, None  # packets the decoder refused; the last frame out; {pts: index}
        gap = None  # the first place of damaged packets whose frames wait for the next frame out
        try:
            for target in wanted:
                if target in got:
                    continue
                far = self.seek_threshold is not None and target - pos > self.seek_threshold
                entry = table.entry(target) if table is not None else None
                leap = entry is not None and (decoder is None or target <= pos
                                              or table.key_count[entry] - pos > DEFAULT_SEEK_THRESHOLD)
                if decoder is None or target <= pos or far or leap:
                    keyed = False
                    if leap:  # the keyframe before it, by byte: its count is known (CountTable)
                        self._container.seek(int(table.key_pos[entry]), unsupported_byte_offset=True)
                        packets = demuxed(self._container, stream)
                        by_pts, keyed, pos = False, True, int(table.key_count[entry]) - 1
                    elif far and target > 0:
                        packets = self._seek_to(target, self._pts_of(target))
                        by_pts, pos = True, -1
                    else:
                        if self._used:  # rewind a container that an earlier call (or seek) moved
                            rewind(self._container, stream)
                        packets = demuxed(self._container, stream)
                        by_pts, pos = False, -1
                    self._used = True
                    decoder, gap = _passing_damage(packets), None
                for frame in decoder:
                    if frame is None:  # a damaged packet: its frame never comes out (counted, when frames are)
                        if not keyed:
                            damaged, gap = damaged + 1, pos + 1 if gap is None else gap
                            pos += 0 if by_pts else 1
                            if placed is None:  # the decoder can drop frames that refer to it without a word
                                placed = (self._pts_index() if table is None else None) or {}
                        continue
                    self.frames_decoded += 1
                    if keyed:  # frames before the keyframe (shown before it, or the tail of the one before)
                        if not frame.key_frame:
                            continue
                        keyed = False
                    if by_pts:
                        if frame.pts is None:  # cannot place the frame in time: count from the start instead
                            return self._sequential_fallback(indices, size)
                        pos = self._index_of(frame.pts)
                    elif placed and frame.pts in placed:  # after damage: by the clock's packet times, where read
                        pos = placed[frame.pts]
                    else:
                        pos += 1
                    last = frame
                    if gap is not None:  # the damaged packets' places take the next frame out, as players show it
                        for i in wanted_set.difference(got).intersection(range(gap, pos)):
                            got[i] = self._rgb(frame, fmt)
                        gap = None
                    if pos in wanted_set and pos not in got:
                        got[pos] = self._rgb(frame, fmt)
                    if pos >= target:
                        break
                if target not in got and gap is not None and last is not None:  # the last packets were damaged
                    for i in wanted_set.difference(got).intersection(range(gap, pos + 1)):
                        got[i] = self._rgb(last, fmt)
                if target not in got:
                    if by_pts and pos < target:
                        decoded = f"decoding stopped near frame {pos}"
                    else:
                        decoded = f"only {pos + 1} frames decode"
                    raise VideoReadError(self.name, f"frame {target} cannot be decoded; {decoded} of the "
                                                    f"{self.num_frames} announced (truncated file?)",
                                         decodable_frames=None if by_pts else pos + 1)
        except VideoReadError:
            raise
        except Exception as e:
            if gap is not None and not by_pts:  # too many damaged packets in a row: the frames before them decoded
                pos = gap - 1
            raise VideoReadError(self.name, f"the video data is damaged after frame {pos + 1} ({_first_line(e)})"
                                 if pos >= 0 else f"PyAV failed to decode ({_first_line(e)})",
                                 decodable_frames=None if by_pts else pos + 1) from e
        if damaged:
            self.damaged_packets += damaged
            logger.info("%s: %d damaged packet(s) passed over (each of their frames shown as the next one)",
                        self.name, damaged)
        return self._gathered(got, indices)

    def map_frames(self, indices, fn, size=None) -> list:
        # one decoding pass, each frame handed to fn as it is converted (_rgb)
        indices, size = self._checked(indices, size)
        if not indices:
            return []
        self._keep = fn
        try:
            return self._get_frames(indices, size)
        finally:
            self._keep = None

    def _gathered(self, got: dict, indices: list):
        """The frames at ``indices`` (repeats allowed) from ``got``: stacked, or as a list of what ``fn`` kept of each
        (:meth:`map_frames`)."""
        return [got[i] for i in indices] if self._keep is not None else np.stack([got[i] for i in indices])

    def _rgb(self, frame, fmt) -> np.ndarray:
        # one swscale context for the reader's frames: a frame's own to_ndarray builds one per call, which costs
        # more than the conversion at 2x the model's size (the same bits either way)
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        if "width" not in fmt and (frame.width, frame.height) != self._stored_size:
            # a stream whose picture size changes (a TV recording's programmes and adverts, a browser's recording
            # of a window resized): every frame at the size the header gives, as a player shows them in one window
            fmt = {**fmt, "width": self._stored_size[0], "height": self._stored_size[1], "interpolation": "BICUBIC"}
        if frame.interlaced_frame:  # a camcorder's 1080i: its two fields combed every moving edge
            frame = deinterlace_frame(frame)
        # PQ or HLG (a phone's HDR video) tone-mapped to SDR (vtr.data.hdr); an APNG's transparency over white
        rgb = shown_rgb(frame, self._reformatter, fmt.get("width"), fmt.get("height"), fmt.get("interpolation"))
        if self.rotation:  # counter-clockwise, as FFmpeg's display rotation and decord
            rgb = np.rot90(rgb, self.rotation // 90)
        return rgb if self._keep is None else self._keep(rgb)

    def _decode_skipping(self, wanted: list[int], fmt) -> dict | None:
        """The frames at ``wanted`` (sorted, distinct), decoded without the frames that are neither wanted nor
        referenced by another frame: the decoder is told per packet to drop it (``skip_frame=NONREF``) unless the
        packet holds a wanted frame. Dropping a frame that no other frame references changes no other frame, so the
        result is the same bit for bit as decoding every frame; on footage with B-frames it decodes about half the
        frames (``bench/README.md``, fourteenth round). Frames are placed by their packets' presentation times
        (presentation order), so this runs once :meth:`clock` has read them (:meth:`_pts_index`).

        A packet the decoder refuses (a damaged one: a hole of zeros in an MP4's data) is passed over, as players
        pass over it, up to :data:`DAMAGED_PACKETS` in a row; a wanted frame that does not come out after one (its own
        packet, or one it refers to, was damaged) is given as the next frame out (the frames after a damaged one show
        its damage, as they do in players). Before, one damaged packet ended the reading: the index lost every window
        after it in the keyframe's group, and listed the file as indexed in part ("cannot be decoded past").

        Only for :data:`SKIP_CODECS`. None where it cannot tell (no packet times, a frame whose time is not a
        packet's, a wanted frame that does not come out, a decoding error): the caller then decodes every frame,
        which also reports what is wrong with the file."""
        import av

        stream = self._stream
        if stream.codec_context.name not in SKIP_CODECS:
            return None
        index_of = self._pts_index()
        if index_of is None or wanted[-1] >= len(index_of):
            return None
        pts_of = self._packet_pts
        want_pts = {int(pts_of[i]) for i in wanted}
        ctx = stream.codec_context
        got: dict[int, np.ndarray] = {}
        remaining = list(reversed(wanted))  # next wanted frame last
        refused: set[int] = set()  # the times of the packets the decoder refused
        try:
            while remaining:
                target = remaining[-1]
                packets = self._seek_to(target, int(pts_of[target]))
                self._used = True
                pos = -1
                refused_in_a_row, frame = 0, None
                for packet in packets:
                    # the demuxer's last, empty packet drains the decoder: nothing of it to skip
                    ctx.skip_frame = "DEFAULT" if packet.size == 0 or packet.pts in want_pts else "NONREF"
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError:  # a damaged packet: passed over, as players pass over it
                        refused_in_a_row += 1
                        if refused_in_a_row > DAMAGED_PACKETS or packet.pts is None:
                            raise
                        refused.add(int(packet.pts))
                        continue
                    refused_in_a_row = 0
                    for frame in frames:
                        self.frames_decoded += 1
                        pos = index_of.get(frame.pts, -2) if frame.pts is not None else -2
                        if pos == -2:
                            return None
                        while remaining and pos > remaining[-1] and refused:
                            # its packet was damaged, or one it refers to (the decoder drops such a frame): the next
                            got[remaining.pop()] = self._rgb(frame, fmt)
                        if remaining and pos == remaining[-1]:
                            got[pos] = self._rgb(frame, fmt)
                            remaining.pop()
                        elif remaining and pos > remaining[-1]:
                            return None  # the decoder passed a wanted frame without giving it
                        if not remaining:
                            break
                    if not remaining or (remaining[-1] != target and self.seek_threshold is not None
                                         and remaining[-1] - pos > self.seek_threshold):
                        break  # all there, or the next one after this seek's target is far: seek to it
                else:
                    if frame is None or not refused:
                        return None  # the packets ended before every wanted frame came out
                    while remaining:  # the last ones' packets were damaged: the last frame shown
                        got[remaining.pop()] = self._rgb(frame, fmt)
        except Exception as e:  # noqa: BLE001 - the full decode reports it
            logger.debug("decoding %s with skipping failed (%s); decoding every frame", self.name, e)
            return None
        finally:
            ctx.skip_frame = "DEFAULT"
        if refused:
            self.damaged_packets += len(refused)
            logger.info("%s: %d damaged packet(s) passed over (each of their frames shown as the next one)",
                        self.name, len(refused))
        return got

    def _seek_to(self, target: int, target_pts: int):
        """The stream's packets from a keyframe shown at or before frame ``target`` (presentation time
        ``target_pts``). A seek alone does not promise one: FFmpeg's MP4/MOV demuxer seeks by decoding time, which
        runs ahead of presentation time by the B-frame delay, so a seek to a frame just before a keyframe lands on
        that keyframe; MPEG-TS can land on any packet, from which the decoder waits for the next keyframe. Either way
        the frames before it never come out. So the packets are read on to the first keyframe and, where that is
        shown after ``target``, the seek goes further back (2, 4, 8... frames, then the start, where a seek is
        refused)."""
        import itertools

        import av

        stream = self._stream
        back = 0
        while True:
            seek_pts = target_pts if back == 0 else (self._pts_of(target - back) if back < target else None)
            if seek_pts is not None:
                try:
                    self._container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError as e:  # a stretch of zeros on the way in an MPEG-TS: "not permitted"
                    logger.debug("cannot seek in %s (%s): from the start", self.name, _first_line(e))
                    seek_pts = None
            if seek_pts is None:
                rewind(self._container, stream)
                return demuxed(self._container, stream)
            packets = demuxed(self._container, stream)
            first = None
            for packet in itertools.islice(packets, KEYFRAME_SCAN):
                if packet.is_keyframe and packet.size:  # (the demuxer's last packet is empty: the end, no keyframe)
                    first = packet
                    break
            if first is not None and (first.pts is None or first.pts <= target_pts):
                return itertools.chain([first], packets)
            back = max(2, 2 * back)

    def _pts_index(self) -> dict | None:
        """{packet presentation time: frame index}, once the packet times were read (:meth:`clock`, which the index
        reads; evaluation does not, and a long file's packets are not read for a few frames); None when they were
        not, or cannot place frames (unknown, repeated)."""
        if self._pts_map is None:
            pts = self._packet_pts
            if pts is None:
                return None
            self._pts_map = {int(p): i for i, p in enumerate(pts)} if len(np.unique(pts)) == len(pts) else False
        return self._pts_map or None

    def _sequential_fallback(self, indices, size=None):
        saved, self.seek_threshold = self.seek_threshold, None
        try:
            return self._get_frames(indices, size)
        finally:
            self.seek_threshold = saved

    def _frame_times(self):
        # The packets' timestamps, no decoding (reads the file once). A packet without one leaves the timing
        # unknown; a count unlike the header's is not this stream's frames. A file on disk is read once per process
        # (``FRAME_TIMES_CACHE``): the index opens a long file again for each chunk of its windows.
        key = _file_identity(self._source)
        with _FRAME_TIMES_LOCK:
            cached = _FRAME_TIMES.get(key) if key is not None else None
        if cached is not None:
            times, end, self._times_origin, self._packet_pts, hidden, self._discontinuous, self._count_table = cached
            self._edited = self._edited or hidden
        else:
            times, end = self._read_frame_times()
        if self._discontinuous:  # frames by count only: a seek by time lands in either side of a jump
            self.seek_threshold, self._count_estimated = None, True
        if cached is not None:
            return (None if times is None else times.copy()), end
        if key is not None:
            with _FRAME_TIMES_LOCK:
                _FRAME_TIMES[key] = (None if times is None else times.copy(), end,  # the caller may change its own
                                     getattr(self, "_times_origin", None), self._packet_pts, self._edited,
                                     self._discontinuous, self._count_table)
                while len(_FRAME_TIMES) > FRAME_TIMES_CACHE:
                    _FRAME_TIMES.pop(next(iter(_FRAME_TIMES)))
        return times, end

    def _read_frame_times(self):
        stream = self._stream
        pts, end, hidden, keyed, dts, closed = [], None, 0, None, [], False
        jumpy = self._container.format.name in DISCONTINUOUS_FORMATS
        raw = self._container.format.name in RAW_FORMATS
        hevc = stream.codec_context.name == "hevc"
        keys, positions, shown_dts = [], [], []  # of the packets in pts, for a file whose timestamps jump
        leading = []  # of a raw stream's packets: whether each is an HEVC leading picture (_hevc_leading)
        mpeg_video = stream.codec_context.name in MPEG_VIDEO_CODECS
        rewind(self._container, stream)
        self._used = True
        for packet in demuxed(self._container, stream):
            if packet.size == 0:  # the demuxer's flush packet
                continue
            if raw:  # no times: each packet one frame (FFmpeg's parser gives a picture a packet), in decoding order
                keys.append(packet.is_keyframe and (hevc or _slice_type(packet, "h264") == H264_IDR))
                positions.append(packet.pos)
                leading.append(_hevc_leading(packet) if hevc else None)
                continue
            dts.append(packet.dts if packet.dts is not None else packet.pts)
            if keyed is None and packet.is_keyframe:
                keyed = len(pts)  # where a decoder can start (see _undecodable_start); hidden or not
                # the frames after it shown before it decode where its group is closed, and an edit list that hides
                # it says itself which frames are shown
                closed = packet.is_discard or _closed_gop(stream, packet)
            if packet.is_discard:  # before an edit list's start (see frames_shown): decoded, never shown
                hidden += 1
                continue
            if packet.pts is None:
                return None, None
            pts.append(packet.pts)
            if jumpy:
                keys.append(_temporal_reference(packet) if mpeg_video and packet.is_keyframe else packet.is_keyframe)
                positions.append(packet.pos)
                shown_dts.append(dts[-1])
            if packet.duration:
                end = max(end if end is not None else 0, packet.pts + packet.duration)
        if raw:
            return self._timed_raw(leading, keys, positions)
        if not pts or (stream.frames and len(pts) + hidden != stream.frames and not self._drops(pts, hidden)):
            return None, None
        if jumpy and _jumps(dts, float(stream.time_base)):
            # timed by count: frame k at k / fps from the first, as ffmpeg goes on across a jump (and never
            # sought by time, which the jump makes ambiguous: see discontinuous), decoded from the keyframe before
            # it (CountTable)
            self._count_table, lead = CountTable.from_packets(pts, shown_dts, keys, positions, keyed, closed,
                                                              self.fps, float(stream.time_base))
            self._edited = self._edited or hidden + lead > 0
            self._discontinuous, self._count_estimated, self._packet_pts = True, True, None
            logger.info("%s: its timestamps jump (a recording joined or resumed): its frames are timed by count",
                        self.name)
            frames = self._count_table.frames
            return np.arange(frames) / self.fps, frames / self.fps
        pts, lead = _undecodable_start(pts, keyed, closed)
        hidden += lead
        self._edited = self._edited or hidden > 0
        pts.sort()
        tb = float(stream.time_base)
        self._times_origin = pts[0]
        self._packet_pts = np.asarray(pts, np.int64)
        return (np.asarray(pts, np.float64) - pts[0]) * tb, None if end is None else (end - pts[0]) * tb

    def _timed_raw(self, leading: list, keys: list, positions: list):
        """:meth:`_read_frame_times` of a raw stream (:data:`RAW_FORMATS`), from its packets in decoding order:
        whether each is an HEVC leading picture (:func:`_hevc_leading`), a keyframe, its byte position. Frame ``k``
        is at ``k / fps``, decoded from the keyframe before it (:class:`CountTable`). The packets before the first
        keyframe are not counted (a stream cut from a longer one, a recording started between keyframes), nor that
        keyframe's skipped leading pictures: decoders drop them.

        Packets come in decoding order; a keyframe is shown after the frames decoded before it, and, in HEVC,
        after its leading pictures, which follow it (an open group of pictures, as x265 writes by default): its
        count takes them in. An H.264 keyframe is an IDR (:data:`H264_IDR`); FFmpeg's recovery points are not
        places to start from (a decoder gives nothing from one until its picture is whole, and an open group's
        B-frames after one are shown before it, which only its slices' picture order would say)."""
        if not keys:
            return None, None
        keyed = next((i for i, key in enumerate(keys) if key), None)
        if keyed is not None:  # the first keyframe's skipped leading pictures are never shown: not frames
            gone = set(itertools.takewhile(lambda i: leading[i] == "skipped", range(keyed + 1, len(keys))))
            leading, keys, positions = ([x for i, x in enumerate(v) if i not in gone]
                                        for v in (leading, keys, positions))
        order, last_key = [], None  # presentation order enough to count: 2i, a leading picture just before its key
        for i, (key, lead) in enumerate(zip(keys, leading)):
            last_key = i if key else last_key
            order.append(2 * last_key - 1 if lead and last_key is not None and not key else 2 * i)
        self._count_table, lead = CountTable.from_packets(order, order, keys, positions, keyed, True,
                                                          self.fps, 1.0 / (2 * self.fps))
        self._edited = self._edited or lead > 0
        self._discontinuous, self._count_estimated, self._packet_pts = True, True, None
        codec = self._stream.codec_context.name
        logger.debug("%s: a raw %s stream, without a container: its frames are timed by count at %g fps", self.name,
                     RAW_CODEC_NAMES.get(codec, codec), self.fps)
        frames = self._count_table.frames
        return np.arange(frames) / self.fps, frames / self.fps

    def _drops(self, pts: list, hidden: int) -> bool:
        """Whether packets at ``pts``, fewer than the header's count, are the frames of a capture that dropped some:
        an AVI has no timestamps but one chunk per frame period, and capture software (a VHS or camcorder
        digitised, a webcam) writes an empty chunk for a frame it dropped, which the header counts and FFmpeg
        gives no packet for. Each packet's time is then its period's, which players keep: the frame before a drop is
        shown twice as long. Counted instead, frames drifted a period early per drop (seconds in a long capture)
        and the last ones did not exist ("cannot be decoded past ...")."""
        periods = float(self._stream.time_base) * self.fps  # periods per tick: 1 in an AVI
        if len(pts) + hidden >= self._stream.frames or len(set(pts)) != len(pts) or abs(periods - 1) > 1e-6:
            return False
        return max(pts) - min(pts) + 1 + hidden == self._stream.frames

    def _origin(self) -> int:
        # the first frame's time: from the packets once they were read, else the first frame's, else the stream's
        # start (which can differ: AVI with B-frames numbers its frames from 1 and starts its stream at 0)
        if self._packet_pts is not None:
            return int(self._packet_pts[0])
        return self._start_pts if getattr(self, "_first_pts", None) is None else int(self._first_pts)

    def _pts_of(self, index: int) -> int:
        tb = float(self._stream.time_base)
        if self._clock is not None and self._clock.variable:  # frame times read: exact at any rate
            return int(self._times_origin + round(self._clock.times[index] / tb))
        return int(self._origin() + round(index / self.fps / tb))

    def _index_of(self, pts: int) -> int:
        tb = float(self._stream.time_base)
        if self._clock is not None and self._clock.variable:
            return int(np.searchsorted(self._clock.times, (pts - self._times_origin) * tb + 1e-6, side="right")) - 1
        return int(round((pts - self._origin()) * tb * self.fps))

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container = None


def filter_graph(frame, time_base, name: str, args: str = ""):
    """A configured FFmpeg graph ``buffer -> name=args -> buffersink`` for frames shaped as ``frame``; feed it with
    ``push`` (``None`` at the end) and take its frames with :func:`pulled`."""
    import av

    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=time_base)
    node = graph.add(name, args)
    sink = graph.add("buffersink")
    source.link_to(node)
    node.link_to(sink)
    graph.configure()
    return graph


def pulled(graph):
    """The frames a :func:`filter_graph` has ready."""
    import av

    while True:
        try:
            yield graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def deinterlace_frame(frame):
    """One interlaced frame as a progressive one, by FFmpeg's ``yadif`` given that frame alone (so within its
    fields: a reader jumps between frames, and a filter that looks at the frames around would see others than
    those around it). About 9 ms for a 1080i frame here (timed by hand); the frame as it is when it cannot be done.
    Previews and exports, which read every frame in order, use ``bwdif`` over the stream
    (:func:`vtr.data.cut.deinterlaced`)."""
    try:
        graph = filter_graph(frame, frame.time_base or Fraction(1, 25), "yadif",
                             "mode=send_frame:parity=auto:deint=interlaced")
        graph.push(frame)
        graph.push(None)
        out = graph.pull()
    except Exception as e:  # noqa: BLE001 - combed is better than not read
        logger.debug("cannot deinterlace a frame: %s", e)
        return frame
    for name in ("color_trc", "color_primaries", "colorspace", "color_range"):  # what the conversion reads
        if getattr(out, name, None) != getattr(frame, name, None):
            try:
                setattr(out, name, getattr(frame, name))
            except (AttributeError, TypeError, ValueError):
                pass
    return out


def decode_from(container, stream, seconds: float, origin: float = 0.0, frames=None,
                by_count: bool | CountTable = False):
    """``stream``'s decoded frames from one shown at or before ``seconds`` (counted from ``origin``, the stream's
    first time, both in seconds) on. A seek alone does not promise one: MP4's demuxer seeks by decoding time (ahead
    of presentation by the B-frame delay), MPEG-TS by estimated byte position, landing anywhere, even past the
    target backwards and past a stream's first frame, after which the decoder waits for the next keyframe. So while
    the first frame out is shown after ``seconds`` (or none comes out) it seeks further back (1, 2, 4... s), down to
    time 0, before every stream's start. Used where frames are cut by time (cut detection, the app's previews);
    :meth:`PyAVVideoReader._seek_to` is the same for frames by index.

    frames: ``frames(container, stream)``, the frames after a seek (default: :func:`decodable_frames`, passing over
    up to :data:`DAMAGED_PACKETS` damaged packets in a row, as the index's reading does).
    by_count: a file whose timestamps jump (:func:`discontinuous`): its frames timed by count as its reader times
    them (a video frame ``k`` at ``origin + k / rate``), which the callers skip to ``seconds``; a seek by time would
    land on either side of a jump. Given its :class:`CountTable`, they are decoded from the keyframe before
    ``seconds`` (a seek by byte), and its sound is timed as the pictures of its part; True: from the start, the
    sound timed by its samples.
    """
    import itertools

    import av

    frames = frames or (lambda c, s: decodable_frames(c, s, refused_in_a_row=DAMAGED_PACKETS))
    if isinstance(by_count, CountTable):
        return _from_keyframe(container, stream, seconds, origin, frames, by_count)
    if by_count:
        rewind(container)
        return _timed_by_count(frames(container, stream), stream, origin)
    margin = 0.0
    while True:
        target = seconds - margin
        try:
            if target > 0:
                container.seek(int((origin + target) * av.time_base), backward=True)
            else:
                rewind(container)
        except av.error.FFmpegError:  # unseekable: decode from the start
            rewind(container)
            target = 0.0
        out = frames(container, stream)
        first = next(out, None)
        if target <= 0 or (first is not None and (first.time is None or first.time - origin <= seconds + 1e-3)):
            return itertools.chain([first], out) if first is not None else iter(())
        margin = max(1.0, 2 * margin)


def _passing_damage(packets, refused_in_a_row: int | None = DAMAGED_PACKETS, refused=None):
    """The frames of ``packets``, and None in place of each packet the decoder refuses (``refused``: the errors that
    mean so; default InvalidDataError, a damaged one: a hole of zeros in the file, bad sectors read back as zeros), as
    players pass over them; more than ``refused_in_a_row`` in a row (None: no limit) raise the last error. Before,
    the reader's first refusal ended its reading, of every codec but H.264 and HEVC (which
    :meth:`PyAVVideoReader._decode_skipping` reads): an old camera's MJPEG or MPEG-4 AVI lost everything after one
    damaged frame."""
    import av

    refused = refused or av.error.InvalidDataError
    in_a_row = 0
    for packet in packets:
        try:
            frames = packet.decode()
        except refused:
            if not packet.size:  # the decoder's drain at the end: no frame of its own to stand for
                return
            in_a_row += 1
            if refused_in_a_row is not None and in_a_row > refused_in_a_row:
                raise
            yield None
            continue
        in_a_row = 0
        yield from frames


def _until_demuxer_gives_up(packets):
    """``packets``, ended where the demuxer itself gives up (an FFmpeg error of its own): nothing further can be
    read."""
    import av

    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.FFmpegError):
            return
        yield packet


def decodable_frames(container, stream, refused_in_a_row: int | None = None):
    """The frames of ``stream`` that decode, packet by packet: a packet the decoder refuses (a damaged one, or one a
    seek landed inside: a DVD's AC-3 sound after a seek) is skipped, as players skip it, and a demuxer that gives up
    ends them. ``refused_in_a_row``: more packets than that refused in a row raise the last error (a broken track);
    None: never. Cut detection (``index.policies``) and the sound of cuts (:mod:`vtr.data.cut`) read frames so."""
    import av

    packets = _until_demuxer_gives_up(demuxed(container, stream))
    yield from (f for f in _passing_damage(packets, refused_in_a_row, av.FFmpegError) if f is not None)


def _from_keyframe(container, stream, seconds: float, origin: float, frames, table: CountTable):
    """:func:`decode_from` for a file whose timestamps jump, with its :class:`CountTable`: from the last keyframe
    whose first frame out is not after ``seconds``. A video's keyframe is counted (:meth:`CountTable.entry`); the
    sound after a keyframe's byte position is muxed near its pictures, give or take a second, so a sound stream starts
    from a keyframe :data:`SOUND_SLACK_S` earlier, and further back while its first frame is after ``seconds``."""
    import itertools

    video = stream.type == "video"
    frame_at = max(0, math.floor(seconds * table.rate + 1e-6) - (0 if video else int(SOUND_SLACK_S * table.rate)))
    entry = table.entry(frame_at)
    while True:
        if entry is None:
            rewind(container)
            return _timed_by_count(frames(container, stream), stream, origin, table)
        container.seek(int(table.key_pos[entry]), unsupported_byte_offset=True)
        out = _timed_by_count(frames(container, stream), stream, origin, table, entry)
        first = next(out, None)
        if first is not None and (video or first.time is None or first.time - origin <= seconds + 1e-3):
            return itertools.chain([first], out)
        entry = entry - 1 if entry > 0 and table.key_count[entry - 1] > 0 else None


def _timed_by_count(frames, stream, origin: float, table: CountTable | None = None, entry: int | None = None):
    """``frames`` of ``stream`` from its start, their timestamps replaced by their count: video frame ``k`` at
    ``origin + k / rate``, a sound frame at the sound's first time plus the samples before it
    (:func:`decode_from`). With the file's ``table`` (:class:`CountTable`), a sound frame is timed as the pictures of
    its part; from its keyframe ``entry`` (the container sought to it by byte), video frames are counted from the
    first keyframe out, the keyframe's count."""
    tb = float(stream.time_base)
    rate = float(frame_rate(stream) or 25) if stream.type == "video" else None
    k, samples, start, expected = 0, 0, None, None
    keyed = entry is not None
    part = int(table.key_part[entry]) if entry is not None else 0
    if keyed and rate is not None:
        k = int(table.key_count[entry])
    for frame in frames:
        if rate is not None:
            if keyed:  # the frames before the keyframe: shown before it (an open GOP) or a packet's tail
                if not frame.key_frame:
                    continue
                keyed = False
            seconds, k = origin + k / rate, k + 1
        elif table is not None:  # as the pictures of its part: timestamps go on within one
            if frame.time is None:
                continue
            # a step from a time that lay in its part (one before the first, as AAC's priming can give, did not)
            step = frame.time - expected if expected is not None else 0.0
            part, placed = table.part_of(frame.time, part, step > DISCONTINUITY_S or step < -DISCONTINUITY_BACK_S)
            expected = frame.time + frame.samples / frame.sample_rate if placed else None
            seconds = frame.time + table.sound_offset(part, origin)
        else:  # from where the sound starts, before any jump (beside the video's first frame, or not)
            start = start if start is not None else (frame.time if frame.time is not None else origin)
            seconds, samples = start + samples / frame.sample_rate, samples + frame.samples
        frame.pts, frame.time_base = int(round(seconds / tb)), stream.time_base
        yield frame


#: HEVC's leading pictures: after their keyframe (a CRA or an IDR) in decoding order, shown before it. RADL pictures
#: refer to nothing before it, and are shown; RASL pictures refer to frames before it, and a decoder that starts at
#: the keyframe skips them (their NAL unit types).
HEVC_RADL = frozenset({6, 7})
HEVC_RASL = frozenset({8, 9})

#: How far into a raw stream's packet its first picture's slice is looked for: the first bytes, where it lies after
#: a few parameter sets, else further (after an encoder's SEI that names its settings, a few kilobytes).
NAL_SCAN_BYTES = (512, 65536)


def _slice_type(packet, codec: str) -> int | None:
    """The NAL unit type of the first slice of an H.264 or HEVC packet of Annex B (a raw stream's: its picture's
    type, after the parameter sets and SEI before it); None where none is found."""
    view = memoryview(packet)
    for size in NAL_SCAN_BYTES:
        data = view[:size].tobytes()
        at = data.find(b"\x00\x00\x01")
        while 0 <= at < len(data) - 3:
            header = data[at + 3]
            kind = header & 0x1F if codec == "h264" else (header >> 1) & 0x3F
            if (1 <= kind <= 5) if codec == "h264" else kind < 32:
                return kind
            at = data.find(b"\x00\x00\x01", at + 3)
        if len(data) < size:
            break
    return None


def _hevc_leading(packet) -> str | None:
    """Whether an HEVC packet of Annex B (a raw stream's) holds a leading picture: ``"shown"`` (RADL),
    ``"skipped"`` (RASL, skipped where decoding starts at its keyframe: :data:`HEVC_RASL`), None where it does
    not. From its first slice's NAL unit type."""
    kind = _slice_type(packet, "hevc")
    return "shown" if kind in HEVC_RADL else "skipped" if kind in HEVC_RASL else None


#: H.264's NAL unit type of an IDR picture's slice, from which decoding starts clean. FFmpeg's parser also calls a
#: picture at a recovery point a keyframe (an I-picture that is no IDR, or any picture of a stream refreshed by
#: stripes, as some cameras write it): a decoder that starts there gives nothing until the picture is whole, some
#: frames later, and none of its frames is marked a keyframe.
H264_IDR = 5


def _span(indices: list[int]) -> str:
    """``[0, 1, ..., 149]`` → ``"0-149 (150 frames)"``: an error message names the range, not every index."""
    return f"{min(indices)}-{max(indices)} ({len(indices)} frames)" if len(indices) > 3 else str(indices)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    # decord prefixes "[hh:mm:ss] /path/video_reader.cc:NN: " — keep the message only.
    line = text.splitlines()[0]
    if ".cc:" in line:
        line = line.split(": ", 1)[-1]
    return line[:300]


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except Exception:
        return False
    return True


def _check_source(source, name: str):
    """Reject the cases decord reports badly (or crashes on) before any decoder sees them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoReadError(name, "empty byte string")
        return
    path = Path(source)
    if not path.exists():
        raise VideoReadError(name, "file not found")
    if path.is_dir():
        raise VideoReadError(name, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoReadError(name, "empty file (0 bytes)")


def _from_header(source, read, default):
    """``read(stream)`` of the main video stream of ``source`` (a path or bytes), from its header (about 1 ms, no
    frame decoded); ``default`` when it has none or cannot be read (the reader says why)."""
    import av

    try:
        with av.open(ffmpeg_input(source)) as container:
            stream = main_video_stream(container)
            return default if stream is None else read(stream)
    except Exception:  # noqa: BLE001 - the reader that opens it says what is wrong
        return default


def header_flags(source) -> tuple[bool, bool]:
    """``(hdr, interlaced)`` as the main video stream's header says: a PQ or HLG transfer, fields (any order). About
    1 ms: the header only, no frame decoded; (False, False) when it cannot be read (the reader says why)."""
    return _from_header(source, stream_flags, (False, False))


def transparent(source) -> bool:
    """Whether the main video stream's pixels carry transparency, as its header says (an editor's ProRes 4444 or
    QuickTime Animation overlay, PNG in MOV, an APNG or a GIF); about 1 ms. The readers put it over white
    (:func:`vtr.data.image.shown_rgb`)."""
    return _from_header(source, lambda stream: format_has_alpha(stream.codec_context.pix_fmt), False)


def stream_flags(stream) -> tuple[bool, bool]:
    """:func:`header_flags` of an opened PyAV video stream."""
    cc = stream.codec_context
    return cc.color_trc in (HDR_PQ, HDR_HLG), (cc.field_order or 0) > 1  # field order 0 unknown, 1 progressive


#: Where decord 0.6's ``get_batch`` returns the frames asked for, checked frame by frame against PyAV with random
#: reads (``python -m bench.decoders``; tests/data/test_video.py): H.264 in these containers (FFmpeg's demuxer
#: names), and any codec there whose frames are decoded in the order they are shown. Elsewhere it returns other frames
#: than asked, and says nothing: MPEG-TS (a whole GOP late), AVI with H.264, ASF/WMV, MPEG program streams (.mpg,
#: .vob), and HEVC, MPEG-4 part 2 or MPEG-2 with B-frames even in MP4 or Matroska (dmlc/decord#195, #252, #365).
DECORD_CONTAINERS = frozenset({"mov", "matroska", "flv"})
DECORD_REORDERED_CODECS = frozenset({"h264"})


def decord_unsuited(source) -> str | None:
    """Why ``open_video(backend="auto")`` reads ``source`` with PyAV although decord is installed; None when decord
    reads it right (see :data:`DECORD_CONTAINERS`), or the header cannot be read (the readers say what is wrong).
    From the header and the first packet: about a millisecond."""
    import av

    if not isinstance(source, (bytes, bytearray, memoryview)) and embedded_video(source) is not None:
        return "a motion photo's video, which decord cannot find inside the photo"
    if animated_webp(source):
        return "an animated WebP, which decord cannot decode"
    try:
        with av.open(ffmpeg_input(source)) as container:
            stream = main_video_stream(container)
            if stream is None:
                return None
            cc = stream.codec_context
            hdr, interlaced = stream_flags(stream)
            if hdr:
                return "HDR, which decord cannot tone-map (see vtr.data.hdr)"
            if interlaced:
                return "interlaced, which decord cannot deinterlace"
            if format_has_alpha(cc.pix_fmt):  # ProRes 4444, QuickTime Animation, PNG in MOV: an editor's overlay
                return "transparent, which decord drops (it shows the colours stored under the transparency)"
            kind = container.format.name.split(",")[0]
            if kind not in DECORD_CONTAINERS:
                return f"its container ({kind}) is one where decord reads other frames than asked"
            if cc.has_b_frames and cc.name not in DECORD_REORDERED_CODECS:
                return f"{cc.name} with B-frames, where decord reads other frames than asked"
            if _starts_hidden(container, stream):
                return "it starts with frames players do not show, which decord counts"
            return None
    except Exception:  # noqa: BLE001 - the reader that opens it says what is wrong
        return None


def open_video(source: VideoSource, backend: str = "auto", name: str | None = None,
               seek_threshold: int | None = DEFAULT_SEEK_THRESHOLD, threads: int = 0) -> VideoReader:
    """Open a video from a path or from its bytes.

    backend: ``"auto"`` (decord where it is installed, opens the file and reads it right, else PyAV: see
    :func:`decord_unsuited`; a decord decode error retries with PyAV), ``"decord"`` or ``"pyav"``.
    name: what error messages call the source (default: the path, or ``<N bytes>``).
    threads: codec threads of the PyAV decoder (0: FFmpeg's automatic count, one per core); decord decodes with
    one thread.
    Raises :class:`VideoReadError` naming the source and the cause.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or f"<{len(source)} bytes>"
    else:
        name = name or os.fspath(source)
    _check_source(source, name)

    def pyav():
        return PyAVVideoReader(source, name, seek_threshold=seek_threshold, threads=threads)

    if backend == "pyav":
        return pyav()
    if backend == "decord":
        return DecordVideoReader(source, name)
    if backend != "auto":
        raise ValueError(f"unknown video backend {backend!r}; expected 'auto', 'decord' or 'pyav'")
    unsuited = decord_unsuited(source) if _decord_available() else "decord is not installed"
    if unsuited:
        logger.debug("reading %s with PyAV: %s", name, unsuited)
    else:
        try:
            return DecordVideoReader(source, name, fallback=pyav)
        except VideoReadError as decord_error:
            try:
                return pyav()
            except VideoReadError as e:
                logger.debug("decord cannot open %s either: %s", name, decord_error.cause)
                raise VideoReadError(name, e.cause) from e
    return pyav()


#: A file counts as cut short when its data ends this long before the duration its header declares (and
#: CUT_SHORT_SHARE of it): less is rounding, an audio priming offset, a last frame's length.
CUT_SHORT_SECONDS = 1.0
CUT_SHORT_SHARE = 0.02


def cut_short(path, video_seconds: float) -> tuple[float, float] | None:
    """``(seconds of data, declared seconds)`` when the file at ``path`` ends well before the duration its
    container header declares: an interrupted copy or download of a Matroska/WebM file keeps its header (with the
    full duration) and loses its tail, and its packets simply stop, so nothing fails while decoding it. None when
    the file is whole (or the header declares nothing, or the file cannot be read).

    ``video_seconds``: how long the video stream actually runs (its clock). Only when that falls short of the header
    are the packets of *every* stream read (no decoding): a file whose audio runs on past its video is whole.
    """
    import av

    try:
        with av.open(ffmpeg_input(path)) as container:
            if not container.duration:
                return None
            declared = container.duration / 1_000_000  # AV_TIME_BASE
            if declared - video_seconds <= _cut_tolerance(declared):
                return None
            start = (container.start_time or 0) / 1_000_000
            end = None
            for packet in demuxed(container):
                if packet.pts is None or packet.size == 0 or packet.stream.time_base is None:
                    continue
                t = float((packet.pts + (packet.duration or 0)) * packet.stream.time_base)
                end = t if end is None else max(end, t)
    except Exception as e:  # noqa: BLE001 - a probe: the decoder has the last word on a damaged file
        logger.debug("cannot check whether %s is whole: %s", path, e)
        return None
    data = max(video_seconds, (end - start) if end is not None else 0.0)
    return (data, declared) if declared - data > _cut_tolerance(declared) else None


def _cut_tolerance(declared: float) -> float:
    return CUT_SHORT_SECONDS + CUT_SHORT_SHARE * declared


def read_frames(source: VideoSource, num_frames: int, sample: str = "middle", trimmed30: bool = False,
                start: float | None = None, end: float | None = None, indices: Sequence[int] | None = None,
                backend: str = "auto", rng=None, return_indices: bool = False, name: str | None = None):
    """Decode ``num_frames`` sampled frames of a video as uint8 ``[T, 3, H, W]``.

    sample: ``"middle"`` or ``"rand"`` (see :func:`sample_frame_indices`), applied to the whole video, to its
    first 30 s when ``trimmed30`` and the video is longer (``vlen = int(30 * fps)``, DiDeMo), or to the frames
    inside ``[start, end)`` seconds when a window is given (long videos).
    indices: explicit frame indices instead of sampling (``num_frames`` is then ignored).
    return_indices: also return the frame indices and their timestamps in seconds (``index / fps``).
    """
    with open_video(source, backend=backend, name=name) as reader:
        if indices is None:
            vlen = reader.num_frames
            if trimmed30 and reader.duration > 30:
                vlen = int(30 * reader.fps)
            lo, hi = 0, vlen
            if start is not None or end is not None:
                lo, hi = window_frame_range(reader.fps, vlen, start, end)
            indices = [lo + i for i in sample_frame_indices(num_frames, hi - lo, sample, rng=rng)]
        else:
            indices = [int(i) for i in indices]
        frames = reader.get_frames(indices).permute(0, 3, 1, 2).contiguous()
        if return_indices:
            timestamps = [i / reader.fps for i in indices]
            return frames, indices, timestamps
        return frames
