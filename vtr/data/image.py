"""Still images (a photo as a search's example, an image sample of a training shard) as the model must see them:
RGB and upright, as a photo viewer or a browser shows them.

A camera stores a photo as its sensor reads it, plus an EXIF orientation that says how to show it: a phone held
upright writes a landscape picture tagged "turn 90° clockwise", and a front camera may tag a mirror. FFmpeg
decodes the stored pixels and only reports a rotation (its display matrix loses the mirror, and PyAV 18 cannot
read the matrix itself), so the orientation is read here from the file's EXIF block (JPEG's APP1 segment, PNG's
``eXIf`` chunk, WebP's ``EXIF`` chunk) and applied as the EXIF standard defines it. A file without one (an AVIF
or HEIF whose rotation is a container box) is turned by the rotation FFmpeg reports. A photo tagged PQ or HLG (an
HDR AVIF) is tone-mapped to SDR as HDR video is (:mod:`vtr.data.hdr`). An iPhone's HEIC is a grid of tiles, each
coded as an image of its own, which FFmpeg gives as separate streams: the grid, its tiles' order and its rotation
are read from the file's boxes (:func:`heif_grid`) and the tiles put together. A photo whose embedded ICC profile
is not sRGB's (an iPhone's Display P3, a camera's Adobe RGB: :func:`embedded_icc`) is converted to sRGB
(:mod:`vtr.data.icc`). A picture with transparency (a chat's sticker, a logo) is put over white, as a page shows it
(:func:`shown_rgb`: video frames with transparency too, such as an APNG's).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from vtr.data import hdr  # its functions looked up at each call (tests stand in for them)

ORIENTATION_TAG = 0x0112  # EXIF/TIFF: 1 as stored, 2-8 mirrored and/or turned
ICC_PROFILE_TAG = 34675  # TIFF: the picture's ICC profile (bytes)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


#: TIFF tags read here: how the picture is compressed, and the version of a DNG (a camera's raw photo, a TIFF too)
TIFF_COMPRESSION_TAG, DNG_VERSION_TAG = 259, 50706
#: TIFF compressions FFmpeg's TIFF decoder reads: none, CCITT fax (2-4), LZW, Deflate (8, 32946), PackBits (and LZMA
#: in an FFmpeg built with it; PyAV 18's wheel is not). JPEG (6, 7) it reads only in a DNG: another TIFF's
#: picture comes out blank, black or green, without an error (a scanner's or an editor's "JPEG" TIFF).
TIFF_DECODED = frozenset({1, 2, 3, 4, 5, 8, 32773, 32946})
TIFF_JPEG = frozenset({6, 7})
TIFF_COMPRESSION_NAMES = {6: "JPEG (old style)", 7: "JPEG", 34712: "JPEG 2000", 34925: "LZMA", 50000: "Zstandard",
                          50001: "WebP", 52546: "JPEG XL"}


def _tiff_entries(tiff: bytes) -> dict[int, tuple[int, bytes, int]] | None:
    """The first image directory of a TIFF/EXIF block: {tag: (type, its 4-byte value field, its count)}; None when
    ``tiff`` is not one."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return None
    entries = {}
    for i in range(struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, kind, count = struct.unpack(order + "HHI", tiff[entry:entry + 8])
        entries.setdefault(tag, (kind, tiff[entry + 8:entry + 12], count))  # the first, as readers take it
    return entries


def _tiff_short(tiff: bytes, tag: int) -> int | None:
    """The value of ``tag`` in the first image directory of a TIFF/EXIF block when it is a SHORT (kept in the
    first two bytes of the value field), else None."""
    entries = _tiff_entries(tiff)
    kind, value, _ = (entries or {}).get(tag, (None, b"", 0))
    return struct.unpack((">" if tiff[:2] == b"MM" else "<") + "H", value[:2])[0] if kind == 3 else None


def _tiff_orientation(tiff: bytes) -> int | None:
    """The orientation (1-8) in the first image directory of a TIFF/EXIF block; None when there is none."""
    value = _tiff_short(tiff, ORIENTATION_TAG)
    return value if value is not None and 1 <= value <= 8 else None


def tiff_compression(data: bytes) -> int | None:
    """How the first picture of a TIFF file's bytes is compressed (its tag 259: 1 none, 5 LZW, 7 JPEG ...), 1 when
    the tag is left out; None when ``data`` is not a TIFF or is a DNG (whose JPEG FFmpeg reads)."""
    entries = _tiff_entries(data)
    if entries is None or DNG_VERSION_TAG in entries:
        return None
    return _tiff_short(data, TIFF_COMPRESSION_TAG) or 1


def _tiff_refused(compression: int) -> str:
    name = TIFF_COMPRESSION_NAMES.get(compression, f"number {compression}")
    blank = " outside a camera raw (DNG): its picture comes out blank" if compression in TIFF_JPEG else ""
    return (f"a TIFF compressed with {name}, which FFmpeg does not decode{blank}: save it as a JPEG or PNG, or as a "
            "TIFF with LZW compression or none")


def _strip_exif_header(block: bytes) -> bytes:
    return block[6:] if block.startswith(b"Exif\0\0") else block


def _jpeg_segments(data: bytes):
    """``(marker, payload)`` of a JPEG file's segments before its image data."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more segments of interest
            return
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        yield marker, data[pos + 4:pos + 2 + length]
        pos += 2 + length


def _png_chunks(data: bytes):
    """``(type, data)`` of a PNG file's chunks, up to ``IEND`` (``eXIf`` and ``iCCP`` may come anywhere)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IEND":
            return
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length


def exif_orientation(data: bytes) -> int | None:
    """The EXIF orientation of a JPEG, PNG or WebP file's bytes (1-8); None when the file carries none."""
    if data[:2] == b"\xff\xd8":  # JPEG: segments up to the image data
        for marker, block in _jpeg_segments(data):
            if marker == 0xE1 and block[:6] == b"Exif\0\0":
                return _tiff_orientation(block[6:])
        return None
    if data[:8] == PNG_SIGNATURE:
        for kind, block in _png_chunks(data):
            if kind == b"eXIf":
                return _tiff_orientation(_strip_exif_header(block))
        return None
    from vtr.data.webp import riff_chunks

    for kind, block in riff_chunks(data):  # WebP
        if kind == b"EXIF":
            return _tiff_orientation(_strip_exif_header(block))
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


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, payload end) of the ISO base media boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:  # a 64-bit size follows
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:  # to the end
            size = end - pos
        if size < head or pos + size > end:
            return
        yield kind, pos + head, pos + size
        pos += size


