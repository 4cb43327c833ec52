"""What the browser is shown of a video: short H.264 preview clips and fallback thumbnails, cut with PyAV.

``gr.Video`` cannot start playback at a given second, and browsers cannot play many codecs people have on disk
(MPEG-4 part 2, HEVC in some browsers, WMV, ...). So a selected result is cut out of its video, from the matched
second on, and transcoded to H.264/AAC in MP4 (``+faststart`` so it streams), into a cache folder the app owns.
"""

from __future__ import annotations

import hashlib
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

from vtr.atomic import atomic_path, write_bytes_atomic
from vtr.errors import VtrError

logger = logging.getLogger(__name__)

PREVIEW_MAX_WIDTH = 854  # 480p is plenty for a preview and keeps transcoding fast on a CPU
PREVIEW_TAIL_S = 2.0  # seconds kept after the matched span, so the moment does not end abruptly
PREVIEW_MAX_S = 60.0
CACHE_MAX_FILES = 256
AUDIO_RATE = 48000


def _cache_name(path: str, start: float, end: float, suffix: str) -> str:
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{start:.3f}|{end:.3f}"
    return hashlib.sha1(key.encode()).hexdigest()[:20] + suffix


def _prune(cache_dir: Path, keep: int = CACHE_MAX_FILES) -> None:
    """Keep the cache bounded: drop the least recently written files beyond ``keep``."""
    files = sorted(cache_dir.glob("*.*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        try:
            old.unlink()
        except OSError:
            pass


def make_preview(path: str, start: float, end: float, cache_dir, tail_s: float = PREVIEW_TAIL_S,
                 max_seconds: float = PREVIEW_MAX_S, max_width: int = PREVIEW_MAX_WIDTH) -> Path:
    """Cut ``[start, end + tail_s]`` seconds (at most ``max_seconds``) of ``path`` into a browser-playable MP4.

    Video: H.264 yuv420p, at most ``max_width`` wide; audio (when the source has a decodable track): AAC stereo.
    Cached in ``cache_dir`` by (file, size, mtime, span). Raises VtrError when nothing can be decoded there.
    """
    start = max(0.0, float(start))
    stop = min(float(end) + tail_s, start + max_seconds)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        out = cache_dir / _cache_name(path, start, stop, ".mp4")
    except OSError as e:
        raise VtrError(f"cannot open {path}: {e.strerror or e}") from e
    if out.is_file():
        return out
    try:
        with atomic_path(out) as tmp:
            _transcode(path, start, stop, tmp, max_width)
    except VtrError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder/encoder failure becomes one readable message
        raise VtrError(f"cannot make a preview of {Path(path).name}: {e}") from e
    _prune(cache_dir)
    return out


def _transcode(path: str, start: float, stop: float, out_path: Path, max_width: int) -> None:
    import av

    with av.open(str(path)) as src:
        has_audio = bool(src.streams.audio)
    rotation = _display_rotation(path)  # read once: the retry without sound reuses it
    try:
        _transcode_once(path, start, stop, out_path, max_width, rotation, with_audio=has_audio)
    except VtrError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken audio track must not cost the picture
        if not has_audio:
            raise
        logger.info("preview of %s without sound: %s", path, e)
        _transcode_once(path, start, stop, out_path, max_width, rotation, with_audio=False)


def _display_rotation(path: str) -> int:
    """The video's display rotation (degrees counter-clockwise; 0 when it has none or it cannot be read)."""
    from vtr.data.video import open_video

    try:
        with open_video(str(path), backend="pyav") as reader:
            return reader.rotation
    except Exception as e:  # noqa: BLE001 - the transcode itself reports what is wrong with the file
        logger.debug("no display rotation for %s: %s", path, e)
        return 0


def _transcode_once(path, start, stop, out_path, max_width, rotation: int, with_audio: bool) -> None:
    import av

    from vtr.data.video import frame_rate, main_video_stream, pixel_aspect_of

    with av.open(str(path)) as src:
        vin = main_video_stream(src)
        if vin is None:
            raise VtrError(f"{Path(path).name} has no video stream")
        vin.thread_type = "AUTO"
        # The index counts seconds from the first frame; streams (MPEG-TS, camcorders' .mts) can start anywhere
        origin = float(vin.start_time * vin.time_base) if vin.start_time is not None and vin.time_base else 0.0
        rate = frame_rate(vin) or Fraction(25)
        if rate > 120:
            rate = Fraction(30)
        src_w, src_h = vin.codec_context.width or max_width, vin.codec_context.height or max_width
        sar = pixel_aspect_of(vin)
        if sar != 1:  # non-square pixels (HDV 1440x1080, DV): square them as players do
            src_w = int(round(src_w * sar))
        width = min(max_width, src_w)
        height = int(round(src_h * width / src_w))
        width, height = max(2, width // 2 * 2), max(2, height // 2 * 2)
        with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            # Every output stream must exist before the first packet is written.
            vout = dst.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.options = {"crf": "23", "preset": "veryfast"}
            vout.codec_context.time_base = 1 / rate
            if rotation:  # portrait phone video: stored frames copied as they are, turned upright by the player
                vout.set_display_rotation(rotation)
            aout = dst.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if with_audio else None
            n_frames = _copy_video(src, vin, vout, dst, start, stop, rate, width, height, origin)
            if n_frames == 0:
                raise VtrError(f"no frames of {Path(path).name} between {start:.1f} s and {stop:.1f} s")
            if aout is not None:
                _copy_audio(src, aout, dst, start, stop, origin)


def _copy_video(src, vin, vout, dst, start, stop, rate, width, height, origin: float = 0.0) -> int:
    from vtr.data.video import decode_from

    last_pts = -1
    for frame in decode_from(src, vin, start, origin):
        t = frame.time
        if t is None:
            continue
        t -= origin
        if t < start - 1e-3:
            continue
        if t >= stop:
            break
        pts = max(last_pts + 1, int(round((t - start) * rate)))
        out = frame.reformat(width=width, height=height, format="yuv420p")
        out.pts, out.time_base = pts, 1 / rate
        last_pts = pts
        for packet in vout.encode(out):
            dst.mux(packet)
    for packet in vout.encode():
        dst.mux(packet)
    return last_pts + 1


def _copy_audio(src, aout, dst, start, stop, origin: float = 0.0) -> None:
    import av

    from vtr.data.video import decode_from

    ain = src.streams.audio[0]
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    samples = 0
    tb = Fraction(1, AUDIO_RATE)

    def encode(frames):
        nonlocal samples
        for f in frames:
            f.pts, f.time_base = samples, tb
            samples += f.samples
            for packet in aout.encode(f):
                dst.mux(packet)

    for frame in decode_from(src, ain, start, origin):
        if frame.time is None:
            continue
        t = frame.time - origin
        if t + frame.samples / frame.sample_rate <= start:
            continue
        if t >= stop:
            break
        encode(resampler.resample(frame))
    encode(resampler.resample(None))
    for packet in aout.encode():
        dst.mux(packet)


def make_thumbnail(path: str, seconds: float, cache_dir, render: Callable[[str, float], bytes]) -> Path:
    """A cached JPEG of ``path`` at ``seconds`` (for indexes built without thumbnails); ``render(path, seconds)``
    makes the JPEG bytes (:meth:`index.search.VideoIndex.thumbnail`) when the cache does not hold it yet."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / _cache_name(path, seconds, seconds, ".jpg")
    if not out.is_file():
        write_bytes_atomic(out, render(path, seconds))
        _prune(cache_dir)
    return out
