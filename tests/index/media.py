"""Generated collections for the index tests: small videos whose content is known second by second."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tests.videos import write_audio_only, write_covered_sound, write_vfr_video, write_video

FPS = 10
RED = (200, 30, 30)


def textured_frames(seconds: float, seed: int, fps: int = FPS, height: int = 48, width: int = 64,
                    red: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 [T, H, W, 3]: a seed-specific moving texture; frames inside ``red = (start, end)`` seconds are solid
    red (so a test encoder can recognise them)."""
    rng = np.random.default_rng(seed)
    t = int(round(seconds * fps))
    base = rng.integers(0, 256, (height, width, 3)).astype(np.int32)
    shift = rng.integers(1, 5)
    frames = np.stack([np.roll(base, shift * i, axis=1) for i in range(t)]).clip(0, 180).astype(np.uint8)
    if red is not None:
        lo, hi = int(round(red[0] * fps)), int(round(red[1] * fps))
        frames[lo:hi] = RED
    return frames


def make_video(path, seconds: float, seed: int = 0, red=None, fps: int = FPS, tags: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, textured_frames(seconds, seed, fps, red=red), fps=fps, tags=tags)


def make_vfr_video(path, rates: list[tuple[float, float]], seed: int = 0, red=None) -> Path:
    """A variable-frame-rate video: ``rates`` = [(seconds, fps), ...] in order; frames shown inside ``red =
    (start, end)`` seconds (of the real clock) are solid red."""
    times = np.concatenate([t0 + np.arange(round(sec * fps)) / fps
                            for t0, (sec, fps) in zip(np.cumsum([0] + [sec for sec, _ in rates[:-1]]), rates)])
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 181, (48, 64, 3)).astype(np.uint8)
    frames = np.stack([np.roll(base, 3 * i, axis=1) for i in range(len(times))])
    if red is not None:
        frames[(times >= red[0]) & (times < red[1])] = RED
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_vfr_video(path, frames, times)


def make_broken(folder) -> dict[str, str]:
    """Broken entries under ``folder``; returns {name: kind}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    good = make_video(folder / "_tmp_full.mp4", 6, seed=99)
    data = good.read_bytes()
    good.unlink()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    write_audio_only(folder / "audio_only.mp4")
    write_covered_sound(folder / "song.mp4")
    (folder / "x.mp4").mkdir()
    os.symlink(folder / "does_not_exist.mp4", folder / "dangling.mp4")
    return {"empty.mp4": "empty", "truncated.mp4": "truncated", "random.mp4": "random", "audio_only.mp4": "audio",
            "song.mp4": "audio", "dangling.mp4": "dangling"}
