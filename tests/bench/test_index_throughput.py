"""bench.index_throughput's footage in a phone's HDR (``--codecs hevc-hlg``): what an iPhone records by default, which
the index reads as HDR."""

import av
import numpy as np

from bench.index_throughput import FPS, make_footage


def test_the_hdr_footage_is_an_iphones_hevc_and_the_index_reads_it(tmp_path):
    from index.decode import DecodeSettings, decode_chunk

    path = make_footage(tmp_path / "hlg.mp4", 3, 160, 96, seed=1, codec="hevc-hlg")
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        cc = stream.codec_context
        assert (cc.name, cc.pix_fmt, cc.color_trc, cc.color_primaries, cc.colorspace) == (
            "hevc", "yuv420p10le", 18, 9, 9)
        packets = [packet for packet in c.demux(stream) if packet.size]
    assert len(packets) == 3 * FPS and sum(packet.is_keyframe for packet in packets) == 3  # a keyframe a second
    plain = make_footage(tmp_path / "sdr.mp4", 3, 160, 96, seed=1)
    settings = DecodeSettings(num_frames=4, img_size=32, window_s=3.0, stride_s=3.0)
    hdr, sdr = (decode_chunk(str(p), 0, settings) for p in (path, plain))
    assert hdr.windows == sdr.windows == [(0.0, 3.0)] and hdr.frames.shape == sdr.frames.shape == (1, 4, 3, 32, 32)
    # its pictures are the H.264 footage's, only tagged HLG: read as HDR (tone-mapped), they come out otherwise
    assert np.abs(hdr.frames.astype(np.int16) - sdr.frames).mean() > 5


def test_footage_with_a_cameras_grain_at_a_phones_bitrate(tmp_path):
    """``--grain`` and ``--mbits``: the textures alone compress to a fraction of a phone's bitrate (decoding then
    reads few bits); with sensor noise and a bitrate asked, the footage holds about that many bits."""
    plain = make_footage(tmp_path / "plain.mp4", 2, 320, 192, seed=2)
    grainy = make_footage(tmp_path / "grainy.mp4", 2, 320, 192, seed=2, grain=3, mbits=2.0)
    mbits = grainy.stat().st_size * 8 / 2 / 1e6
    assert 1.4 < mbits < 2.6 and grainy.stat().st_size > 2 * plain.stat().st_size, (mbits, plain.stat().st_size)
    with av.open(str(plain)) as a, av.open(str(grainy)) as b:
        fa, fb = (next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.int16) for c in (a, b))
    assert 1.5 < np.abs(fa - fb).mean() < 6  # the same pictures under noise of about 3 levels
