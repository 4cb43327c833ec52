"""VP8/VP9 WebMs with transparency (vtr.data.vpx_alpha): a chat's video sticker. FFmpeg's own VP8/VP9 decoders drop
the alpha Matroska keeps beside each frame, and showed the colour stored under it; libvpx's keep it, and vtr hands
every reader the frames with it as an APNG (vtr.data.sources.ffmpeg_input)."""

import av
import numpy as np
import pytest

from tests.videos import transparent_frames, write_alpha_webm
from vtr.data import vpx_alpha
from vtr.data.video import decord_unsuited, open_video


@pytest.mark.parametrize("codec", ["libvpx-vp9", "libvpx"])
def test_a_webm_with_transparency_is_read_over_white(tmp_path, codec):
    """Transparent pixels are white, as a chat shows the sticker; before, they were the green stored under them
    (FFmpeg's own decoder). Each frame at its time, from the file and from a shard's bytes."""
    frames = transparent_frames(20)
    path = write_alpha_webm(tmp_path / "sticker.webm", frames, codec)
    assert vpx_alpha.reads_alpha(path) and vpx_alpha.reads_alpha(path.read_bytes())
    assert decord_unsuited(str(path)).startswith("transparent")
    for source in (str(path), path.read_bytes()):
        with open_video(source, name="sticker.webm") as reader:
            clock = reader.clock()
            assert (clock.num_frames, clock.duration) == (20, pytest.approx(2.0))
            got = reader.get_frames([0, 10, 19]).numpy().astype(int)
        assert (got[:, 2, 60] >= 250).all(), got[:, 2, 60]  # transparent: white, not the stored green
        assert np.abs(got[0, 24, 10] - (200, 30, 30)).max() <= 12  # the opaque square
        assert np.abs(got[0, -2, 30] - (127, 127, 255)).max() <= 12  # the half-transparent blue bar over white
    with av.open(str(path)) as c:  # what FFmpeg's own decoder shows: the colour under the transparency
        assert next(c.decode(video=0)).to_ndarray(format="rgb24")[2, 60, 1] > 200


def test_its_recording_date_is_read_from_the_file_not_from_its_frames(tmp_path):
    """The APNG made of its frames carries no tags: the date comes from the WebM itself."""
    from index.dates import recorded_at

    path = write_alpha_webm(tmp_path / "sticker.webm", transparent_frames(5),
                            tags={"creation_time": "2024-05-04T09:00:00.000000Z"})
    assert vpx_alpha.reads_alpha(path)
    assert recorded_at(str(path)) == (pytest.approx(1714813200.0), "metadata")


def test_what_is_read_without_its_transparency(tmp_path, monkeypatch):
    """With sound (an APNG has none: an exported moment would lose it), longer than MAX_PIXELS, of no known length
    (a live recording: it could be any length), or without alpha: read by FFmpeg as before."""
    frames = transparent_frames(20)
    cases = {"with sound": write_alpha_webm(tmp_path / "talking.webm", frames, audio=True),
             "without alpha": write_alpha_webm(tmp_path / "plain.webm", frames, pix_fmt="yuv420p"),
             "live": write_alpha_webm(tmp_path / "live.webm", frames, live=True)}
    long = write_alpha_webm(tmp_path / "long.webm", frames)
    assert vpx_alpha.reads_alpha(long)
    for what, path in [*cases.items(), ("too long", long)]:
        if what == "too long":
            monkeypatch.setattr(vpx_alpha, "MAX_PIXELS", 19 * 48 * 64)  # less than its 20 frames
        assert not vpx_alpha.reads_alpha(path), what
        with open_video(str(path)) as reader:
            assert reader.clock().num_frames == 20, what
    for name in ("clip.mp4", "clip.webm"):
        (tmp_path / name).write_bytes(b"not a video")
        assert not vpx_alpha.reads_alpha(tmp_path / name)
