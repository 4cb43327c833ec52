"""Cutting a video into the time windows that get one vector each: the ``stride`` policy's plan, and the frames
sampled for any window (the ``shots`` policy, the default of a new index, plans its windows in
:mod:`index.policies`).

Defaults (documented in the README): each window spans ``window_s = 8`` seconds, consecutive windows start
``stride_s = 4`` seconds apart (so every moment lies in two windows), and ``num_frames`` frames (the model's
``preprocess.num_frames``, 8 for the released weights) are sampled in the middle of ``num_frames`` equal segments
of the window, exactly like evaluation samples a whole clip. Seconds are the player's: a variable-frame-rate video's
frames are placed by their presentation times (:meth:`vtr.data.video.VideoReader.clock`). A video no longer than
one window gets one window over its whole length; when the strides do not land on the end, a last window
``[duration - window_s, duration]`` covers the tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_WINDOW_S = 8.0
DEFAULT_STRIDE_S = 4.0


@dataclass(frozen=True)
class Window:
    start: float  # seconds
    end: float  # seconds


def plan_windows(duration: float, window_s: float = DEFAULT_WINDOW_S, stride_s: float = DEFAULT_STRIDE_S) -> list[Window]:
    """Windows ``[start, end)`` in seconds covering ``[0, duration]``; see the module docstring for the rule."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be positive, got {window_s}, {stride_s}")
    duration = max(float(duration), 0.0)
    if duration <= window_s + 1e-6:
        return [Window(0.0, round(duration, 6))]
    windows = []
    n = int(math.floor((duration - window_s) / stride_s + 1e-6)) + 1
    for k in range(n):
        start = k * stride_s
        windows.append(Window(round(start, 6), round(start + window_s, 6)))
    if windows[-1].end < duration - 1e-6:
        windows.append(Window(round(duration - window_s, 6), round(duration, 6)))
    return windows


def window_frame_indices(window: Window, clock, num_frames: int) -> list[int]:
    """The ``num_frames`` frame indices sampled for a window ("middle" sampling inside the frames shown during the
    window, on the video's :class:`~vtr.data.video.Clock`: its real clock when the frame rate varies)."""
    from vtr.data.video import sample_frame_indices

    lo, hi = clock.frame_range(window.start, window.end)
    return [lo + i for i in sample_frame_indices(num_frames, hi - lo, "middle")]
