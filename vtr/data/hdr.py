"""HDR video (PQ / HDR10 and HLG: what phones record, an iPhone by default) to the SDR frames the model and the app
expect.

FFmpeg's conversion to RGB applies the YUV matrix only: an HLG frame came out flat and dull (BT.2020 primaries read
as BT.709), a PQ frame dark and grey, and so did the thumbnails, previews and exports made from it, and the vectors
of the index. Here a frame whose transfer is PQ (SMPTE ST 2084) or HLG (ARIB STD-B67) is converted to 16-bit RGB by
swscale (the frame's own YUV matrix and range), then in numpy: to display light in nits (the PQ EOTF; HLG's inverse
OETF and its OOTF for a 1000-nit display, BT.2100), HDR reference white (203 nits, BT.2408) to SDR white, BT.2020
to BT.709 primaries (colours outside clipped), highlights above :data:`KNEE` of white rolled off smoothly towards
white (the hue kept: the curve scales each pixel's RGB by one factor), and BT.1886's gamma 2.4 back to an 8-bit
signal. An SDR frame never comes here: its conversion is unchanged, bit for bit.
"""

from __future__ import annotations

import numpy as np

#: FFmpeg's ``AVColorTransferCharacteristic`` values of HDR transfers.
PQ, HLG = 16, 18
#: ``AVColorPrimaries`` of BT.2020.
BT2020_PRIMARIES = 9

REFERENCE_WHITE_NITS = 203.0  # BT.2408: HDR reference white, shown as SDR's 100%
HLG_PEAK_NITS = 1000.0  # BT.2100's nominal display for HLG's OOTF (system gamma 1.2)
KNEE = 0.8  # of SDR white: below it light is kept as it is, above it rolled off to white
SDR_GAMMA = 2.4  # BT.1886

# BT.2020 -> BT.709, linear light (BT.2087)
BT2020_TO_BT709 = np.array([[1.660491, -0.587641, -0.072850],
                            [-0.124551, 1.132900, -0.008349],
                            [-0.018151, -0.100579, 1.118730]], np.float32)
BT2020_LUMA = np.array([0.2627, 0.6780, 0.0593], np.float32)
BT709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)

_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * np.log(4 * _HLG_A)


def is_hdr(frame) -> bool:
    """Whether a decoded PyAV frame is tagged PQ or HLG."""
    return getattr(frame, "color_trc", None) in (PQ, HLG)


def _pq_nits(signal: np.ndarray) -> np.ndarray:
    p = np.power(signal, 1 / _PQ_M2)
    return 10000.0 * np.power(np.maximum(p - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * p), 1 / _PQ_M1)


# The transfers' curves in tables over every 16-bit value (the HLG OOTF, which mixes the channels, is not)
_TABLE = np.linspace(0, 1, 65536, dtype=np.float64)
_PQ_TABLE = (_pq_nits(_TABLE) / REFERENCE_WHITE_NITS).astype(np.float32)
_HLG_SCENE_TABLE = np.where(_TABLE <= 0.5, _TABLE * _TABLE / 3,
                            (np.exp((_TABLE - _HLG_C) / _HLG_A) + _HLG_B) / 12).astype(np.float32)
