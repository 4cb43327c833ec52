"""Animated WebP (vtr.data.webp): the container read, each frame's image decoded by FFmpeg as a still, the canvas drawn
as RFC 9649 defines it, and the frames given to every reader as an APNG (vtr.data.sources.ffmpeg_input). Before,
FFmpeg's "Invalid data found when processing input" was all vtr could say of a chat's animated sticker."""

import numpy as np
import pytest

from tests.videos import frame_index_of, indexed_frames, riff_chunk, write_animated_webp, write_webp_animation
from vtr.data.animation import is_animation
from vtr.data.image import read_image
from vtr.data.video import open_video
from vtr.data.webp import animation_frames, composited_frames, read_animation
from vtr.errors import VideoReadError

RED, GREEN = (255, 0, 0, 255), (0, 255, 0, 255)
HALF_BLUE, HALF_WHITE = (0, 0, 255, 128), (255, 255, 255, 128)


def solid(height, width, rgba):
    return np.broadcast_to(np.array(rgba, np.uint8), (height, width, 4)).copy()


def rules(path):
    """A 16x16 animation that uses each of the format's rules once (offsets, blending, disposal, a 0 ms frame,
    lossless and lossy images, with and without an ALPH chunk)."""
    return write_webp_animation(path, 16, 16, [
        (0, 0, solid(16, 16, RED), 100, False, False),  # the whole canvas
        (4, 4, solid(8, 8, HALF_BLUE), 40, True, True),  # blended over the red; cleared once shown
        (0, 0, solid(4, 4, GREEN), 0, True, False, False),  # lossy (VP8 alone); 0 ms: shown for 100 ms
        (4, 4, solid(8, 8, HALF_BLUE), 250, False, False),  # replaces the cleared square: half transparent
        (8, 8, solid(8, 8, HALF_WHITE), 70, True, False, False),  # lossy with ALPH: over blue and over red
    ])


def test_each_frame_is_drawn_on_the_canvas_as_the_format_says(tmp_path):
    """The canvases, worked out by hand from the rules: blending is "over" with straight alpha, disposal clears a
    frame's rectangle to transparent after it was shown, a frame that does not blend replaces its rectangle."""
    data = rules(tmp_path / "rules.webp").read_bytes()
    width, height, frames = read_animation(data)
    assert (width, height) == (16, 16)
    assert [(f.x, f.y, f.width, f.height, f.blend, f.dispose) for f in frames] == [
        (0, 0, 16, 16, False, False), (4, 4, 8, 8, True, True), (0, 0, 4, 4, True, False),
        (4, 4, 8, 8, False, False), (8, 8, 8, 8, True, False)]
    drawn = [(canvas.copy(), ms) for canvas, ms in composited_frames(data)]
    assert [ms for _, ms in drawn] == [100, 40, 100, 250, 70]
    canvases = [c.astype(int) for c, _ in drawn]
    assert (canvases[0] == RED).all()
    # half blue over red: red 255 (1 - 128/255) = 127, blue 255 128/255 = 128, opaque
    assert (canvases[1][4:12, 4:12] == (127, 0, 128, 255)).all() and (canvases[1][:4] == RED).all()
    assert np.abs(canvases[2][:4, :4] - GREEN).max() <= 2  # lossy
    assert (canvases[2][4:12, 4:12] == 0).all() and (canvases[2][12:, :] == RED).all()  # the blue square cleared
    assert (canvases[3][4:12, 4:12] == HALF_BLUE).all()  # replaced: as transparent as the frame
    # half white over half blue: alpha 1/2 + 1/2 (1 - 1/2) = 3/4 (192), red and green 255 (1/2) / (3/4) = 170, blue
    # 255; over red: opaque, green and blue 128. The white's image is lossy: its alpha may be 129
    assert np.abs(canvases[4][8:12, 8:12] - (170, 170, 255, 192)).max() <= 2
    assert np.abs(canvases[4][12:, 8:] - (255, 128, 128, 255)).max() <= 2
    assert np.abs(canvases[4][8:12, 12:] - (255, 128, 128, 255)).max() <= 2
    assert (canvases[4][4:8, 4:12] == HALF_BLUE).all() and (canvases[4][:4, :4] == canvases[2][:4, :4]).all()


