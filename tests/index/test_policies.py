"""Window policies: cut detection, shot windows, near-duplicate reuse, and a build with --window-policy shots."""

import numpy as np
import pytest

from index.build import build_index, index_status
from index.decode import ChunkResult, DecodeSettings
from index.embed import WindowEmbedder, embed_chunks
from index.policies import (DETECT_FPS, DuplicateFilter, detection_frames, find_cuts, plan_chunk_windows,
                            plan_shot_windows)
from index.windows import Window, plan_windows
from tests.index.media import textured_frames
from tests.videos import write_video
from vtr.errors import VtrError

FPS = 10
SHOTS = [(0.0, 5.0, "pan"), (5.0, 21.0, "still"), (21.0, 30.0, "pan")]  # (start, end, kind)


def shot_frames(shots=SHOTS, fps=FPS):
    """uint8 [T, H, W, 3]: shots of distinct colour and texture; 'still' shots do not move."""
    parts = []
    for k, (a, b, kind) in enumerate(shots):
        f = textured_frames(b - a, seed=10 + k, fps=fps).astype(np.int32)
        f = (f // 3 + np.array([[80, 0, 0], [0, 90, 0], [0, 0, 100]][k % 3])).clip(0, 255).astype(np.uint8)
        if kind == "still":
            f[:] = f[0]
        parts.append(f)
    return np.concatenate(parts)


def shot_video(path, shots=SHOTS, fps=FPS):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, shot_frames(shots, fps), fps=fps)


def test_shot_windows_follow_cuts_and_cover_the_video():
    w = plan_shot_windows(30.0, [5.0, 20.0], window_s=8.0)
    assert w == [Window(0.0, 5.0), Window(5.0, 12.5), Window(12.5, 20.0), Window(20.0, 25.0), Window(25.0, 30.0)]
    # a 0.4 s shot joins the previous one; cuts outside the video are ignored
    assert plan_shot_windows(10.0, [4.0, 4.4, 12.0], window_s=8.0) == [Window(0.0, 4.4), Window(4.4, 10.0)]
    assert plan_shot_windows(10.0, [0.5], window_s=8.0) == [Window(0.0, 5.0), Window(5.0, 10.0)]
    assert plan_shot_windows(3.0, [], window_s=8.0) == [Window(0.0, 3.0)]
    # fewer windows than the stride policy on the same video
    assert len(plan_shot_windows(3600.0, list(np.arange(6.0, 3600.0, 6.0)), 8.0)) < len(plan_windows(3600.0)) * 0.7


def test_find_cuts_tells_cuts_from_motion():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (18, 32, 3))
    b = rng.integers(0, 128, (18, 32, 3))  # another shot, darker: only its colour histogram tells it from a pan
    pan = [np.roll(a, 2 * i, axis=1) for i in range(8)]  # a noise texture panning: every pixel step differs a lot
    frames = np.stack(pan + [b] * 4 + [np.full_like(a, 40)] * 3).astype(np.uint8)
    times = np.arange(len(frames)) / 4.0
    assert find_cuts(times, frames) == [2.0, 3.0]
    assert find_cuts(times[:1], frames[:1]) == []


def _b_frame_video(path, shots=((0.0, 3.0, "pan"), (3.0, 7.5, "still"), (7.5, 12.0, "pan")), fps=25):
    """:func:`shot_frames` through libx264's default-like settings: B-frames and the deblocking filter on (what
    ordinary footage has, unlike the tests' near-lossless ultrafast files)."""
    return write_video(path, shot_frames(shots, fps), fps=fps,
                       options={"crf": "23", "preset": "veryfast", "bframes": "3"})