def _uint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    """An unsigned big-endian integer of ``size`` bytes (0, 2, 4 or 8) at ``pos``, and the position after it."""
    return (int.from_bytes(data[pos:pos + size], "big") if size else 0), pos + size


def _heif_meta(data: bytes) -> tuple[dict, int | None]:
    """The boxes in a HEIF file's ``meta`` box ({type: (payload start, end)}) and its primary item's id; ``({},
    None)`` for a file that is not HEIF or names no primary item."""
    if data[4:8] != b"ftyp":
        return {}, None
    meta = next(((s, e) for kind, s, e in _boxes(data) if kind == b"meta"), None)
    if meta is None:
        return {}, None
    kids = {kind: (s, e) for kind, s, e in _boxes(data, meta[0] + 4, meta[1])}  # meta is a full box
    if b"pitm" not in kids:
        return {}, None
    s, _ = kids[b"pitm"]
    return kids, _uint(data, s + 4, 2 if data[s] == 0 else 4)[0]


def heif_grid(data: bytes) -> dict | None:
    """The layout of a HEIF photo (an iPhone's HEIC) whose primary image is a grid of tiles, each coded as an image
    of its own (ISO/IEC 23008-12, 6.6.2.3): ``{"rows", "columns", "width", "height", "tiles": [item ids, row by
    row], "transforms": [("irot", quarter turns anticlockwise) or ("imir", axis), in order]}``. None when the file is
    not HEIF or its primary image is not a grid. FFmpeg gives such a file's tiles as streams (their ids the items'),
    and PyAV has no access to the grid FFmpeg reads, so the first stream was one tile: a corner of the photo."""
    kids, primary = _heif_meta(data)
    if not {b"iinf", b"iloc", b"iref"} <= kids.keys():
        return None
    s, e = kids[b"iinf"]
    types = {}
    for kind, bs, be in _boxes(data, s + 4 + (2 if data[s] == 0 else 4), e):
        if kind == b"infe" and data[bs] >= 2:
            item, pos = _uint(data, bs + 4, 2 if data[bs] == 2 else 4)
            types[item] = data[pos + 2:pos + 6]
    if types.get(primary) != b"grid":
        return None
    s, e = kids[b"iref"]
    wide = 4 if data[s] else 2
    tiles = None
    for kind, bs, be in _boxes(data, s + 4, e):
        item, pos = _uint(data, bs, wide)
        if kind == b"dimg" and item == primary:
            count, pos = _uint(data, pos, 2)
            tiles = [_uint(data, pos + wide * i, wide)[0] for i in range(count)]
    grid = _item_data(data, kids, primary)
    if not tiles or grid is None or len(grid) < 8:
        return None
    rows, columns = grid[2] + 1, grid[3] + 1
    width, height = struct.unpack(">II" if grid[1] & 1 else ">HH", grid[4:12] if grid[1] & 1 else grid[4:8])
    return {"rows": rows, "columns": columns, "width": width, "height": height, "tiles": tiles,
            "transforms": _transforms(data, kids, primary)}


