import io

import av
import numpy as np
import pytest
import torch

from index.build import build_index
from index.search import VideoIndex, merge_segments
from vtr.errors import VtrError
from tests.index.media import RED, make_vfr_video, make_video
from tests.videos import write_jpeg, write_photo, write_video

RED_VECTOR = np.eye(16, dtype=np.float32)[0]
NOT_RED_VECTOR = np.eye(16, dtype=np.float32)[1]


class RedDetector:
    """Stands in for the random-weight encoder (which cannot understand anything): a window's vector says which
    fraction of its sampled frames are solid red, so the right answer to "red" is known exactly. Its one token
    per clip carries the same vector, for a stand-in matching head."""

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
        return type("VideoEmbedding", (), {"embedding": emb, "frame_embeds": None,
                                           "tokens": emb[:, None] if return_tokens else None})


@pytest.fixture
def red_collection(tmp_path, test_model, monkeypatch):
    root = tmp_path / "videos"
    make_video(root / "beach.mp4", 24, seed=1, red=(12, 20))  # the answer: 12-20 s of beach.mp4
    make_video(root / "city.mp4", 24, seed=2)
    make_video(root / "long" / "park.mp4", 30, seed=3, red=(0, 2))  # a little red: a worse match
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
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
        # what cannot be asked (`vtr search -k -3` listed 45 moments, -k 0 said "no results")
        for k in (0, -3):
            with pytest.raises(VtrError, match=f"at least 1, not {k}"):
                vi.search("a red scene", k=k)
        with pytest.raises(VtrError, match="minimum duration is above the maximum"):
            vi.search(RED_VECTOR, k=3, min_duration=30, max_duration=10)


@pytest.mark.parametrize("policy", ["stride", "shots"])
def test_variable_frame_rate_moments_are_on_the_players_clock(tmp_path, test_model, monkeypatch, policy):
    # 30 fps for 8 s, then 4 fps (a phone in the dark): 304 frames over 24 s, 12.7 fps on average, so frame
    # i / fps would put the red 12-20 s at 4.6-9.3 s of a 24 s video
    root = tmp_path / "videos"
    make_vfr_video(root / "phone.mp4", [(8, 30), (16, 4)], seed=5, red=(12, 20))
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy=policy)
    monkeypatch.undo()
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.duration(str(root / "phone.mp4")) == pytest.approx(24.0, abs=0.25)  # to a frame (4 fps)
        top = vi.search(RED_VECTOR, k=1)
        assert (top[0].start, top[0].end) == (12.0, 20.0) and top[0].score == pytest.approx(1.0)
        for seconds, red in ((11.5, False), (13.0, True), (19.9, True), (20.5, False)):  # the frame on screen
            with av.open(io.BytesIO(vi.thumbnail(top[0].path, seconds))) as c:
                rgb = next(c.decode(video=0)).to_ndarray(format="rgb24").reshape(-1, 3).mean(0)
            assert (rgb[0] > 150 and rgb[1] < 60) == red, seconds


def test_an_index_built_before_frame_times_re_embeds_its_variable_rate_videos_once(tmp_path, test_model, monkeypatch):
    from index.catalog import Catalog
    from vtr.data import video as video_mod

    root = tmp_path / "videos"
    make_vfr_video(root / "phone.mp4", [(8, 30), (16, 4)], seed=5, red=(12, 20))
    make_video(root / "city.mp4", 12, seed=2)
    idx = tmp_path / "idx"
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    # an older vtr: frame i at i / fps, and no frame-times mark in the catalog
    with monkeypatch.context() as old:
        old.setattr(video_mod.Clock, "from_times", classmethod(lambda cls, fps, n, times, end=None: cls(fps, n)))
        build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    cat = Catalog(idx / "catalog.sqlite")
    with cat.transaction():
        cat.conn.execute("DELETE FROM meta WHERE key='frame_times'")
    cat.close()
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        top = vi.search(RED_VECTOR, k=1)[0]  # the red 12-20 s, misplaced (at 20-23 s of "23.4 s")
        assert (top.start, top.end) != (12.0, 20.0) and top.score < 0.5
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.retimed, report.unchanged, report.changed) == (1, 1, 0)  # the phone video only
    assert "1 re-timed" in report.summary()
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        top = vi.search(RED_VECTOR, k=1)
        assert top[0].path.endswith("phone.mp4") and (top[0].start, top[0].end) == (12.0, 20.0)
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (again.retimed, again.unchanged) == (0, 2)  # checked once per index


