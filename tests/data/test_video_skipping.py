"""PyAV's reads that drop the frames nothing references (``skip_frame=NONREF``) give the same bits as decoding
every frame, decode fewer frames on footage with B-frames, and stand aside where they cannot tell."""

from __future__ import annotations

import numpy as np
import pytest

from tests.videos import frame_index_of, indexed_frames, write_vfr_video, write_video
from vtr.data.video import PyAVVideoReader, open_video

N = 79


def _write(path, codec, options):
    return write_video(path, indexed_frames(N, height=64, width=96), codec=codec, options=options)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("skipping")
    # B-frames always (b-adapt 0), none referenced (b-pyramid off), and a keyframe every 16 frames, so far reads seek
    out = {"h264": _write(d / "b.mp4", "libx264", {"preset": "veryfast", "bf": "3", "b-pyramid": "none",
                                                  "x264-params": "b-adapt=0", "g": "16", "crf": "18"}),
           "h264_pyramid": _write(d / "p.mkv", "libx264", {"preset": "medium", "bf": "3", "g": "20",
                                                          "crf": "12"}),
           "vfr": write_vfr_video(d / "v.mp4", indexed_frames(N, height=64, width=96),
                                  np.cumsum(np.r_[0.0, np.random.default_rng(0).uniform(0.02, 0.09, N - 1)]))}
    out["hevc"] = _write(d / "h.mp4", "libx265", {"preset": "veryfast", "crf": "20",  # PyAV's wheels have x265
                                                 "x265-params": "bframes=3:keyint=16:log-level=error"})
    return out


def _read(path, indices, size=None, skipping=True, seek_threshold=8):
    """(frames, whether the skipping path answered, frames decoded)."""
    with open_video(path, backend="pyav", seek_threshold=seek_threshold) as r:
        assert isinstance(r, PyAVVideoReader)
        r.clock()  # the index reads the clock first; with it, the packet times that place skipped reads
        answered = []
        real = r._decode_skipping

        def spy(wanted, fmt):
            out = real(wanted, fmt) if skipping else None
            answered.append(out is not None)
            return out

        r._decode_skipping = spy
        frames = r.get_frames(indices, size=size).numpy()
        return frames, all(answered) and bool(answered), r.frames_decoded


INDEX_SETS = [[0], [N - 1], [5, 6, 7, 8], list(range(0, N, 9)), [70, 3, 40, 3, 77], list(range(30, 50)),
              list(range(N))]


@pytest.mark.parametrize("kind", ["h264", "h264_pyramid", "vfr", "hevc"])
@pytest.mark.parametrize("size", [None, (48, 32)])
def test_same_bits_as_decoding_every_frame(videos, kind, size):
    for indices in INDEX_SETS:
        full, full_skipped, _ = _read(videos[kind], indices, size, skipping=False)
        fast, answered, _ = _read(videos[kind], indices, size)
        assert answered and not full_skipped, (kind, indices)
        np.testing.assert_array_equal(fast, full, err_msg=f"{kind} {indices} {size}")
        if size is None:
            assert [frame_index_of(f) for f in fast] == indices


def test_decodes_fewer_frames_with_b_frames(videos):
    sparse = list(range(0, N, 8))
    _, _, every = _read(videos["h264"], sparse, skipping=False, seek_threshold=None)
    _, answered, skipped = _read(videos["h264"], sparse, seek_threshold=None)
    assert answered
    assert skipped < 0.7 * every, (skipped, every)  # bf=3 without a pyramid: 3 of 4 frames between anchors drop


def test_far_reads_seek(videos):
    # one keyframe every 16 frames: reading two far-apart frames seeks instead of decoding all between
    _, answered, decoded = _read(videos["h264"], [2, 70], seek_threshold=8)
    assert answered and decoded < 40, decoded


def test_stands_aside_without_packet_times_or_on_other_codecs(videos, tmp_path):
    # without the clock (evaluation reads a few frames of long files): every frame decodes, as before
    with open_video(videos["h264"], backend="pyav") as r:
        assert r._decode_skipping([0, 5], {"format": "rgb24"}) is None
        assert [frame_index_of(f) for f in r.get_frames([0, 5]).numpy()] == [0, 5]
    mpeg4 = write_video(tmp_path / "m.avi", indexed_frames(20, height=64, width=96), codec="mpeg4")
    with open_video(mpeg4, backend="pyav") as r:
        r.clock()
        assert r._decode_skipping([0, 5], {"format": "rgb24"}) is None
        assert [frame_index_of(f) for f in r.get_frames([0, 5, 19]).numpy()] == [0, 5, 19]


@pytest.mark.parametrize("clock", [True, False], ids=["clock read", "no clock"])
@pytest.mark.parametrize("name,codec,options", [
    ("ts.ts", "libx264", {"preset": "veryfast", "bf": "3", "x264-params": "b-adapt=0", "g": "16", "crf": "12"}),
    ("bframes.avi", "mpeg4", {"bf": "2", "g": "16"}),
    ("closed.mp4", "libx264", {"preset": "veryfast", "bf": "3", "x264-params": "b-adapt=0", "g": "16", "crf": "12"}),
])
def test_far_reads_land_on_their_frames(tmp_path, name, codec, options, clock):
    """A seek lands wherever the container puts it: MPEG-TS on a packet that is not a keyframe (the decoder then
    waits for the next one), MP4 on the keyframe whose decoding time is before the target but whose presentation is
    after it, AVI with B-frames numbers its frames from 1. Every far read still gets its own frames."""
    path = _write(tmp_path / name, codec, options)
    sets = [[3, 40], [14, 15], [30, 31, 45, 46, 47, 62, 63, 78], list(range(0, N, 9)), [78, 0, 47]]
    for indices in sets:
        with open_video(path, backend="pyav", seek_threshold=8) as r:
            if clock:
                r.clock()
            assert [frame_index_of(f) for f in r.get_frames(indices).numpy()] == indices, (name, indices)