def _item_data(data: bytes, kids: dict, item_id: int) -> bytes | None:
    """An item's bytes, from the ``iloc`` box: in the file (construction method 0) or in ``idat`` (1)."""
    s, e = kids[b"iloc"]
    version = data[s]
    pos = s + 4
    offset_size, length_size = data[pos] >> 4, data[pos] & 15
    base_size, index_size = data[pos + 1] >> 4, (data[pos + 1] & 15 if version in (1, 2) else 0)
    count, pos = _uint(data, pos + 2, 2 if version < 2 else 4)
    for _ in range(count):
        item, pos = _uint(data, pos, 2 if version < 2 else 4)
        method = 0
        if version in (1, 2):
            method, pos = _uint(data, pos, 2)
            method &= 15
        pos += 2  # data reference index
        base, pos = _uint(data, pos, base_size)
        extents, pos = _uint(data, pos, 2)
        chunks = []
        for _ in range(extents):
            pos += index_size
            offset, pos = _uint(data, pos, offset_size)
            length, pos = _uint(data, pos, length_size)
            chunks.append((base + offset, length))
        if item != item_id:
            continue
        if method == 1 and b"idat" in kids:
            origin = kids[b"idat"][0]
        elif method == 0:
            origin = 0
        else:
            return None
        return b"".join(data[origin + o:origin + o + n] for o, n in chunks)
    return None


def _properties(data: bytes, kids: dict, item_id: int) -> list[tuple[bytes, int, int]]:
    """``(type, payload start, payload end)`` of the properties associated with an item (``ipma``), in their order."""
    if b"iprp" not in kids:
        return []
    iprp = {kind: (s, e) for kind, s, e in _boxes(data, *kids[b"iprp"])}
    if b"ipco" not in iprp or b"ipma" not in iprp:
        return []
    props = list(_boxes(data, *iprp[b"ipco"]))
    s, e = iprp[b"ipma"]
    version, flags = data[s], int.from_bytes(data[s + 1:s + 4], "big")
    count, pos = _uint(data, s + 4, 4)
    out = []
    for _ in range(count):
        item, pos = _uint(data, pos, 2 if version < 1 else 4)
        n, pos = _uint(data, pos, 1)
        for _ in range(n):
            index, pos = _uint(data, pos, 2 if flags & 1 else 1)
            index &= 0x7FFF if flags & 1 else 0x7F
            if item == item_id and 1 <= index <= len(props):
                out.append(props[index - 1])
    return out