@pytest.mark.parametrize("width", [18, 20, 26])
def test_a_lossy_frame_keeps_its_last_columns_whatever_its_width(tmp_path, width):
    """FFmpeg 8 converts a lossy image (4:2:0 YUV) 16k + 1 to 16k + 4 wide to RGBA with wrong last columns (see
    vtr.data.image.straight_rgba); a frame's rectangle can be any width. Compared with libwebp's own decoder, these
    were the only pixels whose transparency differed."""
    red = solid(10, width, (200, 30, 30, 255))
    red[:, :2, 3] = 0  # a transparent edge: the image carries an ALPH chunk
    path = write_webp_animation(tmp_path / "edge.webp", width, 10, [(0, 0, red, 100, False, False, False),
                                                                   (0, 0, red, 100, False, False, False)])
    canvas, _ = next(composited_frames(path.read_bytes()))
    assert (canvas[:, :2, 3] == 0).all() and (canvas[:, 2:, 3] == 255).all()
    assert np.abs(canvas[:, 4:, :3].astype(int) - (200, 30, 30)).max() <= 12


def test_an_animated_webp_is_read_as_a_video_with_each_frame_at_its_time(tmp_path):
    """What libwebp's animation encoder writes (each frame only the rectangle that changed, drawn over the last) reads
    back as the frames it was given, from a path and from a shard's bytes, with each frame at its own time (the
    0 ms frame shown for 100 ms, as browsers show it)."""
    moving = indexed_frames(30)
    moving[:, 24:] = moving[0, 24:]  # only the top half changes
    path = write_animated_webp(tmp_path / "sticker.webp", moving, lossless=True)
    width, height, frames = read_animation(path.read_bytes())
    assert (width, height, len(frames)) == (64, 48, 30)
    assert any(f.height < 48 for f in frames)  # the encoder wrote rectangles: the drawing is tested
    for source in (str(path), path.read_bytes()):
        with open_video(source, name="sticker.webp") as reader:
            clock = reader.clock()
            assert reader.backend == "pyav" and (clock.num_frames, clock.duration) == (30, pytest.approx(3.0))
            got = reader.get_frames([0, 7, 18, 29]).numpy()
        assert [frame_index_of(f) for f in got] == [0, 7, 18, 29] and got.shape == (4, 48, 64, 3)
    with open_video(str(rules(tmp_path / "rules.webp"))) as reader:
        clock = reader.clock()
        assert clock.times.tolist() == pytest.approx([0, 0.1, 0.14, 0.24, 0.49])
        assert clock.duration == pytest.approx(0.56)


def test_transparency_is_shown_over_white_and_the_first_frame_is_the_picture(tmp_path):
    """Where the canvas is transparent (cleared, or never drawn), a frame is white, as a chat shows a sticker; an
    animated WebP read as a picture (an example, a shard's image) is its first frame."""
    path = rules(tmp_path / "rules.webp")
    with open_video(str(path)) as reader:
        frames = reader.get_frames(range(5)).numpy().astype(int)
    assert (frames[2][5:11, 5:11] == 255).all()  # cleared: white
    assert (frames[3][5:11, 5:11] == (127, 127, 255)).all()  # half blue over white
    assert (read_image(path) == (255, 0, 0)).all()
    one = write_webp_animation(tmp_path / "one.webp", 8, 8, [(2, 2, solid(4, 4, RED), 100, True, False)])
    assert not is_animation(one)  # one frame: a picture (red on white), which FFmpeg alone cannot decode
    picture = read_image(one)
    assert (picture[2:6, 2:6] == (255, 0, 0)).all() and (picture[:2] == 255).all()