def test_a_bad_precision_flag_fails_when_the_index_opens(red_collection, test_model):
    from vtr.errors import VtrError

    _, idx = red_collection
    with pytest.raises(VtrError, match="unknown precision 'fp16'"):  # not silently at the first example query
        VideoIndex(str(idx), model=test_model, gpu=False, precision="fp16")
    with pytest.raises(VtrError, match="--nprobe must be at least 1, not 0"):  # was ignored, or FAISS's error
        VideoIndex(str(idx), model=test_model, gpu=False, nprobe=0)


def test_query_by_example_clip_and_image(tmp_path, test_model, capsys):
    root = tmp_path / "videos"
    for i in range(4):
        make_video(root / f"v{i}.mp4", 16, seed=40 + i)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
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
        # an image repeated to T frames works as a query too (which video it finds: test_query_by_image_...)
        image = write_jpeg(tmp_path / "still.jpg", textured_frames(16, seed=41)[50])
        assert len(vi.search(str(image), k=2)) == 2
        # kind pins how a string is read: "text" never opens a file, "example" insists on one
        as_example = vi.search(str(clip), k=2, kind="example")
        assert [s.path for s in as_example] == [s.path for s in top]
        as_text = vi.search(str(clip), k=2, kind="text")
        np.testing.assert_allclose(as_text[0].score, vi.search(vi.encode_text(str(clip))[0], k=1)[0].score,
                                   rtol=1e-5)
        # a path to a file that is not there is a typo, not words to search for (it answered "something")
        with pytest.raises(VtrError, match=r"no such file: .*cilp\.mp4"):
            vi.search(str(tmp_path / "cilp.mp4"), k=2)
        assert len(vi.search("a clip.mp4 of my dog", k=2)) == 2  # words that mention a file name stay words
        assert len(vi.search(str(tmp_path / "cilp.mp4"), k=2, kind="text")) == 2
        with pytest.raises(VtrError, match="needs an image or video file"):
            vi.search("a dog catches a frisbee", kind="example")
        # text + ITM re-ranking runs end to end with the real matching head (the order it must give:
        # test_rerank_orders_by_the_matching_head)
        reranked = vi.search("a dog catches a frisbee", k=3, rerank=True, rerank_top=5)
        assert 1 <= len(reranked) <= 3 and all(np.isfinite(s.score) for s in reranked)
        assert "re-ranking" not in capsys.readouterr().err
        # with progress (the CLI's `--rerank`, the app): a bar over the windows decoded and encoded again
        assert vi.search("a dog catches a frisbee", k=3, rerank=True, rerank_top=5, progress=True) == reranked
        assert "re-ranking with the matching head" in capsys.readouterr().err


def test_query_by_image_finds_the_red_span(red_collection, test_model, monkeypatch, tmp_path):
    root, idx = red_collection
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    still = write_jpeg(tmp_path / "red.jpg", np.full((48, 64, 3), RED, np.uint8))
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        top = vi.search(str(still), k=3)
    # a red still is the red direction: beach.mp4 at 12-20 s (all red, cosine 1) first, then its half-red
    # neighbours; park.mp4 (red for 2 of 30 s) below every beach moment
    assert (top[0].path, top[0].start, top[0].end) == (str(root / "beach.mp4"), 12.0, 20.0)
    assert top[0].score == pytest.approx(1.0, abs=1e-4)
    assert [s.score for s in top] == sorted((s.score for s in top), reverse=True)
    assert top[1].path == str(root / "beach.mp4") and top[1].score < top[0].score