def test_cheap_detection_skips_unreferenced_frames_and_finds_the_same_cuts(tmp_path, monkeypatch):
    from index import policies

    path = _b_frame_video(tmp_path / "bframes.mp4")
    decoded = []
    real = policies._decodable_frames

    def counting(container, stream):
        for frame in real(container, stream):
            decoded[-1] += 1
            yield frame

    monkeypatch.setattr(policies, "_decodable_frames", counting)
    found = {}
    for cheap in (False, True):
        decoded.append(0)
        times, frames = detection_frames(str(path), cheap=cheap)
        found[cheap] = (times, find_cuts(times, frames))
    full, cheap = decoded
    assert full >= 295 and cheap < 0.8 * full  # the unreferenced B-frames were skipped (b-pyramid keeps some)
    assert abs(len(found[True][0]) - len(found[False][0])) <= 1  # the grid still gets a frame every 1/fps s
    assert len(found[False][1]) == len(found[True][1]) == 2
    for a, b, t in zip(found[False][1], found[True][1], (3.0, 7.5)):
        assert abs(a - t) <= 1.0 / DETECT_FPS + 1e-6 and 0 <= b - a <= 3 / 25 + 1e-6  # a few frames later at most


def test_cheap_detection_decodes_in_full_when_skipping_loses_the_grid(tmp_path, monkeypatch):
    from index import policies

    slow = shot_video(tmp_path / "slow.mp4", fps=5)  # under 2 x DETECT_FPS: nothing is skipped
    assert np.array_equal(detection_frames(str(slow))[0], detection_frames(str(slow), cheap=False)[0])
    # a stream whose frames would all be skipped as unreferenced: the cheap pass comes back short, the span is
    # decoded again without skipping
    path = shot_video(tmp_path / "shots.mp4")
    calls = []
    real = policies._detection_pass

    def short_when_cheap(path, start, end, fps, size, cheap):
        calls.append(cheap)
        times, frames, expected, gap = real(path, start, end, fps, size, cheap)
        return (times[:3], frames[:3], expected, gap) if cheap else (times, frames, expected, gap)

    monkeypatch.setattr(policies, "_detection_pass", short_when_cheap)
    times, frames = detection_frames(str(path))
    assert calls == [True, False] and abs(len(times) - 30 * DETECT_FPS) <= 2 and len(find_cuts(times, frames)) == 2


def test_detection_on_a_real_video_finds_the_cuts(tmp_path):
    path = shot_video(tmp_path / "shots.mp4")
    times, frames = detection_frames(str(path))
    assert frames.shape[1:] == (18, 32, 3) and abs(len(times) - 30 * DETECT_FPS) <= 2
    cuts = find_cuts(times, frames)
    assert len(cuts) == 2 and all(abs(c - t) <= 1.0 / DETECT_FPS + 1e-6 for c, t in zip(cuts, (5.0, 21.0))), cuts
    windows, n, n_chunks = plan_chunk_windows(str(path), 30.0, "shots", 8.0, 4.0, 0, 16)
    assert n == -1 and n_chunks == 1
    assert not any(w.start < c < w.end for w in windows for c in cuts)  # no window straddles a cut
    assert windows[0].start == 0.0 and windows[-1].end == 30.0
    # in spans of 2 windows (16 s): chunk 1 starts at the span's start, decodes only its own span, same cut
    first, _, n_chunks = plan_chunk_windows(str(path), 30.0, "shots", 8.0, 4.0, 0, 2)
    second, _, _ = plan_chunk_windows(str(path), 30.0, "shots", 8.0, 4.0, 1, 2)
    assert n_chunks == 2 and first[-1].end == second[0].start == 16.0 and second[-1].end == 30.0
    assert any(abs(w.start - cuts[1]) < 1e-6 for w in second)
    times, _ = detection_frames(str(path), 16.0, 30.0)
    assert times[0] == pytest.approx(16.0, abs=0.11) and times[-1] < 30.0
    stride, n, n_chunks = plan_chunk_windows(str(path), 30.0, "stride", 8.0, 4.0, 1, 4)
    assert stride == plan_windows(30.0)[4:] and n == len(plan_windows(30.0)) and n_chunks == 2
    with pytest.raises(VtrError, match="window policy"):
        plan_chunk_windows(str(path), 30.0, "scenes", 8.0, 4.0, 0, 16)