def _transforms(data: bytes, kids: dict, item_id: int) -> list:
    """The rotation (``irot``) and mirror (``imir``) properties associated with an item, in their order."""
    return [("irot", data[ps] & 3) if kind == b"irot" else ("imir", data[ps] & 1)
            for kind, ps, _ in _properties(data, kids, item_id) if kind in (b"irot", b"imir")]


def _heif_icc(data: bytes) -> bytes | None:
    """The ICC profile of a HEIF photo's primary image (a ``colr`` property of type ``prof`` or ``rICC``), else of
    its first tile where it is a grid (a writer may give the tiles the property and not the grid)."""
    kids, primary = _heif_meta(data)
    if primary is None:
        return None
    grid = heif_grid(data)
    for item in [primary] + (grid["tiles"][:1] if grid else []):
        for kind, ps, pe in _properties(data, kids, item):
            if kind == b"colr" and data[ps:ps + 4] in (b"prof", b"rICC"):
                return data[ps + 4:pe]
    return None


def embedded_icc(data: bytes) -> bytes | None:
    """The ICC colour profile a photo's bytes carry (:mod:`vtr.data.icc`): JPEG's ``ICC_PROFILE`` APP2 segments (in
    their order: a large profile takes several), PNG's ``iCCP`` chunk, WebP's ``ICCP`` chunk, TIFF's tag 34675, a
    HEIF's or AVIF's ``colr`` property. None when it carries none, or the profile cannot be put together."""
    if data[:2] == b"\xff\xd8":
        parts: dict[int, bytes] = {}
        total = 0
        for marker, block in _jpeg_segments(data):
            if marker == 0xE2 and block[:12] == b"ICC_PROFILE\0" and len(block) > 14:
                parts.setdefault(block[12], block[14:])
                total = block[13]
        if not parts or sorted(parts) != list(range(1, total + 1)):
            return None
        return b"".join(parts[k] for k in sorted(parts))
    if data[:8] == PNG_SIGNATURE:
        for kind, block in _png_chunks(data):
            if kind == b"iCCP":
                name_end = block.find(b"\0")
                if name_end < 0 or block[name_end + 1:name_end + 2] != b"\0":  # 0: zlib, the only method
                    return None
                try:
                    return zlib.decompress(block[name_end + 2:])
                except zlib.error:
                    return None
        return None
    if data[:4] == b"RIFF":
        from vtr.data.webp import riff_chunks

        return next((block for kind, block in riff_chunks(data) if kind == b"ICCP"), None)
    entries = _tiff_entries(data)
    if entries is not None:
        kind, value, count = entries.get(ICC_PROFILE_TAG, (None, b"", 0))
        if kind not in (1, 7) or count <= 4:  # BYTE or UNDEFINED, at the offset the value field gives
            return None
        at = struct.unpack((">" if data[:2] == b"MM" else "<") + "I", value)[0]
        return data[at:at + count] if at + count <= len(data) else None
    return _heif_icc(data)


def _tiled(container, grid: dict) -> np.ndarray:
    """The grid's picture from its tiles' streams (each one picture), cropped to its size and turned as its
    transforms say."""
    streams = {s.id: s for s in container.streams.video}
    missing = [t for t in grid["tiles"] if t not in streams]
    if missing or len(grid["tiles"]) != grid["rows"] * grid["columns"]:
        raise ValueError(f"the photo's grid names {len(grid['tiles'])} tiles, {len(missing)} of them not found")
    wanted = [streams[t] for t in grid["tiles"]]
    pictures = {}
    for packet in container.demux(*wanted):
        for frame in packet.decode():
            pictures.setdefault(packet.stream.id, frame.to_ndarray(format="rgb24"))
    if len(pictures) < len(wanted):
        raise ValueError(f"{len(wanted) - len(pictures)} of the photo's {len(wanted)} tiles do not decode (damaged)")
    th, tw = pictures[grid["tiles"][0]].shape[:2]
    canvas = np.zeros((grid["rows"] * th, grid["columns"] * tw, 3), np.uint8)
    for i, item in enumerate(grid["tiles"]):
        r, c = divmod(i, grid["columns"])
        tile = pictures[item]
        canvas[r * th:r * th + tile.shape[0], c * tw:c * tw + tile.shape[1]] = tile[:th, :tw]
    rgb = canvas[:grid["height"], :grid["width"]]
    for kind, value in grid["transforms"]:
        rgb = np.rot90(rgb, value) if kind == "irot" else (rgb[:, ::-1] if value == 0 else rgb[::-1])
    return rgb


