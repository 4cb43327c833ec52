"""Test-video helpers: write small videos with PyAV whose frames encode their own index.

Each frame's top half is a solid grey patch of level ``INDEX_BASE + INDEX_STEP * i`` (robust to lossy
compression), the bottom half a moving colour texture (so frame comparisons between decoders test real pixels).
"""

from __future__ import annotations

import io
from fractions import Fraction
import struct
from pathlib import Path

import numpy as np

INDEX_BASE = 20
INDEX_STEP = 3
MAX_INDEX = (255 - INDEX_BASE) // INDEX_STEP  # 78


def indexed_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 [T, H, W, 3]; frame i's top half is grey ``20 + 3 i`` (i <= 78)."""
    if num_frames - 1 > MAX_INDEX:
        raise ValueError(f"at most {MAX_INDEX + 1} indexed frames")
    yy, xx = np.mgrid[0:height, 0:width]
    out = np.empty((num_frames, height, width, 3), np.uint8)
    half = height // 2
    for i in range(num_frames):
        out[i, :half] = INDEX_BASE + INDEX_STEP * i
        out[i, half:, :, 0] = ((xx[half:] * 4 + i * 7) % 256)
        out[i, half:, :, 1] = ((yy[half:] * 5 + i * 3) % 256)
        out[i, half:, :, 2] = ((xx[half:] + yy[half:]) * 2 % 256)
    return out


def frame_index_of(frame) -> int:
    """Recover the index written by :func:`indexed_frames` from a decoded frame ([H, W, 3] or [3, H, W])."""
    a = np.asarray(frame, dtype=np.float64)
    if a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    h, w = a.shape[:2]
    patch = a[h // 8: h // 2 - h // 8, w // 4: w - w // 4]  # centre of the solid top half
    return int(round((patch.mean() - INDEX_BASE) / INDEX_STEP))


def encode_all(container, stream, frames, fmt: str = "rgb24") -> None:
    """Encode uint8 [H, W, C] ``frames`` (numpy ``fmt``: rgb24, rgba) into ``stream`` and mux them, then flush it."""
    import av

    for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=fmt)):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_video(path, frames: np.ndarray, fps: int = 25, codec: str = "libx264", gop: int | None = None,
                rotation: int = 0, audio_seconds: float | None = None, options: dict | None = None,
                pix_fmt: str = "yuv420p", sample_aspect=None, tags: dict | None = None) -> Path:
    """Write uint8 [T, H, W, 3] RGB frames with PyAV (container from the file extension).

    codec: "libx264" (near-lossless crf 10) or another encoder (high bitrate). gop: keyframe interval. rotation: a
    display rotation in degrees, counter-clockwise, as phones write portrait video (the frames are stored as given).
    audio_seconds: also a silent AAC track that long (it may outlast the frames).
    options: the encoder's options instead of those defaults (B-frames, keyframe intervals, quality of ordinary
    footage), e.g. ``{"preset": "veryfast", "bf": "3", "g": "16"}``. pix_fmt: what the encoder takes (MJPEG
    ``yuvj420p``, ProRes ``yuv422p10le``). sample_aspect: non-square pixels (a Fraction; HDV's 4/3). tags: the
    container's metadata, e.g. ``{"creation_time": "2023-07-14T15:30:12Z"}`` (Apple's ``com.apple.quicktime.*``
    keys written as an iPhone writes them).
    """
    import av

    path = Path(path)
    apple = any(k.startswith("com.apple.") for k in (tags or {}))
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"} if apple else None) as container:
        container.metadata.update(tags or {})
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        audio = container.add_stream("aac", rate=16000) if audio_seconds else None  # every stream before muxing
        if options is not None:
            stream.options = dict(options)
        elif codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        if codec not in ("libx264", "libx265") and not (options or {}).get("b"):
            stream.bit_rate = 4_000_000
        encode_all(container, stream, frames, "rgb24")
        if audio is not None:
            _mux_silence(container, audio, audio_seconds, 16000)
    return path


def write_gif(path, frames: np.ndarray, fps: int = 10) -> Path:
    """uint8 [T, H, W, 3] frames as an animated GIF (one frame: a still one), in grey: the palette keeps the grey
    of :func:`indexed_frames` exactly."""
    return write_video(path, frames, fps=fps, codec="gif", pix_fmt="gray")


def write_animated_webp(path, frames: np.ndarray, fps: int = 10, lossless: bool = False) -> Path:
    """uint8 [T, H, W, 3] frames as an animated WebP (libwebp's animation encoder: each frame the rectangle that
    changed, drawn over the last; lossy, it merges frames it finds alike), which FFmpeg writes but does not decode
    (:mod:`vtr.data.webp` does)."""
    return _write_stills(path, frames, "webp", "libwebp_anim", fps, {"lossless": "1"} if lossless else None)


