import numpy as np
import pytest
import torch

from index.build import build_index
from index.search import VideoIndex, merge_segments
from vtr.errors import VtrError
from tests.index.media import make_video

RED_VECTOR = np.eye(16, dtype=np.float32)[0]


class RedDetector:
    """Stands in for the random-weight encoder (which cannot understand anything): a window's vector says which
    fraction of its sampled frames are solid red, so the right answer to "red" is known exactly."""

    def __init__(self, model):
        self.model = model

    def __call__(self, frames, return_tokens=False, keep=None):
        pre = self.model.preprocess
        mean = torch.tensor(pre.mean).view(1, 1, 3, 1, 1)
        std = torch.tensor(pre.std).view(1, 1, 3, 1, 1)
        rgb = (frames * std + mean).mean(dim=(-1, -2))  # [B, T, 3] in 0..1
        red = ((rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.2)).float().mean(dim=1)  # [B]
        emb = torch.zeros(frames.shape[0], 16)
        emb[:, 0] = red
        emb[:, 1] = 1 - red
        return type("VideoEmbedding", (), {"embedding": emb, "frame_embeds": None, "tokens": None})


@pytest.fixture
def red_collection(tmp_path, test_model, monkeypatch):
    root = tmp_path / "videos"
    make_video(root / "beach.mp4", 24, seed=1, red=(12, 20))  # the answer: 12-20 s of beach.mp4
    make_video(root / "city.mp4", 24, seed=2)
    make_video(root / "long" / "park.mp4", 30, seed=3, red=(0, 2))  # a little red: a worse match
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    monkeypatch.undo()
    return root, idx


def test_text_search_finds_the_right_video_and_span(red_collection, test_model, monkeypatch):
    root, idx = red_collection
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        # The random text encoder cannot understand "red"; pin the text vector to the "red" direction instead.
        monkeypatch.setattr(vi, "encode_text", lambda text: (RED_VECTOR, None))
        top = vi.search("a red scene", k=3)
        assert top[0].path == str(root / "beach.mp4")
        assert (top[0].start, top[0].end) == (12.0, 20.0)
        assert top[0].score == pytest.approx(1.0)
        assert top[0].thumbnail and open(top[0].thumbnail, "rb").read(2) == b"\xff\xd8"
        # filters
        only_long = vi.search(RED_VECTOR, k=3, path_glob="*/long/*")
        assert {s.path for s in only_long} == {str(root / "long" / "park.mp4")}
        assert only_long[0].start == 0.0 and only_long[0].score == pytest.approx(0.25)
        assert all(s.path.endswith("park.mp4") for s in vi.search(RED_VECTOR, k=3, min_duration=25))
        assert vi.search(RED_VECTOR, k=3, max_duration=1) == []


def test_query_by_example_clip_and_image(tmp_path, test_model):
    root = tmp_path / "videos"
    for i in range(4):
        make_video(root / f"v{i}.mp4", 16, seed=40 + i)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    # a clip cut from v2 at 8-16 s (the same frames, re-encoded) must find v2 at 8-16 s
    from tests.index.media import textured_frames
    from tests.videos import write_video

    clip = tmp_path / "clip.mp4"
    write_video(clip, textured_frames(16, seed=42)[80:160], fps=10)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        top = vi.search(str(clip), k=2)
        assert top[0].path == str(root / "v2.mp4")
        assert top[0].start <= 8.0 and top[0].end >= 16.0
        best = max(top[0].windows, key=lambda w: w["score"])
        assert (best["start"], best["end"]) == (8.0, 16.0)
        # an image repeated to T frames works as a query too
        import av

        frame = textured_frames(16, seed=41)[50]
        image = tmp_path / "still.jpg"
        with av.open(str(image), "w", format="image2") as c:
            s = c.add_stream("mjpeg", rate=1)
            s.width, s.height, s.pix_fmt = frame.shape[1], frame.shape[0], "yuvj420p"
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
            for p in s.encode():
                c.mux(p)
        assert len(vi.search(str(image), k=2)) == 2
        # kind pins how a string is read: "text" never opens a file, "example" insists on one
        as_example = vi.search(str(clip), k=2, kind="example")
        assert [s.path for s in as_example] == [s.path for s in top]
        as_text = vi.search(str(clip), k=2, kind="text")
        np.testing.assert_allclose(as_text[0].score, vi.search(vi.encode_text(str(clip))[0], k=1)[0].score,
                                   rtol=1e-5)
        with pytest.raises(VtrError, match="needs an image or video file"):
            vi.search("a dog catches a frisbee", kind="example")
        # text + ITM re-ranking runs end to end (scores are meaningless with random weights)
        reranked = vi.search("a dog catches a frisbee", k=3, rerank=True, rerank_top=5)
        assert 1 <= len(reranked) <= 3 and all(np.isfinite(s.score) for s in reranked)


def test_merge_segments():
    hits = [(1, 0, 8, 0.1), (2, 4, 12, 0.5), (3, 8, 16, 0.9), (4, 12, 20, 0.91), (5, 16, 24, 0.5), (9, 40, 48, 0.3)]
    segs = merge_segments(hits, merge_margin=0.02)
    assert (segs[0][0], segs[0][1], segs[0][2]) == (8, 20, 0.91)
    assert [s[:2] for s in segs[1:]] == [(4, 12), (16, 24), (40, 48), (0, 8)]
    # a weaker segment lying mostly inside a better one is dropped
    segs = merge_segments([(1, 0, 8, 0.9), (2, 4, 12, 0.9), (3, 2, 10, 0.5)], merge_margin=0.02)
    assert [s[:3] for s in segs] == [(0, 12, 0.9)]