@pytest.mark.parametrize("name", ["shots.ts", "shots.mp4"])
def test_detection_from_the_middle_starts_at_its_start(tmp_path, name):
    """A chunk's cut detection seeks to its start. MPEG-TS lands on any packet, after which the decoder waits for
    the next keyframe; MP4 seeks by decoding time (ahead of presentation by the B-frame delay). With a keyframe
    every 3 s and B-frames, the first frame out must still be the chunk's own first."""
    path = write_video(tmp_path / name, shot_frames(), fps=FPS,
                       options={"preset": "veryfast", "bf": "3", "x264-params": "b-adapt=0:scenecut=0", "g": "30",
                                "crf": "12"})
    for start in (4.0, 5.9, 16.0, 20.9):
        for cheap in (True, False):
            times, _ = detection_frames(str(path), start, start + 4.0, cheap=cheap)
            assert times[0] == pytest.approx(start, abs=1.0 / DETECT_FPS + 1e-6), (name, start, cheap, times[:3])


def test_detection_counts_a_recordings_seconds_from_its_first_frame_shown(tmp_path):
    """Cut detection times a recording started between keyframes (a TV tuner's) as the index's reader does: from the
    first frame a decoder shows. Before, it counted from the stream's first timestamp, so cuts were placed late."""
    from tests.videos import frame_index_of, indexed_frames, write_cut_in_recording
    from vtr.data.video import open_video

    path = write_cut_in_recording(tmp_path / "tv.ts", indexed_frames(75), fps=25, keyint=25)
    with open_video(path, backend="pyav") as r:
        r.clock()
        first = frame_index_of(r.get_frames([0], size=(64, 48))[0].numpy())
    for start in (0.0, 1.0):
        times, frames = detection_frames(str(path), start, None, cheap=False, size=(64, 48))
        assert times[0] == pytest.approx(start)
        assert abs(frame_index_of(frames[0]) - (first + round(start * 25))) <= 1


def test_duplicate_filter_reuses_only_near_identical_windows():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    noisy = (a.astype(np.int32) + rng.integers(-1, 2, a.shape)).clip(0, 255).astype(np.uint8)
    f = DuplicateFilter()
    encode, source = f.split(np.stack([a, noisy, b, a]))
    assert encode.tolist() == [0, 2, 3] and source.tolist() == [0, 0, 2, 3]
    encode, source = f.split(np.stack([a, b]))  # across calls: window 0 repeats the last encoded one
    assert encode.tolist() == [1] and source.tolist() == [-1, 1]
    # groups: each run of windows starts with nothing to reuse, also after the last call
    encode, source = f.split(np.stack([b, a, noisy, a]), groups=[1, 2, 1])
    assert encode.tolist() == [0, 1, 3] and source.tolist() == [0, 1, 1, 3]
    with pytest.raises(ValueError, match="groups of 3 windows for 4"):
        f.split(np.stack([a, b, a, b]), groups=[1, 2])


def test_what_a_window_reuses_does_not_depend_on_the_order_chunks_arrive_in(test_model, monkeypatch):
    """Chunks arrive as the decode workers finish them. A window compared with whatever came before it took, in one
    build, the vector of a near-identical window of another file (a copy of the video, a truncated one) and in the
    next its own: the same folder indexed twice gave different vectors (cosine 0.998)."""
    rng = np.random.default_rng(3)
    pre = test_model.preprocess
    x, y, z = rng.integers(0, 256, (3, pre.num_frames, 3, pre.img_size, pre.img_size), dtype=np.uint8)
    near = (x.astype(np.int32) + rng.integers(-1, 2, x.shape)).clip(0, 255).astype(np.uint8)  # x re-encoded
    chunks = {key: ChunkResult(key=key, path=f"{key}.mp4", meta={}, n_windows=-1, n_chunks=1, chunk=0,
                               windows=[(0.0, 8.0), (8.0, 16.0)], frames=np.stack(frames), planned=2)
              for key, frames in (("a", [y, x]), ("b", [near, z]))}

    class Pool:  # the decode workers, finishing in the order given
        order: list = []

        def __init__(self, *args, **kwargs):
            pass

        def run(self, files):
            yield from (chunks[key] for key in Pool.order)

    monkeypatch.setattr("index.embed.DecodePool", Pool)
    settings = DecodeSettings(num_frames=pre.num_frames, img_size=pre.img_size, window_policy="shots")
    got = {}
    for order in ("ab", "ba"):
        Pool.order = list(order)
        items = embed_chunks(test_model, [("a", "a.mp4"), ("b", "b.mp4")], settings, batch_size=4, progress=False)
        got[order] = {c.key: c.vectors for c in items}
    for key in "ab":
        np.testing.assert_array_equal(got["ab"][key], got["ba"][key])
    assert not np.array_equal(got["ab"]["a"][1], got["ab"]["b"][0])  # x and its near copy: each its own vector