def test_a_tiff_example_ffmpeg_shows_blank_is_refused_saying_why(red_collection, test_model, tmp_path):
    """A scanner's JPEG-compressed TIFF of a red page: FFmpeg gives its picture blank, and the search ranked the
    index by a blank picture, saying nothing. It says what the file is and what to do; an uncompressed TIFF of the
    same page is searched."""
    from tests.videos import write_tiff

    root, idx = red_collection
    red = np.full((48, 64, 3), RED, np.uint8)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        with pytest.raises(VtrError, match=r"The example scan.tif cannot be used: a TIFF compressed with JPEG"):
            vi.search(str(write_tiff(tmp_path / "scan.tif", red, compression=7)), k=1)
        assert vi.search(str(write_tiff(tmp_path / "page.tif", red)), k=1)


def test_an_avif_photo_is_an_image_example(red_collection, test_model, monkeypatch, tmp_path):
    """AVIF (what browsers save from the web now): read as an image, and shown as one by the app. Before, it went to
    the video reader, and the app put it in a video player, which shows nothing of a still."""
    import av

    from index.search import IMAGE_EXTENSIONS

    root, idx = red_collection
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    still = tmp_path / "red.avif"
    with av.open(str(still), "w", format="avif") as c:
        s = c.add_stream("libsvtav1", rate=1)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for packet in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), RED, np.uint8), format="rgb24")):
            c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        with pytest.raises(VtrError, match="no such file"):
            vi.search(str(tmp_path / "typo.avif"), k=1)  # a mistyped photo is said, not searched as words
        top = vi.search(str(still), k=1)
    assert (top[0].path, top[0].start, top[0].end) == (str(root / "beach.mp4"), 12.0, 20.0)
    assert ".avif" in IMAGE_EXTENSIONS  # the app's example preview: an image, not a video player


def test_a_phone_photo_is_the_example_its_viewer_shows(red_collection, test_model, tmp_path):
    """A portrait photo as phones write it (landscape pixels tagged "turn 90° clockwise" in EXIF) is the example the
    user sees, upright. Before, the model was given it on its side."""
    _, idx = red_collection
    upright = np.zeros((64, 48, 3), np.uint8)  # portrait: a red top, a textured bottom
    upright[:20] = RED
    upright[20:] = np.random.default_rng(5).integers(0, 255, (44, 48, 3), dtype=np.uint8)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # the sensor's landscape pixels
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        shown = vi.encode_example(write_photo(tmp_path / "upright.png", upright))
        tagged = vi.encode_example(write_photo(tmp_path / "IMG_0042.png", stored, orientation=6))
        sideways = vi.encode_example(write_photo(tmp_path / "sideways.png", stored))
    np.testing.assert_allclose(tagged, shown, atol=1e-6)
    assert float(shown @ sideways) < 0.999  # the model tells the two apart: the test sees a sideways read


def test_a_clip_whose_header_counts_frames_never_shown_is_an_example(red_collection, test_model, tmp_path):
    """A TV recording started between keyframes, searched by as an example clip: sampled over the frames its clock
    counts (as the index counts them). Before, the frames sampled near its end were frames that never decode: "The
    example tv.ts cannot be used: frame 57 cannot be decoded"."""
    from tests.videos import indexed_frames, write_cut_in_recording

    _, idx = red_collection
    path = write_cut_in_recording(tmp_path / "tv.ts", indexed_frames(75), fps=25, keyint=25)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        vector = vi.encode_example(str(path))
        assert vector.shape == (vi.manifest["embed_dim"],) and np.isfinite(vector).all()
        assert len(vi.search(str(path), k=2)) == 2


def test_an_iphone_heic_photo_is_an_example_read_whole(red_collection, test_model, tmp_path):
    """An iPhone's HEIC photo (a grid of tiles) is an image example, read whole and upright, as the same photo saved
    as PNG is. Before, `.heic` went to the video reader, which read the first tile: a corner of the photo."""
    from tests.data.test_image import heic_picture
    from tests.videos import write_heif

    _, idx = red_collection
    picture = heic_picture()
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        png = vi.encode_example(write_photo(tmp_path / "photo.png", picture))
        heic = vi.encode_example(write_heif(tmp_path / "IMG_0042.HEIC", np.rot90(picture, -1).copy(), tile=64,
                                            quarter_turns=1))  # stored on its side, shown upright
    assert float(png @ heic) / float(np.linalg.norm(png) * np.linalg.norm(heic)) > 0.999


