"""The shots policy in one decoding pass (index.policies, "one pass"; index.decode._shots_in_one_pass): the frames
of a 4-frames-a-second grid give both cut detection and every window's frames."""

import os

import numpy as np
import pytest
import torch

from index.decode import DecodeSettings, decode_chunk, decoder_size, encode_jpeg, thumbnail_rgb
from index.policies import (DETECT_FPS, detection_frames, grid_fps, grid_frames, nearest_on_grid,
                            plan_chunk_windows)
from index.windows import Window, window_frame_indices
from tests.index.test_policies import _b_frame_video, shot_video
from vtr.data.video import Clock, open_video


def test_the_grid_is_the_frames_full_cut_detection_takes(tmp_path):
    path = _b_frame_video(tmp_path / "bframes.mp4")
    with open_video(path, backend="pyav") as r:
        clock = r.clock()
        for start, end in ((0.0, 12.0), (3.3, 9.0)):
            times, _ = detection_frames(str(path), start, end, cheap=False)
            grid = grid_frames(clock, start, end)
            np.testing.assert_allclose([clock.time_of(i) for i in grid], times, atol=1e-6)
    # a stream slower than the grid: every frame; a variable rate: the first frame at or after each step
    assert grid_frames(Clock(2.0, 20), 0.0, 10.0) == list(range(20))
    vfr = Clock.from_times(10.0, 6, [0.0, 0.1, 0.2, 1.0, 1.05, 1.3], end=2.0)
    assert grid_frames(vfr, 0.0, 2.0) == [0, 3, 5]  # 0.0; 0.25 -> 1.0 (also the steps to 1.0); 1.25 -> 1.3
    assert grid_frames(vfr, 0.5, 0.9) == [2]  # nothing starts in the span: the frame on screen at its start


def test_a_windows_frames_are_the_nearest_grid_frames_inside_it():
    clock = Clock(25.0, 500)
    grid = grid_frames(clock, 0.0, 20.0)  # every 0.25 s: frames 0, 6 or 7, 12 or 13, ...
    window = Window(5.0, 9.0)
    wanted = window_frame_indices(window, clock, 8)  # 5.24 s, 5.76 s, ... 8.76 s
    got = nearest_on_grid(wanted, window, grid, clock)
    for i, g in zip(wanted, got):
        assert g in grid and 5.0 <= clock.time_of(g) < 9.0
        assert abs(clock.time_of(g) - clock.time_of(i)) <= 0.5 / DETECT_FPS + 1e-6
    # a frame wanted next to a window's start takes a grid frame inside the window, not the nearer one before it
    assert nearest_on_grid([128], Window(5.1, 9.0), grid, clock) == [132]  # 5.12 s: 5.28 s, not 5.0 s
    # a window shorter than a grid step: the nearest grid frame anywhere
    assert nearest_on_grid([126], Window(5.02, 5.2), grid, clock) == [125]


def _counting_reader(monkeypatch):
    from vtr.data import video

    readers = []
    real = video.open_video

    def opened(*a, **k):
        readers.append(real(*a, **k))
        return readers[-1]

    monkeypatch.setattr(video, "open_video", opened)
    return readers