def test_embedder_reuse_gives_the_encoded_vector(test_model):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 4, 3, 32, 32), dtype=np.uint8)
    plain, reuse = WindowEmbedder(test_model, 2), WindowEmbedder(test_model, 2, reuse_duplicates=True)
    frames = np.stack([a, a, b])
    want = plain(frames)
    got = np.concatenate([reuse(frames[:2]), reuse(frames[2:]), reuse(frames[2:])])
    assert reuse.reused == 2
    np.testing.assert_allclose(got[:3], want, atol=1e-5)
    np.testing.assert_array_equal(got[3], got[2])


def test_build_with_shot_windows(tmp_path, test_model):
    root = tmp_path / "videos"
    shot_video(root / "shots.mp4")
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=1, progress=False, window_policy="shots")
    st = index_status(str(idx))
    assert st["manifest"]["window_policy"] == "shots"
    from tests.index.test_build import snapshot

    snap = snapshot(idx)
    spans = sorted((s, e) for _, s, e in snap)
    assert report.total_windows == len(spans) < len(plan_windows(30.0))
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(30.0, abs=0.2)
    assert not any(s < c - 0.3 and e > c + 0.3 for s, e in spans for c in (5.0, 21.0))  # none straddles a cut
    still = [v for (_, s, e), v in snap.items() if s >= 5.0 and e <= 21.3]
    assert len(still) >= 2 and all(np.array_equal(v, still[0]) for v in still)  # the still shot: one vector
    with pytest.raises(VtrError, match="window_policy"):
        build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    again = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)  # keeps "shots"
    assert again.embedded_windows == 0


def test_a_new_index_gets_shot_windows_and_an_old_one_keeps_its_policy(tmp_path, test_model, capsys):
    import json

    from index.commands import status_command
    from tests.index.media import make_video

    root = tmp_path / "videos"
    make_video(root / "v.mp4", 20, seed=4)  # one moving shot: 3 windows of 6.67 s (stride: 0-8, 4-12, 8-16, 12-20)
    new = tmp_path / "new"
    report = build_index([str(root)], str(new), model=test_model, workers=0, progress=False)
    assert index_status(str(new))["manifest"]["window_policy"] == "shots" and report.total_windows == 3
    # an index written before window policies were recorded was built with stride windows: an update keeps them
    old = tmp_path / "old"
    build_index([str(root)], str(old), model=test_model, workers=0, progress=False, window_policy="stride")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["window_policy"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    make_video(root / "w.mp4", 12, seed=5)
    again = build_index(None, str(old), model=test_model, workers=0, progress=False)
    assert (again.added, again.embedded_windows) == (1, 2)  # w.mp4 in stride windows: 0-8, 4-12
    assert index_status(str(old))["manifest"]["window_policy"] == "stride"
    capsys.readouterr()
    status_command(index=str(new))
    assert "per window inside shots of at most 8 s," in capsys.readouterr().out  # no stride to speak of
    status_command(index=str(old))
    assert "per 8 s window, stride 4 s," in capsys.readouterr().out
