"""What FFmpeg is given for a source, so that every reader, cut and probe (``av.open``) opens a video where vtr finds
one, as it is shown: a file's path; the bytes of a video read from a shard; the byte range of the video a motion
photo carries (:mod:`vtr.data.motion_photo`); an APNG made in memory of the frames vtr decodes itself: an animated
WebP's (:mod:`vtr.data.webp`: FFmpeg's WebP decoder reads stills only), a short VP8/VP9 WebM's with its
transparency (:mod:`vtr.data.vpx_alpha`: FFmpeg's own decoders drop it)."""

from __future__ import annotations

import functools
import io
import logging
import os

from vtr.data import vpx_alpha
from vtr.data.animation import animated_webp
from vtr.data.motion_photo import embedded_video

logger = logging.getLogger(__name__)


def ffmpeg_input(source):
    """What ``av.open`` is given for ``source`` (a path or a file's bytes): a file object over bytes (an animated
    WebP's, and a short VP8/VP9 video's with transparency, as an APNG's); for a motion photo, its video's byte range
    (``subfile,,start,S,end,E,,:file:PATH``, which FFmpeg opens as that file); else the path. Raises
    ``ValueError`` for an animated WebP whose structure is damaged (what FFmpeg would say of any other damaged file
    as it opens it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if animated_webp(data):
            return io.BytesIO(_webp_as_apng(data))
        apng = _vpx_bytes_as_apng(data) if data[:4] == vpx_alpha.EBML else None  # a WebM's bytes: looked at once
        return io.BytesIO(apng or data)
    ext = os.path.splitext(os.fspath(source))[1].lower()
    if (ext == ".webp" and animated_webp(source)) or ext in vpx_alpha.EXTENSIONS:
        try:
            st = os.stat(source)
            key = (os.path.abspath(os.fspath(source)), st.st_size, st.st_mtime_ns)
        except OSError:  # gone since: FFmpeg says so as it opens the path
            return os.fspath(source)
        apng = _webp_file_as_apng(*key) if ext == ".webp" else _vpx_file_as_apng(*key)
        if apng is not None:
            return io.BytesIO(apng)
    return file_input(source)


def file_input(path) -> str:
    """What ``av.open`` is given for the file at ``path`` to read its own streams and tags (a recording date): the
    byte range of a motion photo's video (``subfile,,start,S,end,E,,:file:PATH``, which FFmpeg opens as that file),
    else the path. Unlike :func:`ffmpeg_input`, it decodes nothing: an APNG made of a file's frames has no tags."""
    span = embedded_video(path)
    if span is None:
        return os.fspath(path)
    return f"subfile,,start,{span[0]},end,{span[1]},,:file:{os.path.abspath(os.fspath(path))}"


# An index's build opens a file several times (probes, the reader, cut detection, thumbnails): each animated WebP is
# drawn once. A few are kept: an APNG of a long one in memory can be tens of megabytes.
@functools.lru_cache(maxsize=4)
def _webp_as_apng(data: bytes) -> bytes:
    from vtr.data.webp import as_apng

    logger.debug("drawing an animated WebP of %d bytes as an APNG", len(data))
    try:
        return as_apng(data)
    except ValueError as e:
        raise ValueError(f"a damaged animated WebP: {e}") from e


@functools.lru_cache(maxsize=4)
def _webp_file_as_apng(path: str, size: int, mtime_ns: int) -> bytes:
    with open(path, "rb") as f:
        return _webp_as_apng.__wrapped__(f.read())


def _vpx_as_apng(source) -> bytes | None:
    """:func:`vtr.data.vpx_alpha.as_apng` of a video it reads with its transparency; None for any other, and for one
    whose frames it cannot write (read as before, without its transparency: said in the log)."""
    if not vpx_alpha.reads_alpha(source):
        return None
    logger.debug("decoding a VP8/VP9 video with its transparency as an APNG")
    try:
        return vpx_alpha.as_apng(source)
    except Exception as e:  # noqa: BLE001 - its frames are still there without their transparency
        logger.info("reading a video without its transparency: %s", e)
        return None


_vpx_bytes_as_apng = functools.lru_cache(maxsize=4)(_vpx_as_apng)


@functools.lru_cache(maxsize=4)
def _vpx_file_as_apng(path: str, size: int, mtime_ns: int) -> bytes | None:
    return _vpx_as_apng(path)


__all__ = ["ffmpeg_input", "file_input"]