@pytest.mark.parametrize("window_s", [4.0, 1.0])  # a grid of 4 frames a second; of 8 (cut detection takes half)
def test_one_pass_decodes_each_frame_once_and_gives_the_grid_frames(tmp_path, monkeypatch, window_s):
    from index import policies

    path = str(_b_frame_video(tmp_path / "bframes.mp4"))  # 12 s at 25 fps, cuts at 3.0 and 7.5 s, B-frames
    settings = DecodeSettings(num_frames=4, img_size=32, window_s=window_s, window_policy="shots")
    readers = _counting_reader(monkeypatch)
    monkeypatch.setattr(policies, "detection_frames", lambda *a, **k: pytest.fail("a second decoding pass"))
    one = decode_chunk(path, 0, settings)
    assert len(readers) == 1 and 0 < readers[0].frames_decoded <= 300  # no frame decoded twice
    monkeypatch.undo()
    two = decode_chunk(path, 0, DecodeSettings(**{**settings.__dict__, "one_pass": False}))
    # the same shots, their cuts on the grid (the cheap pass finds a cut at the first reference frame after it)
    assert len(one.windows) == len(two.windows) and one.n_windows == -1 and one.n_chunks == 1
    assert np.abs(np.subtract(one.windows, two.windows)).max() <= 1.0 / DETECT_FPS
    starts = [a for a, _ in one.windows]
    assert all(min(abs(a - c) for a in starts) <= 0.05 for c in (3.0, 7.5)) and one.windows[-1][1] > 11.9
    with open_video(path, backend="pyav") as r:
        clock = r.clock()
        grid = grid_frames(clock, 0.0, 12.0, grid_fps(4, window_s))
        assert len(grid) == 12 * (4 if window_s == 4.0 else 8)
        size = decoder_size(r.width, r.height, settings.img_size)
        pre = settings.preprocess
        for k, (a, b) in enumerate(one.windows):
            window = Window(a, b)
            idx = nearest_on_grid(window_frame_indices(window, clock, 4), window, grid, clock)
            want = pre.resize(r.get_frames(idx, size=size).permute(0, 3, 1, 2).contiguous()).numpy()
            np.testing.assert_array_equal(one.frames[k], want)
            # the thumbnail: the window's middle frame, as encode_jpeg makes it of the decoded frame
            middle = r.get_frames([idx[len(idx) // 2]], size=size)[0].numpy()
            assert _jpeg_diff(one.thumbnails[k], encode_jpeg(middle)) < 2.0
    # the two passes' frames are the exactly sampled ones: within a grid step of these
    assert np.abs(one.frames.astype(int) - two.frames.astype(int)).mean() < 12


def _jpeg_diff(a: bytes, b: bytes) -> float:
    from vtr.data.image import read_image

    x, y = read_image(a).astype(int), read_image(b).astype(int)
    assert x.shape == y.shape
    return float(np.abs(x - y).mean())


def test_a_thumbnail_from_the_small_copy_is_the_full_frames(tmp_path):
    y, x = np.mgrid[0:360, 0:640] / 40.0
    rgb = np.stack([128 + 100 * np.sin(x + y), 128 + 100 * np.cos(x * 0.7), 128 + 100 * np.sin(y * 1.3)], -1)
    rgb = rgb.astype(np.uint8)  # 640×360 waves, a frame's detail at a thumbnail's scale
    colors = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.9]])
    for aspect in (1.0, 4 / 3):
        small = thumbnail_rgb(rgb, pixel_aspect=aspect)
        full = encode_jpeg(rgb, pixel_aspect=aspect, colors=colors)
        assert _jpeg_diff(encode_jpeg(small, colors=colors), full) < 1.5  # 0.7-0.8; another frame: 7.8


def test_one_pass_spans_and_a_damaged_span_take_two_passes(tmp_path, monkeypatch):
    path = str(shot_video(tmp_path / "shots.mp4"))  # 30 s, cuts at 5 and 21 s
    settings = DecodeSettings(num_frames=4, img_size=32, window_s=8.0, chunk_windows=2, window_policy="shots")
    first, second = decode_chunk(path, 0, settings), decode_chunk(path, 1, settings)
    assert first.n_chunks == 2 and first.windows[-1][1] == second.windows[0][0] == 16.0
    assert second.windows[-1][1] == 30.0 and any(abs(a - 21.0) < 1e-6 for a, _ in second.windows)
    # a grid frame that does not decode: the span is read in two passes, which salvage what decodes
    from vtr.data.video import PyAVVideoReader
    from vtr.errors import VideoReadError

    def broken(self, indices, fn, size=None):
        raise VideoReadError(self.name, "damaged")

    monkeypatch.setattr(PyAVVideoReader, "map_frames", broken)
    again = decode_chunk(path, 1, settings)
    planned, _, _ = plan_chunk_windows(path, second.meta["duration"], "shots", 8.0, 4.0, 1, 2)
    assert again.windows == [(w.start, w.end) for w in planned] and len(again.frames) == len(planned)


