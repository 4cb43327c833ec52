"""A photo's ICC colour profile, and its pixels converted to the sRGB a viewer shows them in. numpy only.

A photo's numbers are colours only through the profile it carries. iPhones (since the 7) and many Android phones
store their photos in Display P3, a wider gamut than sRGB, with its ICC profile in the file; cameras set to Adobe RGB
and editors embed theirs. A viewer or a browser converts such a photo to the screen's colours; read as sRGB, as
FFmpeg gives it, it is dull (sRGB's red 255,0,0 is stored as 234,51,35 in Display P3). A profile of the kind these
are (RGB, a matrix and three tone curves: ICC.1 F.3) is applied here, with the relative colorimetric intent and
out-of-gamut colours clipped, as browsers apply it (:func:`srgb_transform`, :func:`to_srgb`). sRGB itself, within a
level, is left as is (browsers, too, take a profile so close as sRGB); a profile of another kind (tables only, grey,
CMYK) or one that cannot be read is taken to be sRGB, as before. Where the profile is found in each format:
:func:`vtr.data.image.embedded_icc`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: The profile connection space's white (ICC.1: D50), and Bradford's cone response matrix, which adapts a colour
#: from one white to another as ICC profiles' colorants are adapted to D50.
D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
#: Where an 8-bit channel is looked up after the matrix: steps fine enough for sRGB's steepest part (12.92 near
#: black) to put every value within a tenth of a level of the exact one
_ENCODE_STEPS = 16384
_ROWS_PIXELS = 1 << 20  # pixels converted at a time: a 12-megapixel photo's temporaries stay ~40 MB


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def colorants(primaries, white) -> np.ndarray:
    """The 3x3 matrix (columns red, green, blue) from linear RGB to D50 XYZ of an RGB space given by its primaries'
    and white's xy chromaticities, adapted to D50 with Bradford as an ICC profile's colorants are."""
    white_xyz = xy_to_xyz(*white)
    rgb = np.stack([xy_to_xyz(*p) for p in primaries], axis=1)
    to_xyz = rgb * np.linalg.solve(rgb, white_xyz)  # each primary scaled so that 1,1,1 is the white
    cone_src, cone_dst = BRADFORD @ white_xyz, BRADFORD @ D50
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone_dst / cone_src) @ BRADFORD
    return adapt @ to_xyz


#: sRGB (IEC 61966-2-1): BT.709's primaries, D65
SRGB_COLORANTS = colorants([(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], (0.3127, 0.3290))


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear light."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] → sRGB-encoded values."""
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(np.maximum(v, 0.0031308), 1 / 2.4) - 0.055)


_ENCODE = np.round(srgb_encode(np.linspace(0.0, 1.0, _ENCODE_STEPS)) * 255).astype(np.uint8)


@dataclass(frozen=True)
class RgbProfile:
    """An RGB matrix/TRC profile: its colorants (linear RGB → D50 XYZ, columns red, green, blue) and the linear
    value of each of an 8-bit channel's 256 codes through its tone curve (``curves[channel, code]``)."""

    matrix: np.ndarray
    curves: np.ndarray
    description: str = ""


def _s15(data: bytes, at: int, n: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack(f">{n}i", data[at:at + 4 * n])]


def _curve(data: bytes, at: int, size: int) -> np.ndarray | None:
    """A tone curve (``curv`` or ``para``, ICC.1 10.6 and 10.18) as the linear values of the 256 8-bit codes."""
    x = np.arange(256) / 255.0
    kind = data[at:at + 4]
    if kind == b"curv":
        n = struct.unpack(">I", data[at + 8:at + 12])[0]
        if n == 0:
            return x
        if n == 1:
            return x ** (struct.unpack(">H", data[at + 12:at + 14])[0] / 256.0)
        if 12 + 2 * n > size:
            return None
        table = np.frombuffer(data, ">u2", n, at + 12) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if kind == b"para":
        kind_of = struct.unpack(">H", data[at + 8:at + 10])[0]
        counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if kind_of not in counts or 12 + 4 * counts[kind_of] > size:
            return None
        p = _s15(data, at + 12, counts[kind_of]) + [0.0] * 6
        g, a, b, c, d, e, f = p[:7]
        if kind_of == 0:
            return x ** g
        if kind_of in (1, 2):  # Y = (aX + b)^g (+ c) from X = -b/a on, else 0 (c)
            base = np.maximum(a * x + b, 0.0)
            return np.where(x >= (-b / a if a else 0.0), base ** g + (c if kind_of == 2 else 0.0),
                            c if kind_of == 2 else 0.0)
        if kind_of == 3:
            e = f = 0.0
        return np.where(x >= d, np.maximum(a * x + b, 0.0) ** g + e, c * x + f)
    return None


