"""The colours players show a video in: the YUV matrix they take a stream to be in, where it says none, and the
conversion from what FFmpeg gives for such a stream to what they show. numpy only: the cut imports it without torch.
"""

from __future__ import annotations

import numpy as np

#: FFmpeg's codes of colour matrices (``AVColorSpace``), also of primaries and transfers where they share a value
#: (BT.709 1, unspecified 2, SMPTE 170M 6). A matrix above 14 is a reserved code, which says nothing.
RGB_MATRIX, BT709, UNSPECIFIED, SMPTE170M = 0, 1, 2, 6
LAST_MATRIX = 14


def said_matrix(code: int) -> int | None:
    """The YUV matrix a stream says (its ``colorspace`` code; :data:`RGB_MATRIX` for RGB pictures), None where it
    says none: unspecified, or a reserved code."""
    return None if code == UNSPECIFIED or code > LAST_MATRIX else code


def guessed_matrix(width: int, height: int) -> int:
    """The YUV matrix players take a stream of this stored size that says none to be in (mpv, Chromium): BT.709 from
    1280 wide or more than 576 lines up, BT.601 (SMPTE 170M) below."""
    return BT709 if (width or 0) >= 1280 or (height or 0) > 576 else SMPTE170M


def _rgb_of_yuv(kr: float, kb: float) -> np.ndarray:
    """The matrix that turns (Y, Cb, Cr) into (R, G, B) for a YUV matrix of luma weights ``kr``, ``kb``."""
    kg = 1.0 - kr - kb
    return np.array([[1.0, 0.0, 2 * (1 - kr)],
                     [1.0, -2 * kb * (1 - kb) / kg, -2 * kr * (1 - kr) / kg],
                     [1.0, 2 * (1 - kb), 0.0]])


#: RGB converted as BT.601 (FFmpeg's default for a stream that says no matrix) → as BT.709 from the same YUV.
BT601_TO_BT709 = _rgb_of_yuv(0.2126, 0.0722) @ np.linalg.inv(_rgb_of_yuv(0.299, 0.114))
