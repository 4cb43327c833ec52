"""Animated pictures: a GIF, an APNG or a WebP of more than one frame is a short video (a phone's "animation", a
reaction clip or a sticker saved from a chat), one of a single frame is a picture; so is an AVIF image sequence. The
extension does not say which, so these read the file's own structure: GIF's blocks up to its second image, PNG's
chunks up to its image data, WebP's chunks up to its second frame, AVIF's brands. Only the standard library: the
index's scan asks for every ``.gif`` it finds, without loading torch.

FFmpeg (PyAV) decodes GIF, APNG and AVIF animations as video, with each frame's delay as its time. An animated WebP
it does not decode (its WebP decoder reads stills only): :mod:`vtr.data.webp` draws its frames, and
:func:`vtr.data.sources.ffmpeg_input` gives them to FFmpeg as an APNG.
"""

from __future__ import annotations

import io
import os
import struct

from vtr.data import webp

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _skip_sub_blocks(f) -> bool:
    """Read past a GIF data block's sub-blocks (each a length byte, then that many bytes; 0 ends them). False when the
    file ends first."""
    while True:
        n = f.read(1)
        if not n:
            return False
        if n[0] == 0:
            return True
        f.seek(n[0], io.SEEK_CUR)


def gif_frames(f, stop: int = 2) -> int:
    """The number of images in a GIF read from the binary file ``f``, counted up to ``stop`` (the block walk ends
    there: an animation's first frame is all it reads). 0 when ``f`` is no GIF; a file cut short counts the images
    it begins."""
    head = f.read(13)  # signature and version, then the logical screen descriptor
    if len(head) < 13 or head[:3] != b"GIF":
        return 0
    if head[10] & 0x80:  # global colour table
        f.seek(3 << ((head[10] & 7) + 1), io.SEEK_CUR)
    images = 0
    while images < stop:
        kind = f.read(1)
        if kind == b",":  # image descriptor: position and size, then a local colour table and the image's data
            images += 1
            desc = f.read(9)
            if len(desc) < 9:
                break
            if desc[8] & 0x80:
                f.seek(3 << ((desc[8] & 7) + 1), io.SEEK_CUR)
            if not f.read(1) or not _skip_sub_blocks(f):  # LZW code size, then the data
                break
        elif kind == b"!":  # extension (graphic control, comment, application): its label, then sub-blocks
            if not f.read(1) or not _skip_sub_blocks(f):
                break
        else:  # the trailer (";"), the file's end, or bytes that are no block
            break
    return images


def png_animation_frames(f) -> int:
    """The frame count an APNG's ``acTL`` chunk declares (it comes before the image data); 0 for a still PNG or no
    PNG at all."""
    if f.read(8) != _PNG_SIGNATURE:
        return 0
    while True:
        head = f.read(8)
        if len(head) < 8:
            return 0
        length, kind = struct.unpack(">I4s", head)
        if kind == b"acTL":
            body = f.read(8)
            return struct.unpack(">I", body[:4])[0] if len(body) == 8 else 0
        if kind in (b"IDAT", b"IEND"):
            return 0
        f.seek(length + 4, io.SEEK_CUR)  # the chunk's data and its CRC


def avif_sequence(f) -> bool:
    """Whether the ISO-BMFF file ``f`` is an AVIF image sequence (an animated AVIF, the web's GIF replacement): its
    ``ftyp`` box lists the ``avis`` brand. A still AVIF lists ``avif`` alone."""
    head = f.read(8)
    if len(head) < 8 or head[4:] != b"ftyp":
        return False
    size = struct.unpack(">I", head[:4])[0]
    brands = f.read(min(max(size - 8, 0), 256))
    return any(brands[i:i + 4] == b"avis" for i in range(0, len(brands) - 3, 4))  # major, version, compatible


def _open(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    return open(os.fspath(source), "rb")


def is_animation(source) -> bool:
    """Whether ``source`` (a path or the file's bytes) is a GIF, PNG or WebP of more than one frame, or an AVIF image
    sequence. False for a still, for other formats and for a file that cannot be read (whoever opens it next says
    why)."""
    try:
        with _open(source) as f:
            magic = f.read(8)
            f.seek(0)
            if magic[:3] == b"GIF":
                return gif_frames(f) > 1
            if magic == _PNG_SIGNATURE:
                return png_animation_frames(f) > 1
            if magic[4:8] == b"ftyp":
                return avif_sequence(f)
            if magic[:4] == b"RIFF":
                return webp.animation_frames(f) > 1
    except OSError:
        return False
    return False


def animated_webp(source) -> bool:
    """Whether ``source`` (a path or bytes) is an animated WebP: an extended (``VP8X``) header with its animation
    flag set (one frame or more: FFmpeg decodes none of them)."""
    try:
        with _open(source) as f:
            head = f.read(21)
    except OSError:
        return False
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


__all__ = ["gif_frames", "png_animation_frames", "avif_sequence", "is_animation", "animated_webp"]