# linear SDR light -> 8-bit signal: a table over this many steps of its square root in [0, 1], fine enough near
# black, where the signal is steep (a step of light there is a quarter of a code value)
_OUT_STEPS = 4096
_OUT_TABLE = np.round(255 * np.power(np.linspace(0, 1, _OUT_STEPS + 1), 2 / SDR_GAMMA)).astype(np.uint8)
# ... read at half steps, so that the integer part of the square root times 2 * _OUT_STEPS picks the nearest step
# (one entry more, for a light a rounding above 1)
_OUT_HALF_STEPS = np.append(_OUT_TABLE[(np.arange(2 * _OUT_STEPS + 1) + 1) // 2], np.uint8(255))
_ROWS = 32  # rows of a frame converted at a time: their seven float planes stay in a core's cache


def to_sdr(rgb16: np.ndarray, transfer: int, primaries: int = BT2020_PRIMARIES) -> np.ndarray:
    """uint8 [..., 3] SDR (BT.709, gamma 2.4) from uint16 [..., 3] non-linear RGB of a PQ or HLG frame. Channel by
    channel, in tables where it can, :data:`_ROWS` rows at a time through scratch planes (6.6 ms for an 854x480
    HLG frame on the AMX VM, where a pass over the whole frame per step took 10.2; bench/README.md, twenty-seventh
    round). HLG's OOTF gain (one factor a pixel) and the highlights' roll-off are one factor, applied last."""
    if transfer not in (PQ, HLG):
        raise ValueError(f"not an HDR transfer: {transfer}")
    shape = rgb16.shape
    rgb16 = rgb16.reshape(-1, shape[-2], 3) if rgb16.ndim >= 2 else rgb16.reshape(1, -1, 3)
    h, w = rgb16.shape[:2]
    out = np.empty(rgb16.shape, np.uint8)
    table = _PQ_TABLE if transfer == PQ else _HLG_SCENE_TABLE
    luma = BT2020_LUMA if primaries == BT2020_PRIMARIES else BT709_LUMA
    m = BT2020_TO_BT709 if primaries == BT2020_PRIMARIES else None
    planes = np.empty((7, min(h, _ROWS), w), np.float32)
    index = np.empty(planes.shape[1:], np.int32)
    for top in range(0, h, _ROWS):
        n = min(_ROWS, h - top)
        r, g, b, factor, t, u, v = (plane[:n] for plane in planes)
        for i, c in enumerate((r, g, b)):  # (mode "clip": a uint16 is always in the table; "raise" buffers)
            np.take(table, rgb16[top:top + n, :, i], out=c, mode="clip")
        if transfer == HLG:  # the OOTF's gain, from the scene luminance: system gamma 1.2
            np.multiply(r, luma[0], out=factor)
            factor += np.multiply(g, luma[1], out=t)
            factor += np.multiply(b, luma[2], out=t)
            np.maximum(factor, np.float32(1e-12), out=factor)
            np.power(factor, np.float32(0.2), out=factor)
            factor *= np.float32(HLG_PEAK_NITS / REFERENCE_WHITE_NITS)
        else:
            factor.fill(1)
        if m is not None:  # BT.2020 primaries to BT.709's: red into t, green into v, blue in place
            np.multiply(r, m[0, 0], out=t)
            t += np.multiply(g, m[0, 1], out=u)
            t += np.multiply(b, m[0, 2], out=u)
            np.multiply(r, m[1, 0], out=v)
            v += np.multiply(g, m[1, 1], out=u)
            v += np.multiply(b, m[1, 2], out=u)
            b *= m[2, 2]
            b += np.multiply(r, m[2, 0], out=u)
            b += np.multiply(g, m[2, 1], out=u)
            r, g, t, v = t, v, r, g
        for c in (r, g, b):
            np.maximum(c, 0, out=c)  # outside BT.709: clipped
        peak = np.maximum(np.maximum(r, g, out=t), b, out=t)
        peak *= factor
        over = peak > KNEE
        if over.any():  # rolled off towards white, each pixel's RGB by one factor (its hue kept)
            p = peak[over]
            factor[over] *= (KNEE + (1 - KNEE) * -np.expm1(-(p - KNEE) / (1 - KNEE))) / p
        factor *= np.float32(4 * _OUT_STEPS * _OUT_STEPS)  # the output table's half steps, before the square root
        for i, c in enumerate((r, g, b)):
            c *= factor
            np.sqrt(c, out=c)
            np.copyto(index[:n], c, casting="unsafe")
            np.take(_OUT_HALF_STEPS, index[:n], out=out[top:top + n, :, i], mode="clip")
    return out.reshape(shape)


def frame_to_rgb(frame, reformatter, width=None, height=None, interpolation=None) -> np.ndarray:
    """uint8 [H, W, 3] SDR RGB of an HDR PyAV frame, scaled to ``width`` x ``height`` by swscale on the way."""
    rgb16 = reformatter.reformat(frame, format="rgb48le", width=width, height=height,
                                 interpolation=interpolation).to_ndarray()
    return to_sdr(rgb16, frame.color_trc, frame.color_primaries)


__all__ = ["is_hdr", "to_sdr", "frame_to_rgb", "PQ", "HLG"]
