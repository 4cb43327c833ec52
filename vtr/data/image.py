"""Still images (a photo as a search's example, an image sample of a training shard) as the model must see them:
RGB and upright, as a photo viewer or a browser shows them.

A camera stores a photo as its sensor reads it, plus an EXIF orientation that says how to show it: a phone held
upright writes a landscape picture tagged "turn 90° clockwise", and a front camera may tag a mirror. FFmpeg
decodes the stored pixels and only reports a rotation (its display matrix loses the mirror, and PyAV 18 cannot
read the matrix itself), so the orientation is read here from the file's EXIF block (JPEG's APP1 segment, PNG's
``eXIf`` chunk, WebP's ``EXIF`` chunk) and applied as the EXIF standard defines it. A file without one (an AVIF
or HEIF whose rotation is a container box) is turned by the rotation FFmpeg reports. A photo tagged PQ or HLG (an
HDR AVIF) is tone-mapped to SDR as HDR video is (:mod:`vtr.data.hdr`).
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

ORIENTATION_TAG = 0x0112  # EXIF/TIFF: 1 as stored, 2-8 mirrored and/or turned


def _tiff_orientation(tiff: bytes) -> int | None:
    """The orientation (1-8) in the first image directory of a TIFF/EXIF block; None when there is none."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            return None
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == ORIENTATION_TAG and kind == 3:  # SHORT, kept in the first two bytes of the value field
            value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
            return value if 1 <= value <= 8 else None
    return None


def _strip_exif_header(block: bytes) -> bytes:
    return block[6:] if block.startswith(b"Exif\0\0") else block


def exif_orientation(data: bytes) -> int | None:
    """The EXIF orientation of a JPEG, PNG or WebP file's bytes (1-8); None when the file carries none."""
    if data[:2] == b"\xff\xd8":  # JPEG: segments up to the image data
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0xD9, 0xDA):  # end of image, start of scan: no EXIF after this point
                return None
            length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\0\0":
                return _tiff_orientation(data[pos + 10:pos + 2 + length])
            pos += 2 + length
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: chunks (eXIf may come after the image data)
        pos = 8
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            if kind == b"eXIf":
                return _tiff_orientation(_strip_exif_header(data[pos + 8:pos + 8 + length]))
            if kind == b"IEND":
                return None
            pos += 12 + length
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # WebP: RIFF chunks, padded to even sizes
        pos = 12
        while pos + 8 <= len(data):
            kind, length = struct.unpack("<4sI", data[pos:pos + 8])
            if kind == b"EXIF":
                return _tiff_orientation(_strip_exif_header(data[pos + 8:pos + 8 + length]))
            pos += 8 + length + (length & 1)
    return None


def apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` [H, W, C] as stored, shown as EXIF ``orientation`` says (2: mirrored left-right, 3: turned 180°,
    4: mirrored top-bottom, 5: transposed, 6: turned 90° clockwise, 7: transverse, 8: turned 90° anticlockwise)."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1]
    if orientation == 5:
        return rgb.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(rgb, -1)
    if orientation == 7:
        return rgb[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(rgb, 1)
    return rgb


def read_image(source: bytes | str | os.PathLike) -> np.ndarray:
    """The first picture of an image file (its bytes or its path) as uint8 [H, W, 3] RGB, upright (see the
    module's docstring). Raises what PyAV raises for a file that is not an image or is damaged."""
    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.hdr import frame_to_rgb, is_hdr

    data = source if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb").read()
    data = bytes(data)
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        rgb = frame_to_rgb(frame, VideoReformatter()) if is_hdr(frame) else frame.to_ndarray(format="rgb24")
        rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    orientation = exif_orientation(data)
    if orientation is not None:
        rgb = apply_orientation(rgb, orientation)
    elif rotation in (90, 180, 270):  # anticlockwise, as the video readers turn portrait phone video
        rgb = np.rot90(rgb, rotation // 90)
    return np.ascontiguousarray(rgb)


__all__ = ["read_image", "exif_orientation", "apply_orientation"]
