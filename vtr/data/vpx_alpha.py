"""VP8/VP9 video with transparency: a WebM such as a chat's video sticker (Telegram's are VP9 with alpha, 512 pixels,
up to 3 s) or a web page's overlay. Matroska keeps the alpha of each frame beside it (a block's additional data,
flagged ``alpha_mode`` on the stream), which only libvpx's decoders read: FFmpeg's own VP8 and VP9 decoders, which
PyAV's containers use, drop it and show the colour stored under it (black, often).

A short one (:func:`reads_alpha`) is decoded here with libvpx, frame by frame, and written as an APNG in memory
(:mod:`vtr.data.apng`) that every reader, cut and probe then opens (:func:`vtr.data.sources.ffmpeg_input`), so its
transparency is put over white as a picture's is. One with sound (an APNG has none: an exported moment would lose
it), longer than :data:`MAX_PIXELS` or of no known length (a live recording) is read as before, without its
transparency.
"""

from __future__ import annotations

import io
import os

#: the containers that carry a VP8/VP9 alpha channel (Matroska's block additions)
EXTENSIONS = frozenset({".webm", ".mkv"})
#: frames x width x height of the longest video read with its transparency: 2^28 (a 512x512 sticker of 34 s at 30
#: fps, 720p at 30 fps for 9.7 s); an APNG is written at 13-20 ms a 512x512 frame (bench/README.md, animations)
MAX_PIXELS = 1 << 28
_LIBVPX = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
EBML = b"\x1a\x45\xdf\xa3"  # the first bytes of a Matroska or WebM file


def _alpha_stream(container):
    """The main video stream when it is VP8/VP9 flagged with alpha and the file has no sound; else None."""
    from vtr.data.video import main_video_stream

    stream = main_video_stream(container)
    if stream is None or stream.codec_context.name not in _LIBVPX or container.streams.audio:
        return None
    if str(stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE", ""))) != "1":
        return None
    return stream


def _frames_and_rate(container, stream) -> tuple[float | None, float]:
    """(the frames its duration and rate give, None when it has no duration: a live recording's; its rate)."""
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    return (container.duration / 1_000_000 * rate if container.duration else None), rate


def reads_alpha(source) -> bool:
    """Whether ``source`` (a path or a file's bytes) is a VP8/VP9 video with transparency, without sound, of a known
    length of at most :data:`MAX_PIXELS`, and this FFmpeg has libvpx's decoder for it: read with its transparency.
    From the header, about a millisecond; False for what cannot be opened (whoever opens it next says why)."""
    import av

    if not isinstance(source, (bytes, bytearray, memoryview)):
        if os.path.splitext(os.fspath(source))[1].lower() not in EXTENSIONS:
            return False
    elif bytes(source[:4]) != EBML:
        return False
    try:
        with av.open(io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview))
                     else os.fspath(source)) as container:
            stream = _alpha_stream(container)
            if stream is None or _LIBVPX[stream.codec_context.name] not in av.codecs_available:
                return False
            frames, _ = _frames_and_rate(container, stream)  # of no known length: not decoded whole in memory
            area = stream.codec_context.width * stream.codec_context.height
            return frames is not None and frames * area <= MAX_PIXELS
    except Exception:  # noqa: BLE001 - not ours to judge: the readers say what is wrong
        return False


def as_apng(source) -> bytes:
    """The frames of the VP8/VP9 video ``source`` (a path or bytes; :func:`reads_alpha`) decoded by libvpx with their
    transparency, as the bytes of an APNG (:func:`vtr.data.apng.write_apng`), each at its time from the first frame.
    Raises ``ValueError`` for a file that is none, or whose frames change size."""
    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.apng import write_apng
    from vtr.data.image import straight_rgba

    with av.open(io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview))
                 else os.fspath(source)) as container:
        stream = _alpha_stream(container)
        if stream is None:
            raise ValueError("not a VP8/VP9 video with transparency")
        decoder = av.CodecContext.create(_LIBVPX[stream.codec_context.name], "r")
        _, rate = _frames_and_rate(container, stream)
        time_base = stream.time_base
        reformatter = VideoReformatter()

        def frames():
            first = None
            for packet in container.demux(stream):
                for frame in decoder.decode(packet):
                    pts = frame.pts if frame.pts is not None else packet.pts
                    if pts is None:
                        raise ValueError("a frame without a time")
                    first = pts if first is None else first
                    yield straight_rgba(frame, reformatter), round(float((pts - first) * time_base) * 1000)

        return write_apng(frames(), round(1000 / rate))


__all__ = ["reads_alpha", "as_apng", "MAX_PIXELS", "EXTENSIONS", "EBML"]