def test_an_animated_gif_or_webp_is_an_example_clip_and_a_still_one_a_picture(red_collection, test_model, tmp_path):
    """An animated GIF searched by is the clip it shows, sampled over its frames as the same frames in a video file
    are; one of a single frame is a picture. Before, a GIF was always a picture: its first frame, repeated. An
    animated WebP is a clip too; it was "not an image file, or it is damaged", FFmpeg decoding none."""
    from tests.videos import indexed_frames, write_animated_webp, write_gif

    _, idx = red_collection
    frames = indexed_frames(30, 96, 128)
    frames[15:] = 255 - frames[15:]  # its second half unlike its first frame
    gif = write_gif(tmp_path / "dance.gif", frames)
    with av.open(str(gif)) as c:
        shown = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])  # its frames, as decoded
    lossless = write_video(tmp_path / "dance.mkv", shown, fps=10, codec="ffv1", pix_fmt="bgr0")
    still = write_gif(tmp_path / "first.gif", shown[:1])
    webp = write_animated_webp(tmp_path / "dance.webp", shown, lossless=True)

    def cos(a, b):
        return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        clip, video, picture, sticker = (vi.encode_example(str(p)) for p in (gif, lossless, still, webp))
        photo = vi.encode_example(write_photo(tmp_path / "first.png", shown[0]))
    assert cos(clip, video) > 0.9999 and cos(picture, photo) > 0.9999 and cos(sticker, video) > 0.9999
    assert cos(clip, picture) < 0.999, cos(clip, picture)


def test_a_motion_photo_example_is_its_photo_and_a_moment_of_it_its_video(red_collection, test_model, tmp_path):
    """A Pixel's motion photo searched by is the photo people see; a second of it (the app's "more like this
    moment" on an indexed one) is its video's window there. Before, the photo of a small motion photo was "not an
    image file, or it is damaged": FFmpeg's probe read on into the video."""
    from tests.videos import indexed_frames, write_motion_photo

    _, idx = red_collection
    frames = indexed_frames(30, 96, 128)
    photo = np.ascontiguousarray(255 - frames[0])  # unlike every frame of its video
    motion = write_motion_photo(tmp_path / "PXL_20240501_101112345.MP.jpg", photo, frames)

    def cos(a, b):
        return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        as_example, plain = vi.encode_example(str(motion)), vi.encode_example(write_photo(tmp_path / "p.jpg", photo))
        moment = vi.encode_example(str(motion), at=1.5)
        video = vi.encode_example(write_video(tmp_path / "v.mp4", frames, fps=10), at=1.5)
    assert cos(as_example, plain) > 0.9999
    assert cos(moment, video) > 0.9999 and cos(moment, plain) < 0.999


def test_rerank_orders_by_the_matching_head(red_collection, test_model, monkeypatch):
    root, idx = red_collection
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    # A stand-in matching head that scores a window by its red fraction: the correct re-ranked order is known.
    monkeypatch.setattr(test_model, "itm_score", lambda hidden, mask, tokens: tokens[:, 0, 0])
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        encode_text = vi.encode_text
        # the contrastive query points at "not red", so before re-ranking the red span comes last
        monkeypatch.setattr(vi, "encode_text", lambda text: (NOT_RED_VECTOR, encode_text(text)[1]))
        plain = vi.search("a red scene", k=20)
        reranked = vi.search("a red scene", k=20, rerank=True, rerank_top=100)
    beach, park = str(root / "beach.mp4"), str(root / "long" / "park.mp4")
    assert plain[0].score == pytest.approx(1.0) and plain[0].path != beach
    assert plain[-1].path == beach and plain[-1].start <= 12.0 and plain[-1].end >= 20.0
    assert (reranked[0].path, reranked[0].start, reranked[0].end) == (beach, 12.0, 20.0)
    # then the half-red beach windows around it (0.5), park's 0-8 s window (2 s of 8 red: 0.25), then no red
    assert [round(s.score, 3) for s in reranked[:3]] == [1.0, 0.5, 0.25]
    assert [(s.path, s.start, s.end) for s in reranked[1:3]] == [(beach, 8.0, 24.0), (park, 0.0, 8.0)]
    assert all(s.score == 0 for s in reranked[3:])
    # every window the contrastive search shows was re-scored, none lost
    windows = lambda segments: {w["id"] for s in segments for w in s.windows}  # noqa: E731
    assert windows(plain) <= windows(reranked)


