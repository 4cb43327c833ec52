"""Frames with transparency, each at its own time, written as an APNG in memory: what vtr hands FFmpeg for a video it
decodes itself (an animated WebP: :mod:`vtr.data.webp`; a VP8/VP9 WebM's transparency: :mod:`vtr.data.vpx_alpha`),
so that every reader, cut and probe opens it as any animation (:func:`vtr.data.sources.ffmpeg_input`). APNG keeps
the frames lossless with their alpha, and stores of each frame only what changed."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Iterable

import numpy as np


def write_apng(frames: Iterable[tuple[np.ndarray, int]], last_ms: int) -> bytes:
    """The bytes of an APNG of ``frames``: ``(rgba, ms)`` pairs, uint8 [H, W, 4] straight alpha, all of one size,
    each shown from ``ms`` (milliseconds, increasing) until the next frame's, the last one for ``last_ms``. Raises
    ``ValueError`` for no frames, a frame of another size or times that do not increase."""
    import av

    out = io.BytesIO()
    ms = Fraction(1, 1000)
    shape = stream = last = None
    # the muxer times each frame until the next; the last one's time is said apart (else it repeats the one before)
    with av.open(out, "w", format="apng", options={"final_delay": f"{max(int(last_ms), 1)}/1000"}) as container:
        for rgba, t in frames:
            if stream is None:
                shape = rgba.shape
                stream = container.add_stream("apng", rate=1000, options={"compression_level": "1"})  # zlib's fastest
                stream.width, stream.height, stream.pix_fmt = shape[1], shape[0], "rgba"
                stream.time_base = stream.codec_context.time_base = ms
            elif rgba.shape != shape:
                raise ValueError(f"a frame of {rgba.shape[1]}x{rgba.shape[0]} among frames of {shape[1]}x{shape[0]}")
            if last is not None and t <= last:
                raise ValueError(f"frame times do not increase ({last} ms, then {t} ms)")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba")
            frame.pts, frame.time_base = int(t), ms
            for packet in stream.encode(frame):
                container.mux(packet)
            last = t
        if stream is None:
            raise ValueError("no frames")
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


__all__ = ["write_apng"]