def webp_still_chunks(rgba: np.ndarray, lossless: bool = True) -> bytes:
    """A uint8 [H, W, 4] picture encoded by libwebp (lossless: a ``VP8L`` chunk; lossy: ``VP8 ``, behind an ``ALPH``
    chunk when it has transparency): the chunks an animated WebP's frame holds."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="webp") as container:
        stream = container.add_stream("libwebp", rate=1, options={"lossless": "1"} if lossless else {})
        stream.width, stream.height = rgba.shape[1], rgba.shape[0]
        stream.pix_fmt = "bgra" if lossless else "yuva420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    data = out.getvalue()
    chunks, pos = b"", 12
    while pos < len(data):
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if data[pos:pos + 4] in (b"ALPH", b"VP8 ", b"VP8L"):
            chunks += data[pos:pos + 8 + size + (size & 1)]
        pos += 8 + size + (size & 1)
    return chunks


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    """A RIFF chunk: its four-character kind, its size, its data padded to an even size."""
    return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def write_webp_animation(path, width: int, height: int, frames, icc: bytes | None = None) -> Path:
    """An animated WebP written chunk by chunk as RFC 9649 lays it out, each frame a ``(x, y, rgba, duration_ms,
    blend, dispose)`` (even offsets; ``rgba`` uint8 [h, w, 4]) or ``(..., lossless)``, its image encoded by libwebp
    (:func:`webp_still_chunks`): every rule of the format chosen here, where libwebp's animation encoder picks its
    own. ``icc``: an ICC profile, in an ``ICCP`` chunk."""
    def u24(n):
        return int(n).to_bytes(3, "little")

    flags = 0x12 | (0x20 if icc else 0)  # animation, alpha, ICC profile
    body = riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + u24(width - 1) + u24(height - 1))
    body += riff_chunk(b"ICCP", icc) if icc else b""
    body += riff_chunk(b"ANIM", bytes([255, 255, 255, 255, 0, 0]))  # a white background (viewers draw none)
    for x, y, rgba, duration, blend, dispose, *lossless in frames:
        head = u24(x // 2) + u24(y // 2) + u24(rgba.shape[1] - 1) + u24(rgba.shape[0] - 1) + u24(duration)
        head += bytes([(0 if blend else 2) | (1 if dispose else 0)])
        body += riff_chunk(b"ANMF", head + webp_still_chunks(rgba, *lossless))
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    return Path(path)


def write_avif(path, frames: np.ndarray, fps: int = 10) -> Path:
    """uint8 [T, H, W, 3] frames (even sizes) as an AVIF (FFmpeg's muxer, SVT-AV1): a still of one frame, an image
    sequence (the ``avis`` brand: an animated AVIF) of several."""
    import os

    os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its whole configuration otherwise
    return _write_stills(path, frames, "avif", "libsvtav1", fps, {"crf": "10"})


def _write_stills(path, frames: np.ndarray, fmt: str, codec: str, fps: int, options: dict | None = None) -> Path:
    """uint8 [T, H, W, 3] frames through FFmpeg's ``fmt`` muxer and ``codec`` (yuv420p)."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        encode_all(out, stream, frames, "rgb24")
    return Path(path)


def transparent_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 [T, H, W, 4] RGBA: a red square (opaque) moving right, a half-transparent blue bar along the bottom, and
    a transparent rest whose stored colour is green, as a sticker or an editor's export may store it (no viewer
    shows it)."""
    out = np.zeros((num_frames, height, width, 4), np.uint8)
    out[..., 1] = 255  # green, alpha 0
    for i in range(num_frames):
        out[i, height // 4:3 * height // 4, 4 + 2 * i:4 + 2 * i + width // 3] = (200, 30, 30, 255)
    out[:, -6:] = (0, 0, 255, 128)
    return out


def write_rgba(path, frames: np.ndarray, fps: int = 10) -> Path:
    """uint8 [T, H, W, 4] RGBA frames with their transparency, by ``path``'s extension: ``.apng`` (animated),
    ``.png`` or ``.webp`` (the first frame, a still: a chat's sticker is a WebP with transparency)."""
    import av

    path = Path(path)
    ext = path.suffix.lower()
    codec, pix_fmt, fmt = {".apng": ("apng", "rgba", None), ".png": ("png", "rgba", None),
                           ".webp": ("libwebp", "yuva420p", "webp")}[ext]
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec == "libwebp":
            stream.options = {"lossless": "1"}
        encode_all(out, stream, frames if ext == ".apng" else frames[:1], "rgba")
    return path


def write_alpha_webm(path, frames: np.ndarray, codec: str = "libvpx-vp9", fps: int = 10, audio: bool = False,
                     pix_fmt: str = "yuva420p", tags: dict | None = None, live: bool = False) -> Path:
    """uint8 [T, H, W, 4] RGBA frames as a WebM with transparency, as a chat's video sticker is (libvpx writes the
    alpha as Matroska block additions, ``alpha_mode`` 1); with a second of silence when ``audio``; ``pix_fmt``
    yuv420p: without transparency; ``tags``: the file's metadata (``creation_time``); ``live``: without a duration,
    as a live recording is written."""
    import av

    with av.open(str(path), "w", format="webm", options={"live": "1"} if live else {}) as out:
        out.metadata.update(tags or {})
        # libvpx's VP8 encoder writes no alpha with alternate reference frames, which it uses by default
        stream = out.add_stream(codec, rate=fps, options={"auto-alt-ref": "0"} if codec == "libvpx" else {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        sound = out.add_stream("libopus", rate=48000) if audio else None  # every stream before muxing
        encode_all(out, stream, frames, "rgba")
        if sound is not None:
            _mux_silence(out, sound, 1.0, 48000)
    return Path(path)


def write_palette_png(path, rgba: np.ndarray) -> Path:
    """A uint8 [H, W, 4] picture of at most 256 colours as an 8-bit palette PNG whose entries carry alpha (its
    ``tRNS`` chunk), as pngquant and icon editors write them."""
    import av

    colours, indices = np.unique(rgba.reshape(-1, 4), axis=0, return_inverse=True)
    if len(colours) > 256:
        raise ValueError("a palette holds at most 256 colours")
    height, width = rgba.shape[:2]
    frame = av.VideoFrame(width, height, "pal8")
    rows = np.zeros((height, frame.planes[0].line_size), np.uint8)
    rows[:, :width] = indices.reshape(height, width)
    palette = np.zeros((256, 4), np.uint8)
    palette[:len(colours)] = colours[:, [2, 1, 0, 3]]  # FFmpeg's palette entries are BGRA
    frame.planes[0].update(rows.tobytes())
    frame.planes[1].update(palette.tobytes())
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return Path(path)


def write_vfr_video(path, frames: np.ndarray, times, codec: str = "libx264", live: bool = False) -> Path:
    """Write uint8 [T, H, W, 3] RGB frames shown at ``times`` (seconds, increasing): a variable frame rate, as
    phones and screen recorders write. Millisecond timestamps; libx264 keeps its B-frames (presentation order
    differs from decoding order). live: Matroska written as a browser's MediaRecorder writes it (Chrome's webm or
    H.264 mkv), with neither a duration nor a frame count in its header."""
    import fractions

    import av

    path = Path(path)
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", **({"format": "matroska", "options": {"live": "1"}} if live else {})) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = stream.time_base = tb
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast", "bf": "2"}
        for f, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts, frame.time_base = int(round(float(t) * 1000)), tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path, seconds: float = 0.5, rate: int = 16000) -> Path:
    """An mp4 holding a single AAC audio stream and no video."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        _mux_silence(container, container.add_stream("aac", rate=rate), seconds, rate)
    return path


def write_covered_sound(path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A song or a podcast episode as an mp4: AAC sound and its cover picture (a one-frame MJPEG stream marked
    ``attached_pic``), the only picture in the file."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        sound = container.add_stream("aac", rate=rate)  # every stream before the first packet
        picture = av.VideoFrame.from_ndarray(indexed_frames(1)[0], format="rgb24").reformat(format="yuvj420p")
        for packet in [*cover.encode(picture), *cover.encode()]:
            container.mux(packet)
        _mux_silence(container, sound, seconds, rate)
    return path


def _mux_silence(container, stream, seconds: float, rate: int) -> None:
    """Encode and mux ``seconds`` of mono silence into an audio ``stream`` of ``container``."""
    import av

    n = 1024
    for k in range(int(seconds * rate) // n):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, k * n
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_zero_frame_video(path, codec: str = "mpeg4") -> Path:
    """A container with a video stream header but no frames."""
    import av

    path = Path(path)
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    return path


def write_jpeg(path, frame: np.ndarray) -> Path:
    """Write one uint8 [H, W, 3] RGB frame as a JPEG still with PyAV (:func:`write_photo`, untagged)."""
    return write_photo(path, frame)


def exif_block(orientation: int, byte_order: str = "MM") -> bytes:
    """A minimal EXIF (TIFF) block whose first directory holds one tag: the orientation (1-8), written by hand after
    the TIFF 6.0 layout (big-endian ``MM`` as cameras write it, or little-endian ``II``)."""
    order = ">" if byte_order == "MM" else "<"
    return (byte_order.encode() + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
            + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0))


def write_tiff(path, rgb: np.ndarray, compression: int = 1, dng: bool = False) -> Path:
    """Write uint8 [H, W, 3] ``rgb`` as a one-strip TIFF, by hand after the TIFF 6.0 layout: ``compression`` 1 the
    pixels as they are; 7 a JPEG of them (PyAV's MJPEG encoder), as a scanner's or an editor's "JPEG" TIFF holds one;
    any other number the pixels as they are under that tag (a file that says it is compressed so). ``dng``: a
    DNGVersion tag, as a camera's raw photo carries."""
    import av

    h, w = rgb.shape[:2]
    strip = rgb.tobytes()
    if compression == 7:
        with av.open(io.BytesIO(), "w", format="mjpeg") as c:
            stream = c.add_stream("mjpeg", rate=1)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuvj420p"  # YCbCr 4:2:0, TIFF's default for it
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
            strip = b"".join(bytes(p) for p in stream.encode(frame)) + b"".join(bytes(p) for p in stream.encode())
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, None), (259, 3, 1, compression),
            (262, 3, 1, 6 if compression == 7 else 2), (273, 4, 1, None), (277, 3, 1, 3), (278, 4, 1, h),
            (279, 4, 1, len(strip))] + ([(50706, 1, 4, 0x01040000)] if dng else [])
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(tags) + 4  # BitsPerSample's three values, then the strip
    strip_at = extra_at + 6
    out = b"II" + struct.pack("<HI", 42, ifd_at) + struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        if tag == 258:
            value = extra_at
        elif tag == 273:
            value = strip_at
        packed = struct.pack("<I", value) if kind in (1, 4) else struct.pack("<HH", value, 0)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + struct.pack("<3H", 8, 8, 8) + strip
    Path(path).write_bytes(out)
    return Path(path)


def write_photo(path, stored: np.ndarray, orientation: int | None = None, byte_order: str = "MM") -> Path:
    """Write uint8 [H, W, 3] ``stored`` pixels as a .jpg, .png or .webp still (by ``path``'s extension) with PyAV,
    tagged with an EXIF ``orientation`` as a camera tags it: an APP1 segment after the JPEG's start, a PNG
    ``eXIf`` chunk before the image data, a WebP ``EXIF`` chunk after it (in the extended format, flagged in its
    ``VP8X`` header)."""
    import zlib

    path = Path(path)
    ext = path.suffix.lower()
    jpeg = ("mjpeg", "yuvj420p", "image2")
    codec, pix_fmt, fmt = {".jpg": jpeg, ".jpeg": jpeg, ".png": ("png", "rgb24", "image2"),
                           ".webp": ("libwebp", "yuv420p", "webp")}[ext]
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], pix_fmt
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    if orientation is None:
        return path
    data, tiff = path.read_bytes(), exif_block(orientation, byte_order)
    if ext in (".jpg", ".jpeg"):
        data = data[:2] + b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\0\0" + tiff + data[2:]
    elif ext == ".png":
        idat = data.index(b"IDAT") - 4
        chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
        data = data[:idat] + chunk + data[idat:]
    else:
        assert data[12:16] in (b"VP8 ", b"VP8L"), data[12:16]  # libwebp's simple format: made extended here
        h, w = stored.shape[:2]
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + (w - 1).to_bytes(3, "little") \
            + (h - 1).to_bytes(3, "little")
        exif = b"EXIF" + struct.pack("<I", len(tiff)) + tiff + b"\0" * (len(tiff) % 2)
        body = b"WEBP" + vp8x + data[12:] + exif
        data = b"RIFF" + struct.pack("<I", len(body)) + body
    path.write_bytes(data)
    return path


