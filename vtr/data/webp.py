"""Animated WebP: a chat's animated sticker, a "GIF" saved from the web. FFmpeg's WebP decoder reads a still (one
VP8 or VP8L image, with its alpha), not an animation, so this module reads the animation's container itself and
hands FFmpeg one still at a time.

The format (RFC 9649): RIFF chunks after ``WEBP``; an extended header (``VP8X``: flags and the canvas's size), the
animation's parameters (``ANIM``: a background colour and a loop count) and one ``ANMF`` chunk per frame. A frame is
a rectangle of the canvas (its offset, its size, its duration in milliseconds) holding a still image (an optional
``ALPH`` chunk, then ``VP8 `` or ``VP8L``), with two rules: *blending* (draw it over what the canvas shows, through
its alpha, or replace that rectangle) and *disposal* (after it was shown, clear its rectangle to the background, or
leave it). :func:`composited_frames` draws the canvas as libwebp's animation decoder and browsers do: the canvas
starts transparent, disposal clears to transparent (the ``ANIM`` background colour is a hint the RFC lets a viewer
ignore, and they do), and a duration of 10 ms or less is shown for 100 ms (browsers' rule, also GIF's in FFmpeg).
A file cut short (an interrupted copy) gives the frames it holds whole, as FFmpeg reads a GIF cut short.

:func:`as_apng` writes the drawn canvases as an APNG in memory (:mod:`vtr.data.apng`: lossless, with their
transparency and their times), which FFmpeg reads as any animation: :func:`vtr.data.sources.ffmpeg_input` gives it to
every reader, cut and probe.

Parsing is standard library only (the index's scan counts frames without loading numpy or PyAV).
"""

from __future__ import annotations

import io
import logging
import struct
from typing import Iterator, NamedTuple

logger = logging.getLogger(__name__)

#: A frame whose duration is at most this many milliseconds is shown for :data:`SHORT_FRAME_SHOWN_MS`: browsers do
#: so, for WebP and GIF alike, and so does FFmpeg's GIF demuxer (a delay under 2/100 s is its default, 1/10 s)
SHORT_FRAME_MS = 10
SHORT_FRAME_SHOWN_MS = 100
#: chunks walked before giving up on a file (a frame is one chunk: an hour at 25 fps is 90,000)
_MAX_CHUNKS = 1 << 20
#: the largest picture FFmpeg decodes (its av_image_check_size: (width + 128) (height + 128) < INT_MAX / 8, about
#: 268 million pixels); a canvas is drawn in memory, so a damaged header must not ask for more
_MAX_AREA = (2**31 - 1) // 8


class WebPFrame(NamedTuple):
    """One ``ANMF`` chunk: where its image goes on the canvas, for how long, how it is drawn, and the image itself
    (:func:`decode_image`)."""
    x: int
    y: int
    width: int
    height: int
    duration_ms: int
    blend: bool  # drawn over the canvas through its alpha; False: it replaces its rectangle
    dispose: bool  # its rectangle cleared to transparent after it was shown
    still: bytes  # its image as a still WebP file: its VP8L chunk, or its VP8 chunk with its ALPH chunk if any


class CutShort(ValueError):
    """A WebP file whose chunks run past its end: an interrupted copy or download."""


def _chunks(f, end: int, within: str = "the file", cut_ok: bool = False) -> Iterator[tuple[bytes, int, int]]:
    """``(fourcc, offset of its data, size)`` of each RIFF chunk from ``f``'s position to ``end``, the end of
    ``within`` (what holds them, for the error). Raises ``ValueError`` for a chunk that runs past ``end``; with
    ``cut_ok``, gives what ``end`` leaves of it instead, last."""
    pos = f.tell()
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > end:
            return
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("the file is cut short")
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        if pos + 8 + size > end:
            if cut_ok:
                yield kind, pos + 8, end - pos - 8
                return
            if within == "the file":
                raise CutShort(f"its {kind.decode('latin-1')!r} chunk runs past the end of the file (cut short)")
            raise ValueError(f"its {kind.decode('latin-1')!r} chunk runs past the end of {within}")
        yield kind, pos + 8, size
        pos += 8 + size + (size & 1)  # padded to an even size
        f.seek(pos)


