"""Motion photos: a phone's photo that carries the second or two of video around the shot (a Pixel's
``PXL_*.MP.jpg``, an older ``MVIMG_*.jpg``, a Galaxy's "motion photo", many other Android cameras). The video is an
MP4 stored in the photo's file, after its image; this module finds its byte range, and
:func:`vtr.data.sources.ffmpeg_input` hands that range to FFmpeg (its ``subfile`` protocol), so every reader, cut
and probe opens it as the video file it is.

The layouts, read from the file's head and tail (a few small reads; only the standard library: the index's scan
asks for every photo it finds, without loading torch):

- Google's Motion Photo format 1.0 (JPEG, HEIC or AVIF): the photo's XMP lists the files appended to it
  (``Container:Directory``), each with its length, in the order they follow the image; the video is the item whose
  semantic is ``MotionPhoto``. Its predecessor (micro video, ``MVIMG``) gives ``MicroVideoOffset``, the video's
  distance from the file's end. ``MotionPhoto="0"`` says a file is a photo, whatever follows it.
- Samsung's trailer (SEF): records after the JPEG's image, listed by a directory that ends the file (``SEFH`` ...
  ``SEFT``); the video is the record named ``MotionPhoto_Data``.
- A HEIF (HEIC, AVIF) file's top-level boxes: Samsung keeps the video in an ``mpvd`` box, and an MP4 appended to
  the photo begins with an ``ftyp`` box of its own.

Each range found is checked to begin an MP4 (its ``ftyp`` box): an editor that drops the video and keeps the XMP
leaves a photo, not a damaged video.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import xml.etree.ElementTree as ET

from vtr.data.extensions import MOTION_PHOTO_EXTENSIONS

_XMP_ID = b"http://ns.adobe.com/xap/1.0/\0"
_CAMERA = "{http://ns.google.com/photos/1.0/camera/}"
_CONTAINER = "{http://ns.google.com/photos/1.0/container/}"
_ITEM = "{http://ns.google.com/photos/1.0/container/item/}"
_SAMSUNG_VIDEO = b"MotionPhoto_Data"
#: JPEG segments and HEIF boxes walked before giving up on a file (a photo has a dozen of each)
_MAX_STEPS = 256


def _jpeg_xmp(f) -> bytes | None:
    """The XMP packet of the JPEG ``f`` (an APP1 segment before the image data), None when it has none."""
    f.seek(0)
    if f.read(2) != b"\xff\xd8":
        return None
    for _ in range(_MAX_STEPS):
        head = f.read(4)
        for _ in range(_MAX_STEPS):  # fill bytes before a marker
            if len(head) < 4 or head[1] != 0xFF:
                break
            head = head[1:] + f.read(1)
        if len(head) < 4 or head[0] != 0xFF or head[1] in (0xD9, 0xDA):  # the file's end, or the image data
            return None
        length = struct.unpack(">H", head[2:])[0] - 2
        if length < 0:
            return None
        if head[1] == 0xE1 and length > len(_XMP_ID):
            body = f.read(length)
            if body.startswith(_XMP_ID):
                return body[len(_XMP_ID):]
        else:
            f.seek(length, io.SEEK_CUR)
    return None


def _property(element, name: str) -> str | None:
    """An XMP property of ``element``, written as an attribute or as a child element (RDF allows both)."""
    value = element.attrib.get(name)
    if value is None:
        child = element.find(name)
        value = child.text if child is not None else None
    return value.strip() if value is not None else None


def _google_span(xmp: bytes, size: int) -> tuple[int, int] | None | bool:
    """The video's ``(start, end)`` in a file of ``size`` bytes by Google's XMP; False when the XMP says the file
    is no motion photo (``MotionPhoto`` 0 or below), None when it does not say where a video is."""
    try:
        root = ET.fromstring(xmp.strip(b"\0 \t\r\n"))
    except (ET.ParseError, ValueError):
        return None
    described = list(root.iter())
    flag = next((v for e in described if (v := _property(e, _CAMERA + "MotionPhoto")) is not None), None)
    try:
        if flag is not None and int(flag) <= 0:
            return False
        items = [(_property(e, _ITEM + "Semantic"), _property(e, _ITEM + "Mime"),
                  int(_property(e, _ITEM + "Length") or 0)) for e in root.iter(_CONTAINER + "Item")]
        video = next((i for i, (semantic, mime, _) in enumerate(items)
                      if semantic == "MotionPhoto" or (mime or "").startswith("video/")), None)
        if video is not None and items[video][2] > 0:  # the items after the image lie end to end, in this order
            start = size - sum(length for _, _, length in items[video:])
            return start, start + items[video][2]
        for e in described:  # micro video (MVIMG): the video runs from this far before the end to the end
            offset = _property(e, _CAMERA + "MicroVideoOffset")
            if offset is not None and _property(e, _CAMERA + "MicroVideo") == "1" and int(offset) > 0:
                return size - int(offset), size
    except ValueError:  # a length that is no number: no video found by the XMP
        return None
    return None


def _samsung_span(f, size: int) -> tuple[int, int] | None:
    """The ``MotionPhoto_Data`` record of a Samsung trailer: ``SEFH``, version, count, then per record its marker,
    its distance back from ``SEFH`` and its size; the directory's size and ``SEFT`` end the file. A record is two
    zero bytes, its marker, its name's length and name, then its data."""
    if size < 16:
        return None
    f.seek(size - 8)
    tail = f.read(8)
    if tail[4:] != b"SEFT":
        return None
    directory_size = struct.unpack("<I", tail[:4])[0]
    sefh = size - 8 - directory_size
    if sefh < 0 or directory_size < 12:
        return None
    f.seek(sefh)
    head = f.read(12)
    if head[:4] != b"SEFH":
        return None
    count = min(struct.unpack("<I", head[8:12])[0], (directory_size - 12) // 12, _MAX_STEPS)
    entries = f.read(12 * count)
    for i in range(len(entries) // 12):
        back, length = struct.unpack("<II", entries[12 * i + 4: 12 * i + 12])
        record = sefh - back
        if record < 0 or length < 8:
            continue
        f.seek(record)
        head = f.read(8)
        name_length = struct.unpack("<I", head[4:])[0] if len(head) == 8 else 0
        if name_length == len(_SAMSUNG_VIDEO) and f.read(name_length) == _SAMSUNG_VIDEO:
            return record + 8 + name_length, record + length
    return None


def _heif_span(f, size: int) -> tuple[int, int] | None:
    """The video in a HEIF file's top-level boxes: an ``mpvd`` box's payload, or a second ``ftyp`` box (an MP4
    appended to the photo) to the file's end."""
    f.seek(0)
    pos, types = 0, 0
    for _ in range(_MAX_STEPS):
        head = f.read(16)
        if len(head) < 8:
            return None
        box, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if box == 1 and len(head) == 16:
            box, header = struct.unpack(">Q", head[8:])[0], 16
        elif box == 0:
            box = size - pos
        if kind == b"ftyp":
            types += 1
            if types == 2:
                return pos, size
        elif kind == b"mpvd":
            return pos + header, pos + box
        if box < header:
            return None
        pos += box
        f.seek(pos)
    return None


def _begins_mp4(f, span, size: int) -> bool:
    start, end = span
    if not 0 <= start < end <= size or end - start < 16:
        return False
    f.seek(start)
    return f.read(8)[4:] == b"ftyp"


def video_span(f, size: int) -> tuple[int, int] | None:
    """``(start, end)``: the bytes of the MP4 a motion photo read from the binary file ``f`` (``size`` bytes long)
    carries; None for a photo without one (see the module's docstring)."""
    f.seek(0)
    start = f.read(12)
    candidates = []
    if start[:2] == b"\xff\xd8":
        xmp = _jpeg_xmp(f)
        google = _google_span(xmp, size) if xmp is not None else None
        if google is False:
            return None
        candidates += [google, _samsung_span(f, size)]
    elif start[4:8] == b"ftyp":
        candidates.append(_heif_span(f, size))
    return next((span for span in candidates if span and _begins_mp4(f, span, size)), None)


def embedded_video(path) -> tuple[int, int] | None:
    """:func:`video_span` of the photo at ``path``; None at once for a name that is no JPEG, HEIF or AVIF
    (:data:`~vtr.data.extensions.MOTION_PHOTO_EXTENSIONS`), and for a file that cannot be read (whoever opens it
    next says why)."""
    try:
        return video_at(path)
    except OSError:
        return None


def video_at(path) -> tuple[int, int] | None:
    """:func:`embedded_video`, raising ``OSError`` for a file that cannot be read (the index's scan lists such a
    file, where a photo is left out). Remembered by path, size and modification time: the build's readers and probes
    open each file several times, and a scan that runs every few minutes reads each photo once."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() not in MOTION_PHOTO_EXTENSIONS:
        return None
    st = os.stat(path)
    return _embedded(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 16)
def _embedded(path: str, size: int, mtime_ns: int) -> tuple[int, int] | None:
    with open(path, "rb") as f:  # an OSError is raised, not remembered: the file may be readable later
        try:
            return video_span(f, size)
        except struct.error:  # a structure cut short
            return None


__all__ = ["video_span", "embedded_video", "video_at"]