def sdr_as_hdr(rgb: np.ndarray, transfer: str) -> np.ndarray:
    """uint8 [..., 3] SDR frames (BT.709, gamma 2.4) mastered as HDR: [..., 3] yuv float (BT.2020 non-constant
    luminance, limited range, 10-bit code values), with SDR white at HDR reference white (203 nits, BT.2408). Written
    from the standards forwards (BT.2100's PQ inverse EOTF; HLG's inverse OOTF for a 1000-nit display and its OETF),
    apart from vtr.data.hdr, which goes back."""
    nits = 203.0 * np.power(rgb.astype(np.float64) / 255, 2.4)
    bt709_to_2020 = np.array([[0.627404, 0.329283, 0.043313], [0.069097, 0.919540, 0.011362],
                              [0.016391, 0.088013, 0.895595]])
    nits = nits @ bt709_to_2020.T
    if transfer == "pq":
        y = np.power(nits / 10000, 2610 / 16384)
        signal = np.power((3424 / 4096 + 2413 / 128 * y) / (1 + 2392 / 128 * y), 2523 / 32)
    else:  # hlg
        luma = np.array([0.2627, 0.6780, 0.0593])
        yd = np.maximum((nits / 1000) @ luma, 1e-12)[..., None]
        scene = (nits / 1000) / np.power(yd / 1, (1.2 - 1) / 1.2)
        a = 0.17883277
        b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
        signal = np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)
    r, g, b_ = signal[..., 0], signal[..., 1], signal[..., 2]
    luma = 0.2627 * r + 0.6780 * g + 0.0593 * b_
    return np.stack([64 + 876 * luma, 512 + 896 * (b_ - luma) / 1.8814, 512 + 896 * (r - luma) / 1.4746], -1)


