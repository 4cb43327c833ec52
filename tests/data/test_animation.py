"""Animated pictures (vtr.data.animation): a GIF, APNG or WebP of several frames is a video, one of a single frame a
picture; told apart by the file's own blocks, and read as video by the same reader as any clip."""

import io

import av
import numpy as np
import pytest

from tests.videos import frame_index_of, indexed_frames, write_animated_webp, write_gif, write_video
from vtr.data.animation import animated_webp, gif_frames, is_animation, png_animation_frames
from vtr.data.video import open_video


def test_a_gif_of_several_frames_is_an_animation_and_one_of_a_single_frame_a_picture(tmp_path):
    frames = indexed_frames(12)
    moving = write_gif(tmp_path / "dance.gif", frames)
    still = write_gif(tmp_path / "spacer.gif", frames[:1])
    assert is_animation(moving) and not is_animation(still)
    with open(moving, "rb") as f:
        assert gif_frames(f, stop=100) == 12
    with open(still, "rb") as f:
        assert gif_frames(f, stop=100) == 1
    assert is_animation(moving.read_bytes())  # the bytes of a shard's sample, too
    # the walk stops at the second image: it does not read the rest of a long animation
    with open(moving, "rb") as f:
        assert gif_frames(f) == 2
        assert f.tell() < moving.stat().st_size // 2


def test_an_avif_image_sequence_is_an_animation_and_a_still_avif_a_picture(tmp_path):
    """An animated AVIF (the web's GIF replacement) lists the ``avis`` brand; FFmpeg reads its sequence as the main
    video stream, each frame at its time, beside the still it also holds."""
    from tests.videos import write_avif

    frames = indexed_frames(20, 64, 96)
    animated = write_avif(tmp_path / "loop.avif", frames)
    still = write_avif(tmp_path / "photo.avif", frames[:1])
    assert is_animation(animated) and is_animation(animated.read_bytes()) and not is_animation(still)
    with open_video(str(animated)) as reader:
        assert (reader.num_frames, reader.fps) == (20, 10.0)
        assert [frame_index_of(f) for f in reader.get_frames([0, 7, 19])] == [0, 7, 19]


def test_an_apng_is_told_from_a_still_png_by_its_animation_chunk(tmp_path):
    frames = indexed_frames(6)
    apng = write_video(tmp_path / "sticker.apng", frames, fps=10, codec="apng", pix_fmt="rgb24")
    png = write_video(tmp_path / "still.png", frames[:1], fps=1, codec="png", pix_fmt="rgb24")
    assert is_animation(apng) and not is_animation(png)
    with open(apng, "rb") as f:
        assert png_animation_frames(f) == 6
    renamed = tmp_path / "sticker.png"  # an animated PNG under the still's extension is still an animation
    renamed.write_bytes(apng.read_bytes())
    assert is_animation(renamed)


def test_what_is_no_animation_or_cannot_be_read_says_false(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", indexed_frames(5))
    gif = write_gif(tmp_path / "a.gif", indexed_frames(12)).read_bytes()
    cases = {"an mp4": clip, "text": b"GIF is a format of pictures", "empty": b"", "a header only": gif[:13],
             "cut in its first frame": gif[:200], "no such file": tmp_path / "gone.gif"}
    for what, source in cases.items():
        assert not is_animation(source), what
    assert gif_frames(io.BytesIO(gif[:len(gif) * 2 // 3]), stop=100) >= 2  # a GIF cut short: the frames it has


def test_an_animated_webp_is_told_from_a_still_one_by_its_header(tmp_path):
    """FFmpeg decodes no animated WebP, so its header is read first (vtr.data.webp draws its frames)."""
    path = write_animated_webp(tmp_path / "sticker.webp", indexed_frames(4))
    still = write_video(tmp_path / "photo.webp", indexed_frames(1), fps=1, codec="libwebp", pix_fmt="yuv420p")
    assert animated_webp(path) and not animated_webp(still) and not animated_webp(tmp_path / "gone.webp")
    assert is_animation(path) and not is_animation(still)


@pytest.mark.parametrize("name", ["dance.gif", "sticker.apng"])
def test_an_animation_is_read_as_a_video_with_each_frame_at_its_time(tmp_path, name):
    from vtr.data.video import open_video

    frames = indexed_frames(30)
    path = (write_gif(tmp_path / name, frames) if name.endswith(".gif")
            else write_video(tmp_path / name, frames, fps=10, codec="apng", pix_fmt="rgb24"))
    for source in (str(path), path.read_bytes()):
        with open_video(source, name=name) as reader:
            clock = reader.clock()
            assert (clock.num_frames, clock.duration) == (30, pytest.approx(3.0))  # 30 frames of 0.1 s: media time
            got = reader.get_frames([0, 7, 18, 29]).numpy()
        assert [frame_index_of(f) for f in got] == [0, 7, 18, 29]
    assert np.asarray(got).shape == (4, 48, 64, 3)


def test_an_apng_with_transparency_is_read_over_white_at_any_size(tmp_path):
    """A sticker's transparency, as a browser shows it: white, in the model's frames (scaled in the decoder too,
    where the stored colour must not bleed into the edges) and in a moment's exported clip."""
    from tests.videos import transparent_frames, write_rgba
    from vtr.data.cut import export_clips
    from vtr.data.video import open_video

    path = write_rgba(tmp_path / "sticker.apng", transparent_frames(10))
    with open_video(str(path)) as reader:
        full = reader.get_frames([0, 9]).numpy()
        small = reader.get_frames([0, 9], size=(32, 24)).numpy()
    assert (full[:, 2, 60] == 255).all() and np.abs(full[0, 24, 10].astype(int) - (200, 30, 30)).max() <= 3
    assert (small[..., 1] <= np.minimum(small[..., 0], small[..., 2]).astype(int) + 3).all()  # no green anywhere
    ((clip, error),) = export_clips([(str(path), 0.0, 1.0)], tmp_path / "out")
    assert error is None
    with av.open(clip) as c:
        assert c.streams.video[0].codec_context.colorspace == 1  # its RGB was made BT.709, and the stream says so
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert first[2, 60].min() >= 245  # white (after H.264), not green
    assert np.abs(first[24, 10].astype(int) - (200, 30, 30)).max() <= 12  # red, as BT.709 decodes it (H.264's loss)