def test_the_grid_is_denser_for_windows_that_sample_densely():
    assert grid_fps(8, 8.0) == DETECT_FPS == 4.0  # the defaults: a frame a second sampled, 4 on the grid
    assert grid_fps(8, 2.0) == 8.0 and grid_fps(16, 2.0) == 16.0 and grid_fps(8, 3.0) == 8.0  # the demo: 8 per 2 s
    clock = Clock(30.0, 900)  # a 4 fps grid's frames are among an 8 fps grid's: cut detection takes them
    assert set(grid_frames(clock, 0.0, 30.0)) <= set(grid_frames(clock, 0.0, 30.0, 8.0))
    clock = Clock(29.97, 900)
    assert set(grid_frames(clock, 1.3, 29.0)) <= set(grid_frames(clock, 1.3, 29.0, 12.0))


@pytest.mark.parametrize("base", [False, True])
def test_map_frames_hands_each_frame_to_fn_as_get_frames_gives_it(tmp_path, monkeypatch, base):
    """PyAV hands each frame to ``fn`` from its one decoding pass; the base reads a batch at a time (decord)."""
    from vtr.data import video

    path = _b_frame_video(tmp_path / "bframes.mp4")
    monkeypatch.setattr(video, "MAP_BATCH", 3)
    indices = [40, 3, 3, 250, 7, 41]  # any order, repeats
    with open_video(path, backend="pyav") as r:
        want = r.get_frames(indices, size=(48, 32)).numpy()
        seen = []

        def fn(rgb):
            seen.append(rgb.shape)
            return rgb.copy()

        mapped = (video.VideoReader.map_frames(r, indices, fn, size=(48, 32)) if base
                  else r.map_frames(indices, fn, size=(48, 32)))
        assert r._keep is None  # reads after it give frames again
        assert r.get_frames([3]).shape == (1, 48, 64, 3)
    np.testing.assert_array_equal(np.stack(mapped), want)
    assert set(seen) == {(32, 48, 3)} and len(seen) in (5, 6)  # a frame at a time (a repeat may be handed twice)
    with open_video(path, backend="pyav") as r, pytest.raises(IndexError):
        r.map_frames([300], fn)


RSS_PROBE = """
import sys
import torch
from index.decode import DecodeSettings, decode_chunk

def rss_mb():  # resident now (vtr's malloc settings hand nothing back: the heap's size shows)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 2**20

torch.set_num_threads(1)
settings = DecodeSettings(window_policy="shots")  # the defaults: 224², short side 448 from the decoder
decode_chunk(sys.argv[2], 0, settings)  # a small video: the fixed costs of a first decode
before = rss_mb()
decode_chunk(sys.argv[1], 0, settings)
print(rss_mb() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_one_pass_holds_the_copies_it_keeps_not_a_heap_of_freed_frames(tmp_path):
    """A span's copies (0.2 MB a grid frame) were allocated between the frees of each frame's temporaries (4 MB), so
    under vtr's malloc settings the heap grew by 4 MB a frame: 2.1 GB for a 128 s span of 720p. Here 144 grid frames
    of 720p: 47 MB stay resident after the span (482 MB then)."""
    import subprocess
    import sys

    from tests.videos import write_video

    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (6, 90, 160, 3), dtype=np.uint8), 6, axis=0)  # a cut every second
    frames = frames.repeat(8, axis=1).repeat(8, axis=2)  # 1280×720, 36 frames
    path = write_video(tmp_path / "720p.mp4", np.concatenate([frames] * 6), fps=6)  # 36 s at 6 fps: 144 on the grid
    small = write_video(tmp_path / "small.mp4", frames[:12, ::8, ::8], fps=6)
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(path), str(small)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) < 150, out.stdout  # MB the span's decoding left resident


def test_the_copies_grow_past_their_rows_when_a_decode_starts_over():
    """A PyAV read that gives up skipping part-way decodes every frame again, handing frames to ``keep`` twice."""
    from index.decode import _GridCopies

    settings = DecodeSettings(img_size=32)
    copies = _GridCopies(2, settings, pixel_aspect=1.0)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(5)]
    rows = [copies.keep(f) for f in frames] + [copies.keep(frames[0][:32])]  # the last: another size
    assert rows == list(range(6)) and len(copies.model) >= 6
    for k, f in enumerate(frames):
        want = settings.preprocess.resize(torch.from_numpy(f).permute(2, 0, 1).contiguous())
        np.testing.assert_array_equal(copies.model[k], want.numpy())
        np.testing.assert_array_equal(copies.thumbnail(k), thumbnail_rgb(f))
    assert copies.thumbnail(5).shape != copies.thumbnail(0).shape