def test_merge_segments():
    hits = [(1, 0, 8, 0.1), (2, 4, 12, 0.5), (3, 8, 16, 0.9), (4, 12, 20, 0.91), (5, 16, 24, 0.5), (9, 40, 48, 0.3)]
    segs = merge_segments(hits, merge_margin=0.02)
    assert (segs[0][0], segs[0][1], segs[0][2]) == (8, 20, 0.91)
    assert [s[:2] for s in segs[1:]] == [(4, 12), (16, 24), (40, 48), (0, 8)]
    # a weaker segment lying mostly inside a better one is dropped
    segs = merge_segments([(1, 0, 8, 0.9), (2, 4, 12, 0.9), (3, 2, 10, 0.5)], merge_margin=0.02)
    assert [s[:3] for s in segs] == [(0, 12, 0.9)]


def test_what_the_app_shows_of_an_index_comes_from_public_methods(tmp_path, test_model):
    """status(), folders(), duration() and thumbnail(): the app's view of an index, without its catalog."""
    import av

    from index import index_status
    from index.decode import THUMB_WIDTH
    from tests.videos import frame_index_of, indexed_frames, write_video

    root = tmp_path / "videos"
    (root / "trips" / "2024").mkdir(parents=True)
    write_video(root / "count.mp4", indexed_frames(60), fps=10)  # 6 s; frame i shows its index
    make_video(root / "trips" / "2024" / "park.mp4", 9, seed=3)
    (root / "broken.mp4").write_bytes(b"not a video")
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride",
                thumbnails=False)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        st = vi.status()
        assert st == index_status(str(idx))  # one answer, opened or not
        assert (st["files"], st["roots"], st["pending"]) == (2, [str(root)], [])
        assert [p for p, _ in st["failed"]] == [str(root / "broken.mp4")]
        assert st["hours"] == pytest.approx((6 + 9) / 3600, rel=0.02)
        assert st["manifest"]["embed_dim"] == 16 and st["windows"] == len(vi.catalog.window_ids())
        # the roots first, then every folder holding an indexed video (not the failed file's), each once
        assert vi.folders() == [str(root), str(root / "trips" / "2024")]
        assert vi.duration(str(root / "count.mp4")) == pytest.approx(6.0, abs=0.15)
        assert vi.duration(str(root / "broken.mp4")) is None and vi.duration(str(tmp_path / "nowhere.mp4")) is None
        for seconds, frame in ((0.0, 0), (2.35, 23), (5.9, 59), (60.0, 59)):  # past the end: the last frame
            jpeg = vi.thumbnail(str(root / "count.mp4"), seconds)
            assert jpeg[:2] == b"\xff\xd8"
            with av.open(io.BytesIO(jpeg)) as c:
                image = next(c.decode(video=0)).to_ndarray(format="rgb24")
            assert image.shape[1] == min(THUMB_WIDTH, 64) and frame_index_of(image) == frame
        with pytest.raises(VtrError):
            vi.thumbnail(str(tmp_path / "nowhere.mp4"), 1.0)


def test_faiss_goes_to_the_encoder_s_gpu(red_collection, monkeypatch):
    from index.store import VectorStore

    _, idx = red_collection
    asked = []
    monkeypatch.setattr(VectorStore, "to_gpu", lambda self, device=0: asked.append(device) or False)
    for device in ("cuda:1", "cuda", None, "cpu"):
        VideoIndex(str(idx), device=device).close()
    assert asked == [1, 0, 0, 0]


