"""ICC colour profiles written tag by tag after ICC.1:2010, as phones, cameras and editors embed them in photos: RGB
display profiles of three colorants and three tone curves (``curv`` or ``para``), in version 2 or 4."""

from __future__ import annotations

import struct

import numpy as np

#: Colorants (D50 XYZ of red, green, blue) as the common profiles write them: Apple's Display P3, Adobe RGB (1998),
#: sRGB (HP's and lcms's IEC 61966-2.1)
DISPLAY_P3 = ((0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073))
ADOBE_RGB = ((0.609741, 0.311111, 0.019470), (0.205276, 0.625671, 0.060867), (0.149185, 0.063217, 0.744568))
SRGB = ((0.436066, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076), (0.143066, 0.060608, 0.714096))
#: sRGB's curve as ``para`` function 3 writes it (Display P3 uses the same)
SRGB_PARA = ("para", 3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
ADOBE_GAMMA = ("gamma", 563 / 256)


def _s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", int(round(v * 65536))) for v in values)


def _curve(curve) -> bytes:
    kind = curve[0]
    if kind == "gamma":  # curv with one entry: a power, u8Fixed8
        return b"curv" + bytes(4) + struct.pack(">IH", 1, int(round(curve[1] * 256))) + bytes(2)
    if kind == "identity":
        return b"curv" + bytes(4) + struct.pack(">I", 0)
    if kind == "table":  # sRGB sampled at n points, as HP's sRGB profile writes it (1024)
        x = np.linspace(0.0, 1.0, curve[1])
        y = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
        body = struct.pack(">I", len(x)) + np.round(y * 65535).astype(">u2").tobytes()
        return b"curv" + bytes(4) + body + bytes(-len(body) % 4)
    if kind == "para":
        _, function, params = curve
        return b"para" + bytes(4) + struct.pack(">HH", function, 0) + _s15(*params)
    raise ValueError(kind)


def _desc(text: str, version: int) -> bytes:
    if version >= 4:
        utf16 = text.encode("utf-16-be")
        return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 2 + 1 + 67)


def rgb_profile(colorants=DISPLAY_P3, curve=SRGB_PARA, version: int = 4, description: str = "Display P3",
                space: bytes = b"RGB ", pcs: bytes = b"XYZ ", padding: int = 0) -> bytes:
    """An RGB display ("mntr") profile's bytes: ``colorants`` as its ``rXYZ``, ``gXYZ``, ``bXYZ`` and ``curve`` as
    its three curves, which share their data as most profiles' do. ``curve``: ``("gamma", g)``, ``("identity",)``,
    ``("table", n)`` (sRGB's curve at n points) or ``("para", function, params)``. ``padding``: bytes of a private
    tag, to make a profile that a JPEG must split over several segments."""
    tags = [(b"desc", _desc(description, version)), (b"wtpt", b"XYZ " + bytes(4) + _s15(0.9642, 1.0, 0.8249))]
    tags += [(sig, b"XYZ " + bytes(4) + _s15(*xyz)) for sig, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants)]
    curve_data = _curve(curve)
    if padding:
        tags.append((b"zzzz", b"zzzz" + bytes(4) + bytes(padding)))
    table_size = 4 + 12 * (len(tags) + 3)
    at = 128 + table_size
    entries, blobs = [], []
    for sig, data in tags:
        entries.append(struct.pack(">4sII", sig, at, len(data)))
        blobs.append(data + bytes(-len(data) % 4))
        at += len(blobs[-1])
    for sig in (b"rTRC", b"gTRC", b"bTRC"):  # one curve, three tags
        entries.append(struct.pack(">4sII", sig, at, len(curve_data)))
    blobs.append(curve_data)
    body = struct.pack(">I", len(entries)) + b"".join(entries) + b"".join(blobs)
    size = 128 + len(body)
    header = struct.pack(">I4sI4s4s4s12s4s4sI4s4sQI", size, b"lcms", (version << 24) | 0x200000 * (version < 4)
                         | 0x300000 * (version >= 4), b"mntr", space, pcs, bytes(12), b"acsp", b"APPL", 0, b"none",
                         b"none", 0, 0) + _s15(0.9642, 1.0, 0.8249) + b"vtr " + bytes(16 + 28)
    assert len(header) == 128
    return header + body
