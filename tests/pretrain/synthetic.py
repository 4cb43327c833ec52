"""A small learnable video-text set for pretraining tests and the benchmark: clips of distinct solid colours
captioned with their colour, written with PyAV and packed into shards by ``vtr shards make``'s code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COLOURS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
    "purple": (140, 40, 180), "orange": (240, 140, 20), "white": (240, 240, 240), "black": (15, 15, 15),
}


def write_colour_clips(folder, num_clips: int = 8, num_frames: int = 12, height: int = 48, width: int = 64,
                       seed: int = 0, caption: str = "A {} video.") -> Path:
    """``folder/videos/*.mp4`` + ``folder/captions.jsonl``: clip i is a solid colour (cycling over 8) with mild
    noise, captioned ``caption`` with the colour in it ("a <colour> video")."""
    from tests.videos import write_video

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    with open(folder / "captions.jsonl", "w") as f:
        for i in range(num_clips):
            name = names[i % len(names)]
            frames = np.empty((num_frames, height, width, 3), np.uint8)
            frames[:] = COLOURS[name]
            noise = rng.integers(-12, 13, frames.shape)
            frames = np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)
            write_video(folder / "videos" / f"clip{i:04d}.mp4", frames)
            f.write(json.dumps({"video": f"clip{i:04d}.mp4", "caption": caption.format(name)}) + "\n")
    return folder


def colour_shards(folder, num_clips: int = 8, per_shard: int = 4, **kwargs) -> Path:
    """Write the colour clips and shard them into ``folder/shards``; returns that folder."""
    from vtr.data.shards import make_shards

    folder = Path(folder)
    write_colour_clips(folder, num_clips, **kwargs)
    make_shards(folder / "videos", folder / "captions.jsonl", folder / "shards", per_shard=per_shard)
    return folder / "shards"
