import json
import pickle
import shutil

import pytest
import torch

from vtr.data.retrieval import (RETRIEVAL_DATASETS, RetrievalVideos, check_readable, check_videos,
                                get_retrieval_spec, load_retrieval_split)
from vtr.data.text import normalize_caption
from vtr.data.transforms import EvalTransform
from vtr.errors import VideoReadError, VtrError

# Small annotation files in each benchmark's real format (evaluation.md §1).
ANNOTATIONS = {
    "msrvtt": ("msrvtt_ret_test1k.json", [
        {"video": "video9770.mp4", "caption": "a person is connecting something to system", "duration": 10.8},
        {"video": "video9771.mp4", "caption": "A little girl does gymnastics!", "duration": 13.78},
        {"video": "video7020.mp4", "caption": "a woman creating a fondant baby and flower", "duration": 12.0},
    ]),
    "didemo": ("didemo_ret_test.json", [
        {"video": "10015567@N08_3655084291.mp4", "caption": ["The baby looks at the camera.", "a dog runs."]},
        {"video": "10050570@N05_5025451040.mp4", "caption": ["First time we see the bird"]},
    ]),
    "anet": ("anet_ret_val_1.json", [
        {"video": "v_uqiMw7tQ1Cc.mp4", "caption": [
            "A weight lifting tutorial is given.",
            "  The coach helps the guy in red with the proper body placement and lifting technique."],
         "timestamp": [[0.28, 55.15], [13.79, 54.32]], "duration": 55.15},
        {"video": "v_bXdq2zI1Ms0.mp4", "caption": ["Three men are standing on a mat.", " A man-in black..."],
         "timestamp": [[0, 10.5], [10.5, 40.0]], "duration": 73.1},
    ]),
    "lsmdc": ("lsmdc_ret_test_1000.json", [
        {"video": "1010_TITANIC/1010_TITANIC_00.41.32.072-00.41.40.196.avi", "caption": "SOMEONE lies on the bed."},
        {"video": "1012_Unbreakable/1012_Unbreakable_00.05.16.065-00.05.21.941.avi",
         "caption": "<person> (walks) away; slowly"},
    ]),
    "msvd": ("msvd_ret_test.json", [
        {"video": "-4wsuPCjDBc_5_15.avi", "caption": ["a squirrel is eating a peanut", "A chipmunk eats."]},
        {"video": "-7KMZQEsJW4_205_208.avi", "caption": ["a man is singing"]},
        {"video": "-8y1Q0rA3n8_108_115.avi", "caption": ["a cat plays", "a kitten is playing", "cat toy"]},
    ]),
}


def _write(root, name):
    fname, entries = ANNOTATIONS[name]
    folder = root / name
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / fname).write_text(json.dumps(entries))
    return folder / fname, folder / "videos", entries


def _touch_videos(video_dir, entries, source):
    for e in entries:
        path = video_dir / e["video"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, path)


def test_registry():
    assert set(RETRIEVAL_DATASETS) == {"msrvtt", "didemo", "anet", "lsmdc", "msvd"}
    assert {n: s.max_txt_l for n, s in RETRIEVAL_DATASETS.items()} == \
        {"msrvtt": 32, "didemo": 64, "anet": 150, "lsmdc": 96, "msvd": 64}
    assert [n for n, s in RETRIEVAL_DATASETS.items() if s.trimmed30] == ["didemo"]
    assert {n: s.text_mode for n, s in RETRIEVAL_DATASETS.items()} == \
        {"msrvtt": "single", "didemo": "paragraph", "anet": "paragraph", "lsmdc": "single", "msvd": "multi"}
    assert all(s.num_frames == 8 for s in RETRIEVAL_DATASETS.values())
    assert get_retrieval_spec("MSRVTT").name == "msrvtt"
    with pytest.raises(VtrError, match="unknown retrieval dataset"):
        get_retrieval_spec("kinetics")