def _riff_end(f) -> int | None:
    """The end of a WebP file's RIFF data read from ``f`` (positioned after the 12-byte header); None when ``f`` is
    no WebP."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WEBP":
        return None
    return 8 + struct.unpack("<I", head[4:8])[0]


def riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(fourcc, data)`` of each top-level chunk of a WebP file's bytes, up to the end of the bytes (whatever its
    RIFF header says); of a chunk cut short, what the bytes hold of it, last. Nothing for bytes that are no WebP."""
    f = io.BytesIO(data)
    if _riff_end(f) is None:
        return
    for kind, at, size in _chunks(f, len(data), cut_ok=True):
        yield kind, data[at:at + size]


def animation_frames(f, stop: int = 2) -> int:
    """The number of frames of an animated WebP read from the binary file ``f``, counted up to ``stop``; 0 for a
    still WebP (or none at all). Reads the chunks' headers only, skipping their data."""
    end = _riff_end(f)
    if end is None:
        return 0
    frames = 0
    try:
        for kind, _, _ in _chunks(f, end):
            if kind == b"ANMF":
                frames += 1
                if frames >= stop:
                    break
            elif kind in (b"VP8 ", b"VP8L"):  # a still's image
                break
    except ValueError:  # cut short: the frames it begins
        pass
    return frames


def _u24(b: bytes, at: int) -> int:
    return int.from_bytes(b[at:at + 3], "little")