#: What a transparent pixel shows: white, as a browser shows a sticker, a logo or an animation on a page (and as
#: FFmpeg's GIF decoder fills a GIF's transparent colour). The colour a file stores under its transparent pixels is
#: often another one (a sticker's green, an editor's black) that no viewer shows.
BACKGROUND = 255

_HAS_ALPHA: dict[str, bool] = {}


def format_has_alpha(name: str | None) -> bool:
    """Whether the FFmpeg pixel format ``name`` carries transparency (rgba, bgra, yuva420p, yuva444p10le, ...)."""
    if not name:
        return False
    alpha = _HAS_ALPHA.get(name)
    if alpha is None:
        import av

        try:
            alpha = any(c.is_alpha for c in av.VideoFormat(name).components)
        except (ValueError, av.FFmpegError):  # a name this FFmpeg does not know
            alpha = False
        _HAS_ALPHA[name] = alpha
    return alpha


def has_alpha(frame) -> bool:
    """Whether a decoded PyAV frame carries transparency: by its pixel format, or for a palette frame (a PNG made
    small by pngquant, an icon) by its palette's alpha."""
    name = frame.format.name
    if name == "pal8":
        return bool(np.frombuffer(frame.planes[1], np.uint8)[3::4].min() < 255)  # BGRA entries
    return format_has_alpha(name)


def over_background(rgba: np.ndarray) -> np.ndarray:
    """uint8 [..., 4] RGBA (straight alpha, as PNG, WebP, GIF and video codecs store it) → [..., 3] RGB over
    :data:`BACKGROUND` (white), rounded to nearest: ``255 - round((255 - c) a / 255)``, the division by 255 done
    exactly with shifts. One channel at a time, in place: numpy's integer division and temporaries made it several
    times slower, on every frame of a GIF."""
    a = rgba[..., 3].astype(np.uint16)
    out = np.empty(rgba.shape[:-1] + (3,), np.uint8)
    t = np.empty(rgba.shape[:-1], np.uint16)
    for c in range(3):
        np.subtract(BACKGROUND, rgba[..., c], out=t, dtype=np.uint16)  # how far from white
        t *= a
        t += 128
        t += t >> 8
        t >>= 8  # (255 - c) a / 255, rounded: exact for every c and a (tests/data/test_image.py)
        np.subtract(BACKGROUND, t, out=out[..., c], casting="unsafe")
    return out


def straight_rgba(frame, reformatter) -> np.ndarray:
    """A decoded PyAV frame as uint8 [H, W, 4] RGBA with straight alpha (255 for a frame without). swscale's
    conversion of 8-bit 4:2:0 YUV (a lossy WebP's, with or without its alpha plane) to RGBA writes wrong pixels in
    the last 1-4 columns of a frame 16k + 1 to 16k + 4 wide (FFmpeg 8: tests/data/test_image.py), where its
    conversion to RGB is right: such a frame's colour is converted to RGB and its alpha plane taken as it is."""
    name = frame.format.name
    if name not in ("yuv420p", "yuva420p"):
        return reformatter.reformat(frame, format="rgba").to_ndarray()
    h, w = frame.height, frame.width
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = reformatter.reformat(frame, format="rgb24").to_ndarray()
    if name == "yuva420p":
        plane = frame.planes[3]
        out[..., 3] = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
    else:
        out[..., 3] = 255
    return out