@pytest.mark.parametrize("name", ["msrvtt", "lsmdc"])
def test_single_caption_datasets(tmp_path, name):
    ann, vdir, entries = _write(tmp_path, name)
    split = load_retrieval_split(name, ann, vdir)
    assert split.texts == [normalize_caption(e["caption"]) for e in entries]
    assert split.videos == [vdir / e["video"] for e in entries]
    assert split.txt2video == list(range(len(entries)))
    assert split.video2txt == [[i] for i in range(len(entries))]
    assert split.spec.name == name and not split.partial


def test_lsmdc_keeps_movie_subfolders_and_normalises(tmp_path):
    ann, vdir, _ = _write(tmp_path, "lsmdc")
    split = load_retrieval_split("lsmdc", ann, vdir)
    assert split.videos[0] == vdir / "1010_TITANIC" / "1010_TITANIC_00.41.32.072-00.41.40.196.avi"
    assert split.texts == ["someone lies on the bed", "person walks away slowly"]


@pytest.mark.parametrize("name", ["didemo", "anet"])
def test_paragraph_datasets_join_then_normalise(tmp_path, name):
    ann, vdir, entries = _write(tmp_path, name)
    split = load_retrieval_split(name, ann, vdir)
    assert split.texts == [normalize_caption(" ".join(e["caption"])) for e in entries]
    assert split.txt2video == [0, 1] and split.video2txt == [[0], [1]]
    if name == "anet":
        assert split.texts[0] == ("a weight lifting tutorial is given the coach helps the guy in red with the "
                                  "proper body placement and lifting technique")
        assert split.texts[1] == "three men are standing on a mat a man in black"


def test_msvd_is_multi_caption_multi_gt(tmp_path):
    ann, vdir, _ = _write(tmp_path, "msvd")
    split = load_retrieval_split("msvd", ann, vdir)
    assert split.texts == ["a squirrel is eating a peanut", "a chipmunk eats", "a man is singing", "a cat plays",
                           "a kitten is playing", "cat toy"]
    assert split.txt2video == [0, 0, 1, 2, 2, 2]
    assert split.video2txt == [[0, 1], [2], [3, 4, 5]]


def test_data_root_layout(tmp_path):
    _write(tmp_path, "anet")
    split = load_retrieval_split("anet", root=tmp_path)
    assert split.videos[0] == tmp_path / "anet" / "videos" / "v_uqiMw7tQ1Cc.mp4"
    with pytest.raises(VtrError, match="not found"):
        load_retrieval_split("msvd", root=tmp_path)


def test_bad_annotation_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"video": "x"}))
    with pytest.raises(VtrError, match="list"):
        load_retrieval_split("msrvtt", bad, tmp_path)


def test_missing_videos_are_all_listed_before_any_decoding(tmp_path, monkeypatch):
    ann, vdir, entries = _write(tmp_path, "msvd")
    (vdir / entries[1]["video"]).write_bytes(b"not a video")  # present but broken: must not be opened here
    import vtr.data.video as video_mod

    def no_decoding(*a, **k):
        raise AssertionError("check_videos must not decode")

    monkeypatch.setattr(video_mod, "open_video", no_decoding)
    split = load_retrieval_split("msvd", ann, vdir)
    with pytest.raises(VtrError) as err:
        check_videos(split)
    msg = str(err.value)
    assert "2 of 3" in msg and entries[0]["video"] in msg and entries[2]["video"] in msg
    assert entries[1]["video"] not in msg


def test_missing_list_is_capped_at_20(tmp_path):
    ann = tmp_path / "msrvtt_ret_test1k.json"
    ann.write_text(json.dumps([{"video": f"video{i}.mp4", "caption": f"c {i}"} for i in range(25)]))
    with pytest.raises(VtrError) as err:
        check_videos(load_retrieval_split("msrvtt", ann, tmp_path / "videos"))
    msg = str(err.value)
    assert "25 of 25" in msg and "video19.mp4" in msg and "video20.mp4" not in msg and "5 more" in msg


