"""Threads during an index build: the encoder takes the process's cores (torch, which numba's scan follows), decode
workers decode with DecodeSettings.decoder_threads codec threads."""

import numpy as np
import torch

from index.decode import DecodeSettings
from index.embed import embed_chunks, usable_cores
from tests.index.media import make_video
from vtr.data.video import open_video


def test_pyav_codec_threads_follow_the_setting(tmp_path):
    video = make_video(tmp_path / "v.mp4", 2, seed=1)
    with open_video(video, backend="pyav", threads=1) as r:
        assert r._stream.thread_count == 1
        assert r.get_frames([0, 5]).shape == (2, 48, 64, 3)
    with open_video(video, backend="pyav") as r:  # 0: FFmpeg's automatic count, left as it was
        assert r._stream.thread_count != 1 or usable_cores() == 1


def test_embed_loop_sets_encoder_threads_and_restores_them(tmp_path, test_model, monkeypatch):
    video = make_video(tmp_path / "v.mp4", 4, seed=2)
    seen = []

    class Recorder:
        batch_size = 4

        def __call__(self, frames, groups=None):
            seen.append(torch.get_num_threads())
            return np.zeros((len(frames), test_model.cfg.embed_dim), np.float32)

    monkeypatch.setattr("index.embed.usable_cores", lambda: 1)  # differs from what the session runs with below
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pre = test_model.preprocess
        settings = DecodeSettings(num_frames=pre.num_frames, img_size=pre.img_size, window_s=1.0, stride_s=1.0)
        items = list(embed_chunks(test_model, [(0, str(video))], settings, batch_size=4, workers=0, progress=False,
                                  embedder=Recorder()))
        assert sum(len(i.windows) for i in items) == 4
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2  # restored after the loop
    finally:
        torch.set_num_threads(before)