def _still(width: int, height: int, alpha: bytes | None, image: tuple[bytes, bytes]) -> bytes:
    """A still WebP file of one frame's image: its ``VP8L`` (alpha inside) or ``VP8 `` chunk alone, or behind an
    extended header flagging its ``ALPH`` chunk."""
    def chunk(kind, data):
        return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)

    body = chunk(*image)
    if alpha is not None and image[0] == b"VP8 ":
        vp8x = bytes([0x10, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = chunk(b"VP8X", vp8x) + chunk(b"ALPH", alpha) + body
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def read_animation(data: bytes) -> tuple[int, int, list[WebPFrame]]:
    """``(canvas width, canvas height, frames)`` of an animated WebP's bytes; of a file cut short, the frames it holds
    whole (as FFmpeg reads a GIF cut short). Raises ``ValueError`` saying what is wrong for a file that is no
    animated WebP, or whose structure is damaged (a frame outside the canvas, a frame without an image, a file cut
    in its first frame)."""
    f = io.BytesIO(data)
    end = _riff_end(f)
    if end is None:
        raise ValueError("not a WebP file")
    end = min(end, len(data))  # a cut file: its chunks say where it stops
    canvas = None
    frames = []
    try:
        for kind, at, size in _chunks(f, end):
            if kind == b"VP8X":
                if size < 10:
                    raise ValueError("its VP8X header is cut short")
                head = data[at:at + 10]
                if not head[0] & 0x02:
                    raise ValueError("a still WebP, not an animation")
                canvas = (_u24(head, 4) + 1, _u24(head, 7) + 1)
                if (canvas[0] + 128) * (canvas[1] + 128) >= _MAX_AREA:
                    raise ValueError(f"its canvas of {canvas[0]}x{canvas[1]} is larger than any picture FFmpeg "
                                     "decodes")
            elif kind == b"ANMF":
                if canvas is None:
                    raise ValueError("an animation frame before the VP8X header")
                frames.append(_frame(data, at, size, canvas, len(frames)))
    except CutShort as e:
        if not frames:
            raise
        logger.info("an animated WebP cut short: %s; its first %d frames are read", e, len(frames))
    if canvas is None:
        raise ValueError("a still WebP, not an animation")
    if not frames:
        raise ValueError("an animated WebP without frames")
    return canvas[0], canvas[1], frames


def _frame(data: bytes, at: int, size: int, canvas: tuple[int, int], index: int) -> WebPFrame:
    if size < 16:
        raise ValueError(f"frame {index}'s header is cut short")
    head = data[at:at + 16]
    x, y = 2 * _u24(head, 0), 2 * _u24(head, 3)
    width, height = _u24(head, 6) + 1, _u24(head, 9) + 1
    if x + width > canvas[0] or y + height > canvas[1]:
        raise ValueError(f"frame {index} ({width}x{height} at {x},{y}) lies outside the {canvas[0]}x{canvas[1]} "
                         "canvas")
    duration = _u24(head, 12)
    alpha = image = None
    f = io.BytesIO(data)
    f.seek(at + 16)
    for kind, sub, n in _chunks(f, at + size, f"frame {index}"):
        if kind == b"ALPH":
            alpha = data[sub:sub + n]
        elif kind in (b"VP8 ", b"VP8L"):
            image = (kind, data[sub:sub + n])
            break
    if image is None:
        raise ValueError(f"frame {index} holds no image")
    return WebPFrame(x, y, width, height, SHORT_FRAME_SHOWN_MS if duration <= SHORT_FRAME_MS else duration,
                     blend=not head[15] & 0x02, dispose=bool(head[15] & 0x01),
                     still=_still(width, height, alpha, image))


def composited_frames(data: bytes):
    """``(canvas, duration_ms)`` for each frame of an animated WebP's bytes: the canvas as it is shown while that
    frame is, uint8 [H, W, 4] RGBA with straight alpha (one array, drawn over for the next frame: copy what you
    keep). Raises ``ValueError`` for a damaged file (see :func:`read_animation`; also an image that does not
    decode, or decodes to another size than its frame's)."""
    return _drawn(*read_animation(data))


def _drawn(width: int, height: int, frames: list[WebPFrame]):
    import numpy as np

    canvas = np.zeros((height, width, 4), np.uint8)
    for i, frame in enumerate(frames):
        try:
            image = decode_image(frame.still, frame.width, frame.height)
        except ValueError as e:
            raise ValueError(f"frame {i}'s image {e}") from e
        region = canvas[frame.y:frame.y + frame.height, frame.x:frame.x + frame.width]
        if frame.blend:
            _blend_over(image, region)
        else:
            region[:] = image
        yield canvas, frame.duration_ms
        if frame.dispose:
            region[:] = 0


def decode_image(still: bytes, width: int, height: int):
    """uint8 [height, width, 4] RGBA (straight alpha) of a frame's image (:attr:`WebPFrame.still`), decoded by
    FFmpeg (:func:`vtr.data.image.straight_rgba`: a lossy image is 4:2:0 YUV, whose RGBA conversion FFmpeg gets
    wrong at some widths). Raises ``ValueError`` ("does not decode: ...", "is WxH, not ...") for an image that does
    not decode to that size."""
    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.image import straight_rgba

    try:
        [picture] = av.CodecContext.create("webp", "r").decode(av.Packet(still))
        rgba = straight_rgba(picture, VideoReformatter())
    except (av.FFmpegError, ValueError) as e:  # ValueError: no picture came out
        raise ValueError(f"does not decode: {e}") from e
    if rgba.shape[:2] != (height, width):
        raise ValueError(f"is {rgba.shape[1]}x{rgba.shape[0]}, not {width}x{height}")
    return rgba


def _blend_over(src, dst) -> None:
    """``src`` drawn over ``dst`` in place (uint8 RGBA, straight alpha): alpha a + b(1 - a), colour weighted by each
    one's share of it, rounded to nearest (libwebp's rule, in floating point)."""
    import numpy as np

    a = src[..., 3:].astype(np.float32) / 255
    if a.min() == 1:  # opaque: the common case, a copy
        dst[:] = src
        return
    b = dst[..., 3:].astype(np.float32) / 255 * (1 - a)
    out_a = a + b
    rgb = (src[..., :3] * a + dst[..., :3] * b) / np.where(out_a > 0, out_a, 1)
    dst[..., :3] = np.rint(rgb)
    dst[..., 3:] = np.rint(out_a * 255)


def as_apng(data: bytes) -> bytes:
    """An animated WebP's bytes as an APNG file's (:func:`vtr.data.apng.write_apng`): the drawn canvases
    (:func:`composited_frames`), lossless with their transparency, each at its time. Raises ``ValueError`` for a
    damaged file."""
    from vtr.data.apng import write_apng

    width, height, frames = read_animation(data)
    starts = [0]
    for frame in frames[:-1]:
        starts.append(starts[-1] + frame.duration_ms)
    drawn = ((canvas, t) for (canvas, _), t in zip(_drawn(width, height, frames), starts))
    return write_apng(drawn, frames[-1].duration_ms)


__all__ = ["WebPFrame", "CutShort", "riff_chunks", "animation_frames", "read_animation", "composited_frames", "decode_image",
           "as_apng", "SHORT_FRAME_MS", "SHORT_FRAME_SHOWN_MS"]