def test_allow_missing_returns_a_consistent_partial_split(tmp_path, videos):
    ann, vdir, entries = _write(tmp_path, "msvd")
    _touch_videos(vdir, [entries[0], entries[2]], videos["h264_mp4"])
    split = load_retrieval_split("msvd", ann, vdir)
    with pytest.raises(VtrError, match="1 of 3"):
        check_videos(split)
    sub = check_videos(split, allow_missing=True)
    assert sub.partial and sub.num_missing_videos == 1 and sub.num_missing_texts == 1
    assert sub.videos == [vdir / entries[0]["video"], vdir / entries[2]["video"]]
    assert sub.texts == [split.texts[i] for i in (0, 1, 3, 4, 5)]
    assert sub.txt2video == [0, 0, 1, 1, 1] and sub.video2txt == [[0, 1], [2, 3, 4]]
    for v, ts in enumerate(sub.video2txt):
        assert all(sub.txt2video[t] == v for t in ts)
    assert sub.video_ids == [entries[0]["video"], entries[2]["video"]]


def test_videos_that_cannot_be_read_are_all_named_before_any_features_are_computed(tmp_path, videos):
    """A download cut short (its index at the end missing) and a file that is no video: found by opening each
    video, named together with why; ``allow_missing`` evaluates without them (partial, listed)."""
    ann, vdir, entries = _write(tmp_path, "msvd")
    _touch_videos(vdir, entries, videos["h264_mp4"])
    (vdir / entries[0]["video"]).write_bytes(b"<html>404 Not Found</html>")
    cut = vdir / entries[2]["video"]
    cut.write_bytes(cut.read_bytes()[:2000])
    split = check_videos(load_retrieval_split("msvd", ann, vdir))  # every file is there
    with pytest.raises(VtrError) as err:
        check_readable(split, progress=False)
    msg = str(err.value)
    assert "2 of 3 video files cannot be read" in msg and "--allow-missing" in msg
    assert f"{vdir / entries[0]['video']}: " in msg and f"{cut}: " in msg and entries[1]["video"] not in msg
    sub = check_readable(split, allow_missing=True, progress=False)
    assert sub.partial and sub.videos == [vdir / entries[1]["video"]] and sub.num_missing_videos == 2
    assert sub.texts == [split.texts[2]] and sub.txt2video == [0] and sub.video2txt == [[0]]
    assert [v for v, _ in sub.unreadable] == [str(vdir / entries[0]["video"]), str(cut)]
    assert all(why for _, why in sub.unreadable)
    assert check_readable(sub, progress=False) is sub


def test_complete_split_passes_check(tmp_path, videos):
    ann, vdir, entries = _write(tmp_path, "msrvtt")
    _touch_videos(vdir, entries, videos["h264_mp4"])
    split = load_retrieval_split("msrvtt", ann, vdir)
    assert check_videos(split) is split and not split.partial


def test_retrieval_videos_dataset(tmp_path, videos):
    ann, vdir, entries = _write(tmp_path, "didemo")
    _touch_videos(vdir, entries, videos["mpeg4_avi"])
    split = check_videos(load_retrieval_split("didemo", ann, vdir))
    ds = RetrievalVideos(split, num_frames=4, transform=EvalTransform(size=32))
    assert len(ds) == 2 and ds.trimmed30  # DiDeMo's setting by default
    index, frames = ds[1]
    assert index == 1 and frames.shape == (4, 3, 32, 32) and frames.dtype == torch.float32
    ds = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive it pickled under spawn
    batches = list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0))
    assert batches[0][0].tolist() == [0, 1] and batches[0][1].shape == (2, 4, 3, 32, 32)


def test_retrieval_videos_default_frames_and_transform(tmp_path, videos):
    ann, vdir, entries = _write(tmp_path, "msrvtt")
    _touch_videos(vdir, entries, videos["h264_mp4"])
    _, frames = RetrievalVideos(load_retrieval_split("msrvtt", ann, vdir))[0]
    assert frames.shape == (8, 3, 224, 224)


def test_retrieval_videos_propagates_read_errors_with_the_file_name(tmp_path):
    ann, vdir, entries = _write(tmp_path, "msrvtt")
    for e in entries:
        (vdir / e["video"]).write_bytes(b"\x00garbage" * 100)
    ds = RetrievalVideos(load_retrieval_split("msrvtt", ann, vdir), num_frames=2)
    with pytest.raises(VideoReadError, match="video9771.mp4"):
        ds[1]