def test_a_model_without_the_index_s_weights_is_refused_for_words_and_examples(tmp_path, test_model):
    """The weights are hashed beside the first encoding (not before it); a model whose tensors differ still gets
    no result, for a text query or an example, however many times it is asked."""
    import vtr

    make_video(tmp_path / "videos" / "a.mp4", 6, seed=1)
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "videos")], str(idx), model=test_model, workers=0, progress=False)
    torch.manual_seed(99)
    other = vtr.create_model("vtr_test")  # the same architecture, other weights
    with VideoIndex(str(idx), model=other, gpu=False) as vi:
        for _ in range(2):
            with pytest.raises(VtrError, match="does not have the weights .*checksum mismatch"):
                vi.search("anything", k=1)
        with pytest.raises(VtrError, match="checksum mismatch"):
            vi.search(str(tmp_path / "videos" / "a.mp4"), k=1)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.search("anything", k=1) and vi.search(str(tmp_path / "videos" / "a.mp4"), k=1)


def test_moments_like_a_moment_come_from_the_index_s_vectors_without_the_moment(red_collection, test_model, tmp_path,
                                                                                monkeypatch, capsys):
    """Moments like one found: its windows' mean vector against the index's, clip to clip. Its own windows, and those
    of a copy of its video over the same span, are left out; the rest of its video is not; no model is loaded."""
    import json
    import shutil

    import index.search
    from index.commands import search_command

    root, idx = red_collection
    beach = root / "beach.mp4"
    (root / "backup").mkdir()
    shutil.copy(beach, root / "backup" / "beach.mp4")  # a backup: the same windows, by content
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    elsewhere = tmp_path / "elsewhere.mp4"  # a copy the index does not hold
    shutil.copy(beach, elsewhere)

    def no_model(*args, **kwargs):
        raise AssertionError("a search by a moment of the index loads no model")

    monkeypatch.setattr(index.search, "load_model", no_model)
    with VideoIndex(str(idx), gpu=False) as vi:
        own = vi.moment_windows(beach, 14)  # 8-16 and 12-20 hold the 14th second
        rows = vi.catalog.windows_by_ids(own)
        assert sorted((w.start, w.end) for w, _ in rows.values()) == [(8.0, 16.0), (12.0, 20.0)]
        assert vi.moment_windows(beach, 12, 20) == [i for i in own if rows[i][0].start == 12.0]

        found = vi.similar(beach, 14, k=20)
        for seg in found:  # nothing of the moment: 8-20 s of beach.mp4, in either place
            if seg.path == str(beach) or str(beach) in seg.copies:
                assert seg.end <= 8.0 or seg.start >= 20.0
        assert any((seg.path == str(beach) or str(beach) in seg.copies) and seg.end <= 8.0  # the rest of it is there
                   for seg in found)
        # the best is the window most like the moment by cosine, from the catalog's vectors
        q = np.mean([v / np.linalg.norm(v) for v in vi.catalog.vectors_of(rows[own[0]][1].id)[[2, 3]]], axis=0)
        q /= np.linalg.norm(q)
        park = vi.catalog.file_by_path(str(root / "long" / "park.mp4"))
        first = vi.catalog.windows_of(park.id)[0]
        v = vi.catalog.vectors_of(park.id)[0]
        assert (found[0].path, found[0].start, found[0].end) == (park.path, first.start, first.end)
        assert found[0].score == pytest.approx(float(v @ q) / float(np.linalg.norm(v)), abs=1e-5)
        assert found[0].score > found[1].score

        assert vi.similar(elsewhere, 14, k=20) == found  # found by its content
        assert [s.path for s in vi.similar(beach, 14, k=20, path_glob="*/long/*")] == [park.path] * len(
            [s for s in found if s.path == park.path])
        with pytest.raises(VtrError, match="24.0 s long: there is no moment at 99 s"):
            vi.similar(beach, 99)
        with pytest.raises(VtrError, match="0 or more"):
            vi.similar(beach, -1)
        with pytest.raises(VtrError, match="not in this index, nor a copy"):
            vi.similar(tmp_path / "nowhere.mp4", 3)

    assert search_command(str(beach), index=str(idx), at=14, k=3, json=True) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(d["path"], d["start"], d["end"]) for d in printed] == [(s.path, s.start, s.end) for s in found[:3]]
    with pytest.raises(VtrError, match="--rerank"):
        search_command(str(beach), index=str(idx), at=14, rerank=True)
    # in a process of its own, as `vtr search VIDEO --at S` runs: nothing of torch is imported
    import subprocess
    import sys

    code = ("import sys; from index.commands import search_command; "
            f"search_command({str(beach)!r}, index={str(idx)!r}, at=14, k=1); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False" and str(root / "long" / "park.mp4") in out


def test_moments_like_a_second_of_a_video_the_index_does_not_hold(red_collection, test_model, tmp_path, monkeypatch,
                                                                   caplog):
    """A video outside the index: its window around that second (the index's window length) is encoded, as an
    example; a whole long example is one moment of its whole length, and the search says how to pick one."""
    import shutil

    root, idx = red_collection
    outside = tmp_path / "outside.mp4"
    shutil.copy(root / "beach.mp4", outside)
    with open(outside, "ab") as f:
        f.write(b"\0")  # another size: not a copy of an indexed video
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi._indexed_file(outside) is None
        top = vi.similar(outside, 14, k=3)  # the 8 s around 14 s: 10-18 s, three quarters red
        assert (top[0].path, top[0].start, top[0].end) == (str(root / "beach.mp4"), 12.0, 20.0)
        assert top[0].score == pytest.approx(0.75 / np.hypot(0.75, 0.25), abs=0.02)
        with pytest.raises(VtrError, match="24.0 s long: there is no moment at 30 s"):
            vi.similar(outside, 30)
        with pytest.raises(VtrError, match="0 or more: not -3"):
            vi.similar(outside, -3)
        with caplog.at_level("WARNING", logger="index.search"):
            vi.search(str(outside), k=1)
        assert "is 24 s long: its 4 frames are spread over all of it" in caplog.text  # vtr_test: 4 frames


def test_a_flat_index_filters_in_faiss_with_the_results_of_scoring_the_catalog(red_collection, test_model,
                                                                              monkeypatch):
    """Filtered searches (a folder, a duration, dates) read every allowed window's vector from the catalog and
    scored them: 371 ms for 100,000 windows (bench.filtered_search). A Flat (or IVF…,Flat) store filters exactly
    itself, in 20 ms: the same moments."""
    root, idx = red_collection
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        def moments(**filters):
            return [(s.path, s.start, s.end, round(s.score, 5)) for s in vi.search(RED_VECTOR, k=6, **filters)]

        filters = [dict(path_glob=f"{root}/*"), dict(min_duration=25), dict(path_glob="*/beach.mp4", max_duration=30)]
        with monkeypatch.context() as m:
            m.setattr(vi.store, "search_allowed_exactly", lambda *a: None)  # the catalog's way
            expected = [moments(**f) for f in filters]

        def no_catalog_vectors(*args, **kwargs):
            raise AssertionError("a Flat index filters without reading the catalog's vectors")

        monkeypatch.setattr(vi.catalog, "iter_vectors", no_catalog_vectors)
        assert [moments(**f) for f in filters] == expected
        assert expected[2] and {p for p, *_ in expected[2]} == {str(root / "beach.mp4")}
        assert {p for p, *_ in expected[1]} == {str(root / "long" / "park.mp4")}


def test_weights_are_hashed_again_only_when_their_files_change(tmp_path, test_model_folder, monkeypatch):
    """Hashing the release-size model's tensors cost a `vtr search` 2.31 s → 1.71 s (bench.cli_latency). Files that
    the build hashed, or that passed a search's check, unchanged since, are not hashed again; other bytes written
    into the same file, its mtime put back, are."""
    import os
    import shutil

    import index.layout
    import index.search
    import vtr
    from index.layout import WEIGHTS_VERIFIED
    from vtr.models.checkpoint import WEIGHTS_FILE, save_vtr
    from vtr.models.registry import config_to_dict

    folder = tmp_path / "model"
    shutil.copytree(test_model_folder, folder)
    make_video(tmp_path / "videos" / "a.mp4", 6, seed=1)
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "videos")], str(idx), model=str(folder), workers=0, progress=False)
    hashed = []
    real_checksum = index.search.weights_checksum
    monkeypatch.setattr(index.search, "weights_checksum", lambda m: hashed.append(m) or real_checksum(m))

    def search(model=None):
        with VideoIndex(str(idx), model=model, gpu=False) as vi:
            return vi.search("anything", k=1)

    assert (idx / WEIGHTS_VERIFIED).is_file()  # the build hashed the tensors it read from these files
    assert search() and search() and not hashed

    # other weights of the same shapes written into the same file (same size, same inode), its mtime put back
    weights = folder / WEIGHTS_FILE
    before = weights.stat()
    torch.manual_seed(5)
    other = vtr.create_model("vtr_test")
    save_vtr(other, tmp_path / "other", config_to_dict(other.cfg, architecture="vtr_test"))
    data = (tmp_path / "other" / WEIGHTS_FILE).read_bytes()
    assert len(data) == before.st_size
    with open(weights, "r+b") as f:
        f.write(data)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_mtime_ns == before.st_mtime_ns and weights.stat().st_ino == before.st_ino
    for _ in range(2):
        with pytest.raises(VtrError, match="checksum mismatch"):
            search()
    assert len(hashed) == 2

    shutil.copyfile(test_model_folder / WEIGHTS_FILE, weights)  # the index's weights back
    assert search() and len(hashed) == 3
    assert search() and len(hashed) == 3

    # a model object is always hashed: its tensors may have changed since they were read
    changed = vtr.create_model(str(folder))
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)
    with pytest.raises(VtrError, match="checksum mismatch"):
        search(changed)
    assert len(hashed) == 4

    # an index folder that cannot be written (a read-only share): searches work, and go on hashing
    (idx / WEIGHTS_VERIFIED).unlink()

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(index.layout, "write_json_atomic", refuse)
    assert search() and search() and len(hashed) == 6
    assert not (idx / WEIGHTS_VERIFIED).exists()