def shown_rgb(frame, reformatter, width=None, height=None, interpolation=None) -> np.ndarray:
    """A decoded PyAV frame as uint8 [H, W, 3] RGB as it is shown: HDR (PQ, HLG) tone-mapped to SDR
    (:mod:`vtr.data.hdr`), transparency over :data:`BACKGROUND`, at ``width`` × ``height`` when given (swscale,
    through ``reformatter``). A transparent frame is put over the background at its own size and then scaled, so
    the colour stored under its transparent pixels does not bleed into the edges."""
    if hdr.is_hdr(frame):
        return hdr.frame_to_rgb(frame, reformatter, width, height, interpolation)
    if not has_alpha(frame):
        return reformatter.reformat(frame, format="rgb24", width=width, height=height,
                                    interpolation=interpolation).to_ndarray()
    import av

    rgb = over_background(straight_rgba(frame, reformatter))
    if width is None and height is None:
        return rgb
    return reformatter.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"),
                                width=width, height=height, interpolation=interpolation).to_ndarray()


def read_image(source: bytes | str | os.PathLike) -> np.ndarray:
    """The first picture of an image file (its bytes or its path) as uint8 [H, W, 3] RGB, upright (see the
    module's docstring); an animated WebP's first frame as it is shown (:mod:`vtr.data.webp`: FFmpeg decodes no
    animated WebP). Raises what PyAV raises for a file that is not an image or is damaged, ``ValueError`` saying
    why for a damaged animated WebP and for a TIFF compressed in a way FFmpeg does not decode (JPEG, whose picture
    it gives blank, Zstandard, ...)."""
    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.animation import animated_webp

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    if animated_webp(data):
        from vtr.data.webp import composited_frames

        canvas, _ = next(composited_frames(data))
        return _upright(_in_srgb(over_background(canvas), data), exif_orientation(data), 0)
    compression = tiff_compression(data)
    if compression in TIFF_JPEG:
        raise ValueError(_tiff_refused(compression))
    grid = heif_grid(data)
    # A JPEG is named as one: FFmpeg's probe reads past a small one's end, and where a motion photo's video follows
    # (vtr.data.motion_photo) it recognises neither
    with av.open(io.BytesIO(data), format="jpeg_pipe" if data[:3] == b"\xff\xd8\xff" else None) as container:
        if grid is not None:  # an iPhone's HEIC: its tiles, put together (its rotation is the grid's, not theirs)
            return np.ascontiguousarray(_in_srgb(_tiled(container, grid), data))
        try:
            frame = next(container.decode(video=0))
        except av.FFmpegError as e:
            if compression is not None and compression not in TIFF_DECODED:  # said, not "damaged"
                raise ValueError(_tiff_refused(compression)) from e
            raise
        rgb = shown_rgb(frame, VideoReformatter())  # HDR tone-mapped, transparency over white
        if not hdr.is_hdr(frame):  # an HDR photo's colours are its tags' (tone-mapped to sRGB above)
            rgb = _in_srgb(rgb, data)
        rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    return _upright(rgb, exif_orientation(data), rotation)


def _in_srgb(rgb: np.ndarray, data: bytes) -> np.ndarray:
    """A decoded picture in sRGB, as its viewer shows it: converted from the colour space its embedded ICC profile
    says (Display P3, Adobe RGB: :mod:`vtr.data.icc`); as decoded where it carries none, or sRGB's."""
    from vtr.data.icc import srgb_transform, to_srgb

    transform = srgb_transform(embedded_icc(data))
    return rgb if transform is None else to_srgb(rgb, transform)


def _upright(rgb: np.ndarray, orientation: int | None, rotation: int) -> np.ndarray:
    """A decoded picture turned by its EXIF orientation, else by the rotation FFmpeg reports."""
    if orientation is not None:
        rgb = apply_orientation(rgb, orientation)
    elif rotation in (90, 180, 270):  # anticlockwise, as the video readers turn portrait phone video
        rgb = np.rot90(rgb, rotation // 90)
    return np.ascontiguousarray(rgb)


__all__ = ["read_image", "shown_rgb", "straight_rgba", "has_alpha", "format_has_alpha", "over_background",
           "exif_orientation", "apply_orientation", "heif_grid", "embedded_icc"]