def _description(data: bytes, at: int, size: int) -> str:
    """A profile's description (``desc`` of ICC v2, ``mluc`` of v4): its first string, for messages and tests."""
    try:
        if data[at:at + 4] == b"desc":
            n = struct.unpack(">I", data[at + 8:at + 12])[0]
            return data[at + 12:at + 12 + n].split(b"\0")[0].decode("latin-1")
        if data[at:at + 4] == b"mluc" and size >= 28:
            length, offset = struct.unpack(">II", data[at + 20:at + 28])
            return data[at + offset:at + offset + length].decode("utf-16-be", "replace")
    except (struct.error, ValueError):
        pass
    return ""


def parse(profile: bytes) -> RgbProfile | None:
    """An ICC profile's bytes as an :class:`RgbProfile`; None when it is not an RGB matrix/TRC profile (a profile of
    tables only, grey, CMYK, Lab) or cannot be read."""
    if len(profile) < 132 or profile[36:40] != b"acsp" or profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
        return None
    count = struct.unpack(">I", profile[128:132])[0]
    tags = {}
    for i in range(min(count, (len(profile) - 132) // 12)):
        sig, at, size = struct.unpack(">4sII", profile[132 + 12 * i:144 + 12 * i])
        if at + size <= len(profile) and size >= 12:
            tags.setdefault(sig, (at, size))
    needed = [b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"]
    if not all(t in tags for t in needed):
        return None
    try:
        columns = []
        for t in needed[:3]:
            at, size = tags[t]
            if profile[at:at + 4] != b"XYZ " or size < 20:
                return None
            columns.append(_s15(profile, at + 8, 3))
        curves = [_curve(profile, *tags[t]) for t in needed[3:]]
    except (struct.error, ValueError):
        return None
    matrix = np.array(columns).T
    if any(c is None or not np.all(np.isfinite(c)) for c in curves) or abs(np.linalg.det(matrix)) < 1e-6:
        return None
    description = _description(profile, *tags[b"desc"]) if b"desc" in tags else ""
    return RgbProfile(matrix, np.clip(np.stack(curves), 0.0, None), description)


@dataclass(frozen=True)
class Transform:
    """From a profile's 8-bit RGB to sRGB: each channel's codes to linear light, a 3x3 matrix, sRGB's encoding."""

    curves: np.ndarray  # float32 [3, 256]
    matrix: np.ndarray  # float32 [3, 3]: linear source RGB → linear sRGB

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return to_srgb(rgb, self)


#: Every 16th level and 255 of each channel: the colours a profile must leave within a level to be taken as sRGB
_PROBE = np.stack(np.meshgrid(*[np.r_[0:256:16, 255]] * 3, indexing="ij"), -1).reshape(1, -1, 3).astype(np.uint8)


@lru_cache(maxsize=16)
def srgb_transform(profile: bytes | None) -> Transform | None:
    """What turns a photo carrying the ICC ``profile`` into sRGB; None when there is nothing to do: no profile, one
    that :func:`parse` does not take, or one that changes no colour by more than a level (sRGB, whichever way its
    profile writes it: HP's rounded colorants move pure green by one level, and browsers take it as sRGB)."""
    if not profile:
        return None
    parsed = parse(profile)
    if parsed is None:
        return None
    matrix = np.linalg.solve(SRGB_COLORANTS, parsed.matrix)
    transform = Transform(parsed.curves.astype(np.float32), matrix.astype(np.float32))
    moved = np.abs(to_srgb(_PROBE, transform).astype(np.int16) - _PROBE).max()
    return None if moved <= 1 else transform


def to_srgb(rgb: np.ndarray, transform: Transform) -> np.ndarray:
    """uint8 [..., H, W, 3] RGB in a profile's space → sRGB (a new array), a band of rows at a time."""
    out = np.empty_like(rgb)
    flat_in, flat_out = rgb.reshape(-1, 3), out.reshape(-1, 3)
    scale = np.float32(_ENCODE_STEPS - 1)
    matrix = transform.matrix.T * scale  # applied to rows of pixels, and scaled to the encoding table's steps
    for start in range(0, len(flat_in), _ROWS_PIXELS):
        block = flat_in[start:start + _ROWS_PIXELS]
        linear = np.stack([transform.curves[c][block[:, c]] for c in range(3)], axis=1)
        steps = linear @ matrix
        np.clip(steps, 0.0, scale, out=steps)
        steps += 0.5
        flat_out[start:start + _ROWS_PIXELS] = _ENCODE[steps.astype(np.int32)]
    return out


__all__ = ["RgbProfile", "Transform", "parse", "srgb_transform", "to_srgb", "colorants", "SRGB_COLORANTS"]