def test_a_video_kept_in_two_places_is_one_result_naming_its_copy(tmp_path, test_model_folder, capsys):
    """A phone's video and its backup copy gave every moment twice, pushing other videos off the page."""
    import json
    import shutil

    from index.commands import search_command

    root = tmp_path / "videos"
    make_video(root / "phone" / "beach.mp4", 12, seed=1)
    make_video(root / "city.mp4", 12, seed=2)
    (root / "backup").mkdir()
    shutil.copy(root / "phone" / "beach.mp4", root / "backup" / "beach.mp4")
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=str(test_model_folder), workers=0, progress=False,
                window_policy="stride")
    with VideoIndex(str(idx), gpu=False) as vi:
        segments = vi.search("anything", k=20)
    spans = [(s.path, s.start, s.end) for s in segments]
    assert len(spans) == len(set(spans))
    both = {str(root / "backup" / "beach.mp4"), str(root / "phone" / "beach.mp4")}
    beach = [s for s in segments if s.path.endswith("beach.mp4")]
    assert beach and len({s.path for s in beach}) == 1  # one of the two, for every moment of it
    assert all({s.path, *s.copies} == both and len(s.copies) == 1 for s in beach)
    assert all(s.copies == [] for s in segments if s.path.endswith("city.mp4"))
    capsys.readouterr()
    assert search_command("anything", index=str(idx), k=20, json=True) == 0
    hits = json.loads(capsys.readouterr().out)
    assert any({h["path"], *h["copies"]} == both for h in hits)
    assert search_command("anything", index=str(idx), k=20) == 0
    assert f"(the same video also at: {beach[0].copies[0]})" in capsys.readouterr().out