def test_frames_are_counted_from_the_chunk_headers(tmp_path):
    path = write_animated_webp(tmp_path / "sticker.webp", indexed_frames(30))
    with open(path, "rb") as f:
        assert animation_frames(f, stop=100) == 30
    with open(path, "rb") as f:
        assert animation_frames(f) == 2 and f.tell() < path.stat().st_size // 2  # stops at the second frame
    still = write_webp_animation(tmp_path / "one.webp", 8, 8, [(0, 0, solid(8, 8, RED), 100, True, False)])
    with open(still, "rb") as f:
        assert animation_frames(f) == 1
    assert is_animation(path) and is_animation(path.read_bytes())


def _damaged(tmp_path):
    good = rules(tmp_path / "rules.webp").read_bytes()
    anmf = good.index(b"ANMF")
    outside = bytearray(good)
    outside[anmf + 8:anmf + 11] = (2).to_bytes(3, "little")  # the 16-wide first frame moved 4 to the right
    empty_frame = riff_chunk(b"ANMF", bytes(15) + b"\0")  # a frame header and no image
    no_image = good[:12] + good[12:anmf] + empty_frame
    no_image = no_image[:4] + (len(no_image) - 8).to_bytes(4, "little") + no_image[8:]
    huge = bytearray(good)
    vp8x = good.index(b"VP8X")
    huge[vp8x + 12:vp8x + 18] = (30000 - 1).to_bytes(3, "little") * 2  # a 30000x30000 canvas: 3.6 GB to draw on
    inner = bytearray(good)
    assert inner[anmf + 24:anmf + 28] == b"VP8L"
    inner[anmf + 28:anmf + 32] = (1 << 20).to_bytes(4, "little")  # its image longer than the frame holding it
    return {"lies outside the 16x16 canvas": bytes(outside), "frame 0 holds no image": no_image,
            "runs past the end of the file \\(cut short\\)": good[:anmf + 30],  # in its first frame
            "'VP8L' chunk runs past the end of frame 0$": bytes(inner),
            "its canvas of 30000x30000 is larger than any picture FFmpeg decodes": bytes(huge)}


def test_a_damaged_animated_webp_says_what_is_wrong(tmp_path):
    for reason, data in _damaged(tmp_path).items():
        with pytest.raises(ValueError, match=reason):
            list(composited_frames(data))
        path = tmp_path / "damaged.webp"
        path.write_bytes(data)
        with pytest.raises(VideoReadError, match=f"a damaged animated WebP: .*{reason}"):
            open_video(str(path))


def test_a_file_cut_short_reads_the_frames_it_holds_whole(tmp_path):
    """An interrupted copy keeps its first frames, as a GIF cut short does (FFmpeg reads a GIF's frames up to the
    cut); before, nothing of it was read."""
    data = rules(tmp_path / "rules.webp").read_bytes()
    last = data.rindex(b"ANMF")
    path = tmp_path / "cut.webp"
    path.write_bytes(data[:last + 20])  # cut in the fifth frame
    assert len(read_animation(path.read_bytes())[2]) == 4
    with open_video(str(path)) as reader:
        assert reader.clock().times.tolist() == pytest.approx([0, 0.1, 0.14, 0.24])
        assert (reader.get_frames([3]).numpy()[0][5:11, 5:11] == (127, 127, 255)).all()


def test_a_still_webp_is_no_animation(tmp_path):
    from tests.videos import write_video

    still = write_video(tmp_path / "photo.webp", indexed_frames(1), fps=1, codec="libwebp", pix_fmt="yuv420p")
    assert not is_animation(still)
    with open(still, "rb") as f:
        assert animation_frames(f) == 0
    with pytest.raises(ValueError, match="a still WebP"):
        read_animation(still.read_bytes())
    for data in (b"", b"RIFF", b"RIFF\xff\xff\xff\x7fWEBPANMF", b"GIF89a"):
        assert not is_animation(data)