def write_hdr_video(path, frames: np.ndarray, transfer: str, fps: int = 25, full_range: bool = False) -> Path:
    """uint8 [T, H, W, 3] SDR frames (H, W even) as a 10-bit HEVC video tagged as a phone tags its HDR video:
    BT.2020 primaries and matrix, limited range (full with ``full_range``), and the PQ ("pq", HDR10) or HLG ("hlg",
    an iPhone's) transfer. Lossless, so what is decoded is what :func:`sdr_as_hdr` made."""
    import av

    yuv = sdr_as_hdr(frames, transfer)
    if full_range:  # the same signal over all 1024 code values
        yuv = np.concatenate([(yuv[..., :1] - 64) * 1023 / 876, 512 + (yuv[..., 1:] - 512) * 1023 / 896], -1)
    yuv = np.clip(np.round(yuv), 0, 1023).astype(np.uint16)
    t, h, w = frames.shape[:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=fps, options={"x265-params": "lossless=1:log-level=error"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p10le"
        cc = stream.codec_context
        cc.color_primaries, cc.colorspace = 9, 9  # BT.2020, BT.2020 NCL
        cc.color_range = 2 if full_range else 1  # "pc" or "tv"
        cc.color_trc = 16 if transfer == "pq" else 18
        for i in range(t):
            frame = _yuv420p10_frame(yuv[i], cc)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def _yuv420p10_frame(yuv: np.ndarray, tagged_as):
    """A PyAV yuv420p10le frame of one uint16 [H, W, 3] YUV picture (chroma averaged over 2x2), tagged with the
    colour properties of the codec context ``tagged_as``."""
    import av

    h, w = yuv.shape[:2]
    chroma = yuv[:, :, 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3)).round().astype(np.uint16)
    planes = np.concatenate([yuv[:, :, 0].reshape(-1), chroma[..., 0].reshape(-1),
                             chroma[..., 1].reshape(-1)]).reshape(h * 3 // 2, w)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p10le")
    frame.color_primaries, frame.colorspace = tagged_as.color_primaries, tagged_as.colorspace
    frame.color_range, frame.color_trc = tagged_as.color_range, tagged_as.color_trc
    return frame


def write_hdr_photo(path, rgb: np.ndarray, transfer: str) -> Path:
    """A uint8 [H, W, 3] SDR picture (H, W even) as an HDR AVIF photo: 10-bit AV1 at near-lossless quality, BT.2020,
    limited range, PQ ("pq") or HLG ("hlg"), mastered by :func:`sdr_as_hdr`."""
    import av

    yuv = np.clip(np.round(sdr_as_hdr(rgb, transfer)), 0, 1023).astype(np.uint16)
    with av.open(str(path), "w", format="avif") as container:
        stream = container.add_stream("libsvtav1", rate=1, options={"crf": "4", "svtav1-params": "log-level=0"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p10le"
        cc = stream.codec_context
        cc.color_primaries, cc.colorspace, cc.color_range = 9, 9, 1
        cc.color_trc = 16 if transfer == "pq" else 18
        for packet in list(stream.encode(_yuv420p10_frame(yuv, cc))) + list(stream.encode()):
            container.mux(packet)
    return Path(path)


def write_interlaced_video(path, n: int = 20, h: int = 120, w: int = 160) -> Path:
    """A camcorder-like 1080i stand-in: interlaced H.264 (top field first) in MPEG-TS (from a ``.mts`` path), each
    frame's two fields from two instants of a white bar moving fast across grey, so a frame shown as it is combs the
    bar's edges."""
    def scene(t):
        img = np.full((h, w, 3), 90, np.uint8)
        img[20:100, 10 + 6 * t:22 + 6 * t] = 240
        return img

    frames = np.stack([scene(2 * i) for i in range(n)])
    for i in range(n):
        frames[i, 1::2] = scene(2 * i + 1)[1::2]  # the bottom field, a field period later
    return write_video(path, frames, fps=25, options={"crf": "12", "x264-params": "interlaced=1:tff=1"})


def write_resized_stream(path, sizes=((96, 128), (48, 64)), per_size: int = 20, fps: int = 25) -> Path:
    """MPEG-TS whose picture size changes mid-stream, as a TV recording's does between programme and advert: one
    H.264 stream written in runs of ``per_size`` :func:`indexed_frames` at each (height, width) of ``sizes``, each run
    starting on a keyframe with its own sequence header, the timestamps and frame indices going on across runs."""
    import av

    path = Path(path)
    with open(path, "wb") as out:
        for run, (h, w) in enumerate(sizes):
            frames = indexed_frames(per_size * len(sizes), h, w)[run * per_size:(run + 1) * per_size]
            buf = io.BytesIO()
            with av.open(buf, "w", format="mpegts") as container:
                stream = container.add_stream("libx264", rate=fps, options={"crf": "10", "preset": "ultrafast"})
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                for i, f in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                    frame.pts = run * per_size + i
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            out.write(buf.getvalue())
    return path


def write_trimmed_copy(src, dst, cut_s: float) -> Path:
    """``src`` trimmed at ``cut_s`` seconds without re-encoding, as ``ffmpeg -ss CUT -i SRC -c copy DST`` and
    LosslessCut do: its packets from the keyframe at or before the cut, timed so that the cut is at 0, which makes
    the MP4/MOV muxer write an edit list hiding the frames before it (the decoder needs them, players never show
    them, and the header still counts them)."""
    import av

    dst = Path(dst)
    with av.open(str(src)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size and p.pts is not None]
        cut = int(round(cut_s / stream.time_base))
        key = max(p.pts for p in packets if p.is_keyframe and p.pts <= cut)
        first_dts = min(p.dts for p in packets if p.pts >= key)
        with av.open(str(dst), "w") as out:
            copy = out.add_stream_from_template(stream)
            for p in packets:
                if p.dts < first_dts:
                    continue
                p.pts, p.dts, p.stream = p.pts - cut, p.dts - cut, copy
                out.mux(p)
    return dst


def write_dropping_capture(path, frames: np.ndarray, dropped, fps: int = 25, codec: str = "mjpeg") -> Path:
    """An AVI capture that dropped frames (a VHS digitised, a webcam): ``frames`` [slots, H, W, 3] are its frame
    periods, and those at ``dropped`` have no frame: FFmpeg's AVI muxer writes an empty chunk there, as capture
    software does, which the header counts and no packet comes from. MJPEG, as capture cards write it."""
    import av

    dropped = set(dropped)
    with av.open(str(path), "w", format="avi") as c:
        stream = c.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.bit_rate = 20_000_000  # each frame's index readable from its pixels
        for slot, rgb in enumerate(frames):
            if slot in dropped:
                continue
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=stream.pix_fmt)
            frame.pts, frame.time_base = slot, Fraction(1, fps)
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return Path(path)


def write_joined_ts(path, parts, fps: int = 10, sound: bool = False, keyint: int | None = None,
                    mpeg2: bool = False) -> Path:
    """MPEG-TS recordings joined end to end (``cat a.ts b.ts``, a TV recording that resumed): ``parts`` are
    ``(frames [T, H, W, 3], first second)``, each part's timestamps starting at its first second, so that they jump
    between parts. ``sound``: each second of the joined file (counted across parts) holds a tone of 220 Hz times
    (its second + 1). ``keyint``: a keyframe every so many frames (else x264's default, 250). ``mpeg2``: MPEG-PS
    instead (a DVD's VOBs joined, an ``.mpg``): MPEG-2 video with B-frames in open groups of pictures (broadcast's and
    DVDs'), MP2 sound."""
    import av

    joined, second = b"", 0
    for frames, first in parts:
        part = io.BytesIO()
        with av.open(part, "w", format="mpeg" if mpeg2 else "mpegts") as c:
            video = c.add_stream("mpeg2video" if mpeg2 else "libx264", rate=fps)
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            video.options = {"bf": "2", "b": "4M"} if mpeg2 else {"crf": "10", "preset": "ultrafast"}
            if keyint:
                video.options = {**video.options, "g": str(keyint)}
            video.codec_context.time_base = Fraction(1, fps)
            audio = c.add_stream("mp2" if mpeg2 else "aac", rate=48000, layout="mono") if sound else None
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = first * fps + i, Fraction(1, fps)
                for packet in video.encode(frame):
                    c.mux(packet)
            size = 1152 if mpeg2 else 1024
            for k in range(0, 48000 * len(frames) // fps if sound else 0, size):
                t = np.arange(k, k + size) / 48000
                tone = 0.3 * np.sin(2 * np.pi * 220 * (second + np.floor(t) + 1) * t)
                chunk = av.AudioFrame.from_ndarray(tone[None].astype(np.float32), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, first * 48000 + k, Fraction(1, 48000)
                for packet in audio.encode(chunk):
                    c.mux(packet)
            for stream in (video, audio) if sound else (video,):
                for packet in stream.encode():
                    c.mux(packet)
        joined += part.getvalue()
        second += len(frames) // fps
    Path(path).write_bytes(joined)
    return Path(path)


def write_cut_in_recording(path, frames: np.ndarray, fps: int = 25, keyint: int = 25) -> Path:
    """uint8 [T, H, W, 3] frames (T >= 3 ``keyint``) as MPEG-TS recorded from between two keyframes, as a TV tuner or
    an IP camera starts its recordings: H.264 with B-frames and a keyframe every ``keyint`` frames, written whole,
    then its bytes from a transport packet inside the first group of pictures. The first frames then reference
    pictures the file does not hold; decoders drop them, up to the second keyframe (frame ``keyint``)."""
    import av

    path = Path(path)
    whole = path.with_name(path.stem + ".whole.ts")
    write_video(whole, frames, fps=fps, options={
        "preset": "veryfast", "crf": "12",
        "x264-params": f"bframes=2:keyint={keyint}:min-keyint={keyint}:scenecut=0"})
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[len(data) * keyint // len(frames) // 2 // 188 * 188:])  # half-way into the first GOP
    with av.open(str(path)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
        assert not first.is_keyframe, "the cut landed on a keyframe"
    return path


def write_open_gop_recording(path, frames: np.ndarray, fps: int = 10, keyint: int = 10, closed: bool = False) -> Path:
    """uint8 [T, H, W, 3] frames (T >= 3 ``keyint``) as a TV tuner's MPEG-TS recording that starts on an I-frame of
    broadcast MPEG-2 (B-frames, open groups of pictures): written whole, then its bytes from the transport packet of
    its second keyframe (frame ``keyint``), whose two B-frames shown before it come after it and reference the group
    before, which the file no longer holds: decoders drop them, and the first frame out is frame ``keyint``.
    ``closed``: closed groups instead (``+cgop``: each keyframe's group refers to nothing before it)."""
    import av

    path = Path(path)
    whole = io.BytesIO()
    with av.open(whole, "w", format="mpegts") as c:
        stream = c.add_stream("mpeg2video", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"bf": "2", "g": str(keyint), "b": "4M", "sc_threshold": "1000000000",
                          **({"flags": "+cgop"} if closed else {})}
        stream.codec_context.time_base = Fraction(1, fps)
        encode_all(c, stream, frames)
    data = whole.getvalue()
    with av.open(io.BytesIO(data)) as c:
        keys = [p.pos for p in c.demux(video=0) if p.size and p.is_keyframe]
    path.write_bytes(data[keys[1]:])
    return path


def write_holed_ts(path, frames: np.ndarray, fps: int = 10, zeros: int = 200_000) -> Path:
    """uint8 [T, H, W, 3] frames as MPEG-TS with ``zeros`` bytes of zeros between two transport packets half-way
    (a download or a copy with a hole, a disk's bad sectors read back as zeros): FFmpeg's demuxer cannot resynchronise
    in them and says "try again"."""
    path = Path(path)
    whole = write_video(path.with_name(path.stem + ".whole.ts"), frames, fps=fps)
    data = whole.read_bytes()
    whole.unlink()
    half = len(data) // 2 // 188 * 188
    path.write_bytes(data[:half] + bytes(zeros) + data[half:])
    return path


def write_damaged_mp4(path, frames: np.ndarray, fps: int = 25, damaged=(30, 31), keyint: int = 25) -> Path:
    """uint8 [T, H, W, 3] frames as H.264 MP4 (B-frames, a keyframe every ``keyint`` frames) whose packets at the
    decoding-order places ``damaged`` are overwritten with zeros (a hole in a phone video's copy, bad sectors read
    back as zeros): the decoder refuses them."""
    path = Path(path)
    write_video(path, frames, fps=fps, options={"preset": "veryfast", "crf": "12",
                                                "x264-params": f"bframes=2:keyint={keyint}:min-keyint={keyint}"
                                                               ":scenecut=0"})
    return damage_packets(path, damaged)


def damage_packets(path, damaged) -> Path:
    """Overwrite with zeros the video packets of ``path`` at the decoding-order places ``damaged`` (none of them a
    keyframe, which would take its whole group, unless every frame is one: MJPEG)."""
    import av

    path = Path(path)
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]
    intra = all(key for _, _, key in packets)
    for k in damaged:
        at, size, key = packets[k]
        assert intra or not key, "a keyframe would take its whole group"
        data[at:at + size] = bytes(size)
    path.write_bytes(bytes(data))
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _find_box(data: bytes, path: list, start: int = 0, end: int | None = None):
    """(payload start, end) of the first box at ``path`` (box types) inside ``data``; the sample description boxes'
    own fields are stepped over."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == path[0]:
            if len(path) == 1:
                return pos + 8, pos + size
            skip = {b"meta": 4, b"stsd": 8, b"hvc1": 78, b"hev1": 78}.get(kind, 0)
            found = _find_box(data, path[1:], pos + 8 + skip, pos + size)
            if found:
                return found
        pos += size
    return None


def _hevc_still(rgb: np.ndarray) -> tuple[bytes, bytes]:
    """One picture coded as HEVC: its ``hvcC`` record and its sample (length-prefixed units), from a 1-frame MP4."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx265", rate=1, options={"x265-params": "log-level=error:keyint=1"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    data = buf.getvalue()
    entry = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]
    hs, he = _find_box(data, entry + [b"hev1", b"hvcC"]) or _find_box(data, entry + [b"hvc1", b"hvcC"])
    ms, me = _find_box(data, [b"mdat"])
    return data[hs:he], data[ms:me]


def write_heif(path, rgb: np.ndarray, tile: int | None = None, quarter_turns: int = 0, icc: bytes | None = None,
               icc_on: str = "primary") -> Path:
    """uint8 [H, W, 3] (even sizes) as a HEIF photo, written box by box after ISO/IEC 23008-12: one HEVC image, or,
    with ``tile``, a grid of ``tile`` x ``tile`` HEVC tiles (the last row and column padded; the grid's size crops
    them) as an iPhone writes its HEIC (512-pixel tiles, the grid in ``idat``, the tiles hidden). ``quarter_turns``:
    an ``irot`` property on the primary image (anticlockwise, as shown). ``icc``: an ICC profile in a ``colr``
    property (type ``prof``) of the primary image, or of each tile (``icc_on="tiles"``)."""
    h, w = rgb.shape[:2]
    if tile is None:
        tiles = [rgb]
        rows = columns = 1
    else:
        rows, columns = -(-h // tile), -(-w // tile)
        padded = np.zeros((rows * tile, columns * tile, 3), np.uint8)
        padded[:h, :w] = rgb
        tiles = [padded[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] for r in range(rows) for c in range(columns)]
    coded = [_hevc_still(t) for t in tiles]
    n = len(tiles)
    primary = 1 if tile is None else n + 1
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12s", 0, b"pict", b"\0" * 12) + b"\0")
    pitm = _full_box(b"pitm", 0, 0, struct.pack(">H", primary))
    infes = [_full_box(b"infe", 2, 0 if tile is None else 1, struct.pack(">HH4s", i + 1, 0, b"hvc1") + b"\0")
             for i in range(n)]  # tiles of a grid are hidden (flag 1)
    if tile is not None:
        infes.append(_full_box(b"infe", 2, 0, struct.pack(">HH4s", primary, 0, b"grid") + b"\0"))
    iinf = _full_box(b"iinf", 0, 0, struct.pack(">H", len(infes)) + b"".join(infes))
    props, assoc = [], []
    for i, (hvcc, _) in enumerate(coded):
        size = struct.pack(">II", tiles[i].shape[1], tiles[i].shape[0])
        props += [_box(b"hvcC", hvcc), _full_box(b"ispe", 0, 0, size)]
        assoc.append((i + 1, [len(props) - 1, len(props)]))
    if tile is not None:
        props.append(_full_box(b"ispe", 0, 0, struct.pack(">II", w, h)))
        assoc.append((primary, [len(props)]))
    if quarter_turns:
        props.append(_box(b"irot", bytes([quarter_turns & 3])))
        assoc[-1][1].append(len(props))
    if icc is not None:
        props.append(_box(b"colr", b"prof" + icc))
        for item, ps in (assoc[:n] if icc_on == "tiles" else assoc[-1:]):
            ps.append(len(props))
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">I", len(assoc)) + b"".join(
        struct.pack(">HB", item, len(ps)) + bytes(p | (0x80 if k == 0 else 0) for k, p in enumerate(ps))
        for item, ps in assoc))
    iprp = _box(b"iprp", _box(b"ipco", b"".join(props)) + ipma)
    iref = b"" if tile is None else _full_box(b"iref", 0, 0, _box(b"dimg", struct.pack(">HH", primary, n) + b"".join(
        struct.pack(">H", i + 1) for i in range(n))))
    grid = b"" if tile is None else struct.pack(">BBBBHH", 0, 0, rows - 1, columns - 1, w, h)
    ftyp = _box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")

    def meta(mdat_at: int) -> bytes:  # iloc v1: 4-byte offsets and lengths; tiles in mdat, the grid in idat
        entries, at = [], mdat_at
        for i, (_, sample) in enumerate(coded):
            entries.append(struct.pack(">HHHHII", i + 1, 0, 0, 1, at, len(sample)))
            at += len(sample)
        if tile is not None:
            entries.append(struct.pack(">HHHHII", primary, 1, 0, 1, 0, len(grid)))
        iloc = _full_box(b"iloc", 1, 0, struct.pack(">BBH", 0x44, 0, len(entries)) + b"".join(entries))
        idat = _box(b"idat", grid) if grid else b""
        return _full_box(b"meta", 0, 0, hdlr + pitm + iloc + iinf + iref + iprp + idat)

    head = ftyp + meta(0)
    head = ftyp + meta(len(head) + 8)
    Path(path).write_bytes(head + _box(b"mdat", b"".join(sample for _, sample in coded)))
    return Path(path)


def motion_photo_xmp(video_length: int, after_video: int = 0, flag: int | None = 1) -> bytes:
    """Google's Motion Photo XMP as a Pixel writes it: ``GCamera:MotionPhoto`` (``flag``; None leaves it out) and a
    ``Container:Directory`` of the primary image and the video (``video_length`` bytes), then, when ``after_video``
    is given, a gain map of that many bytes after it."""
    gain_map = (f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="GainMap" '
                f'Item:Length="{after_video}"/></rdf:li>') if after_video else ""
    flagged = f'GCamera:MotionPhoto="{flag}" GCamera:MotionPhotoVersion="1"' if flag is not None else ""
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
            'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
            f'{flagged} GCamera:MotionPhotoPresentationTimestampUs="1000000"><Container:Directory><rdf:Seq>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" '
            'Item:Length="0" Item:Padding="0"/></rdf:li>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" '
            f'Item:Length="{video_length}" Item:Padding="0"/></rdf:li>{gain_map}'
            '</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>').encode()


def micro_video_xmp(offset: int) -> bytes:
    """The XMP of an older Google motion photo (``MVIMG_*.jpg``): the video ``offset`` bytes before the end."""
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/">'
            '<GCamera:MicroVideo>1</GCamera:MicroVideo><GCamera:MicroVideoVersion>1</GCamera:MicroVideoVersion>'
            f'<GCamera:MicroVideoOffset>{offset}</GCamera:MicroVideoOffset>'
            '</rdf:Description></rdf:RDF></x:xmpmeta>').encode()


def with_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """``jpeg`` with an XMP APP1 segment after its first segment (JFIF), where cameras write it."""
    body = b"http://ns.adobe.com/xap/1.0/\0" + xmp
    first = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:first] + b"\xff\xe1" + struct.pack(">H", 2 + len(body)) + body + jpeg[first:]


def samsung_trailer(video: bytes) -> bytes:
    """A Galaxy's SEF trailer, written after a photo's image: an ``Image_UTC_Data`` record, the video as the
    ``MotionPhoto_Data`` record, and the directory (each record's marker, distance back from ``SEFH`` and size), its
    size and ``SEFT``."""
    records = [(0x0A01, b"Image_UTC_Data", b"1700000000000"), (0x0A30, b"MotionPhoto_Data", video)]
    body, entries = b"", []
    for marker, name, data in records:
        record = struct.pack("<HHI", 0, marker, len(name)) + name + data
        entries.append((marker, len(body), len(record)))
        body += record
    directory = b"SEFH" + struct.pack("<II", 106, len(entries)) + b"".join(
        struct.pack("<HHII", 0, marker, len(body) - at, size) for marker, at, size in entries)
    return body + directory + struct.pack("<I", len(directory)) + b"SEFT"


def write_motion_photo(path, photo: np.ndarray, frames: np.ndarray, layout: str = "google", fps: int = 10,
                       tags: dict | None = None) -> Path:
    """A phone's motion photo: ``photo`` (uint8 [H, W, 3]) and, inside the same file, ``frames`` as an H.264 MP4.

    layout: ``"google"`` (a Pixel's JPEG: the XMP directory, the MP4 appended), ``"google-gainmap"`` (an Ultra HDR
    Pixel's: a gain map JPEG after the MP4, listed after it), ``"microvideo"`` (an ``MVIMG``'s offset),
    ``"samsung"`` (a Galaxy's SEF trailer), ``"samsung-xmp"`` (a newer Galaxy's: the trailer, and Google's XMP
    too, whose lengths do not place the video: the trailer's directory follows it), ``"heic"`` (the MP4 appended
    to a HEIF photo) or ``"heic-mpvd"`` (a Galaxy's HEIC: the MP4 in an ``mpvd`` box). tags: the MP4's metadata
    (:func:`write_video`)."""
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "v.mp4", frames, fps=fps, tags=tags).read_bytes()
        if layout.startswith("heic"):
            image = write_heif(Path(tmp) / "p.heic", photo).read_bytes()
        else:
            image = write_jpeg(Path(tmp) / "p.jpg", photo).read_bytes()
    if layout == "google":
        data = with_xmp(image, motion_photo_xmp(len(video))) + video
    elif layout == "google-gainmap":
        gain_map = image  # a second JPEG stands in for the gain map
        data = with_xmp(image, motion_photo_xmp(len(video), after_video=len(gain_map))) + video + gain_map
    elif layout == "microvideo":
        data = with_xmp(image, micro_video_xmp(len(video))) + video
    elif layout == "samsung":
        data = image + samsung_trailer(video)
    elif layout == "samsung-xmp":
        data = with_xmp(image, motion_photo_xmp(len(video))) + samsung_trailer(video)
    elif layout == "heic":
        data = image + video
    elif layout == "heic-mpvd":
        data = image + _box(b"mpvd", video)
    else:
        raise ValueError(layout)
    path.write_bytes(data)
    return path


def _dav_date(t) -> int:
    """A DHAV chunk's date: the recorder's local time packed into 32 bits (FFmpeg's ``dhav`` demuxer)."""
    return t.second | t.minute << 6 | t.hour << 12 | t.day << 17 | t.month << 22 | (t.year - 2000) << 26


def write_dav(path, frames: np.ndarray, fps: int = 25, start=None, gop: int = 25, sound: bool = False,
              header: bool = False) -> Path:
    """uint8 [T, H, W, 3] frames as a Dahua recorder's export (``.dav``, as CCTV's NVRs and DVRs write it): H.264
    (no B-frames, headers before each keyframe) in DHAV chunks, each with the recorder's local date (``start``, a naive
    datetime: 2024-05-17 14:03:58 by default) and its millisecond; a keyframe's chunk says the size, codec and rate.
    ``sound``: G.711 A-law at 8 kHz in chunks of its own (a camera's microphone), a tone of 440 Hz. ``header``: the
    1024-byte ``DAHUA`` file header some exports begin with."""
    import datetime

    import av

    start = start or datetime.datetime(2024, 5, 17, 14, 3, 58)
    buf = io.BytesIO()
    packets = []
    with av.open(buf, "w", format="h264") as c:
        stream = c.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast", "g": str(gop), "bf": "0",
                          "x264-params": "repeat-headers=1"}
        for rgb in frames:
            packets += [(bytes(p), p.is_keyframe) for p in stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24"))]
        packets += [(bytes(p), p.is_keyframe) for p in stream.encode()]
    sound_chunks = []
    if sound:
        alaw = av.CodecContext.create("pcm_alaw", "w")
        alaw.sample_rate, alaw.format, alaw.layout = 8000, "s16", "mono"
        t = np.arange(8000 * len(frames) // fps) / 8000
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for k in range(0, len(tone), 320):  # 40 ms a chunk
            samples = av.AudioFrame.from_ndarray(tone[None, k:k + 320], format="s16", layout="mono")
            samples.sample_rate = 8000
            sound_chunks.append((k * 1000 // 8000, b"".join(bytes(p) for p in alaw.encode(samples))))
    out = bytearray(b"DAHUA" + bytes(0x400 - 5) if header else b"")
    height, width = frames.shape[1], frames.shape[2]

    def chunk(kind: int, number: int, ms: int, ext: bytes, data: bytes) -> bytes:
        length = 24 + len(ext) + len(data) + 8  # header, its extension, the data, the trailer
        date = _dav_date(start + datetime.timedelta(milliseconds=ms))
        head = b"DHAV" + bytes([kind, 0, 0, 0]) + struct.pack("<III", number, length, date)
        return head + struct.pack("<HBB", ms % 65536, len(ext), 0) + ext + data + b"dhav" + struct.pack("<I", length)

    sounds = iter(sound_chunks)
    pending = next(sounds, None)
    for n, (data, key) in enumerate(packets):
        ms = n * 1000 // fps
        while pending is not None and pending[0] <= ms:  # the sound muxed beside the pictures of its time
            out += chunk(0xF0, n, pending[0], bytes([0x83, 1, 0x0E, 0]), pending[1])  # mono, A-law, 8 kHz
            pending = next(sounds, None)
        # a keyframe's chunk: its size (0x82: width and height) and its codec and rate (0x81: H.264, fps)
        ext = bytes([0x82, 0, 0, 0]) + struct.pack("<HH", width, height) + bytes([0x81, 0, 0x2, fps]) if key else b""
        out += chunk(0xFD if key else 0xFC, n, ms, ext, data)
    Path(path).write_bytes(bytes(out))
    return Path(path)
