"""Motion photos (vtr.data.motion_photo): the video a phone keeps inside its photo is found in each layout phones
write, read by the same readers, cuts and probes as a video file, and a photo without one stays a photo."""

import io

import av
import numpy as np
import pytest

from tests.data.test_cut import shown_frames
from tests.videos import (frame_index_of, indexed_frames, motion_photo_xmp, samsung_trailer, with_xmp, write_jpeg,
                          write_motion_photo, write_video)
from vtr.data.cut import cut_clip
from vtr.data.image import read_image
from vtr.data.motion_photo import embedded_video, video_span
from vtr.data.sources import ffmpeg_input
from vtr.data.video import decord_unsuited, open_video

PHOTO = np.full((64, 96, 3), (200, 120, 40), np.uint8)
LAYOUTS = {"PXL_20240501_101112345.MP.jpg": "google", "PXL_20240501_101113456.MP.jpg": "google-gainmap",
           "MVIMG_20190501_101112.jpg": "microvideo", "20240501_101112.jpg": "samsung",
           "20250501_101112.jpg": "samsung-xmp", "20240501_101113.heic": "heic-mpvd",
           "PXL_20240501_101114567.MP.HEIC": "heic"}


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_video_in_a_motion_photo_is_read_as_a_video_file(tmp_path, name):
    """Each layout: the span found is the MP4's bytes, and the readers decode its frames in order (PyAV: decord
    cannot open a range of a file, and is told so)."""
    frames = indexed_frames(20, 64, 96)
    path = write_motion_photo(tmp_path / name, PHOTO, frames, LAYOUTS[name])
    mp4 = write_video(tmp_path / "alone.mp4", frames, fps=10).read_bytes()
    start, end = embedded_video(path)
    assert path.read_bytes()[start:end] == mp4
    with open_video(str(path)) as reader:
        assert (reader.backend, reader.num_frames, reader.fps) == ("pyav", 20, 10.0)
        got = reader.get_frames(list(range(0, 20, 3)))
    assert [frame_index_of(f) for f in got] == list(range(0, 20, 3))
    assert decord_unsuited(str(path)).startswith("a motion photo's video")


@pytest.mark.parametrize("name", ["PXL_20240501_101112345.MP.jpg", "20240501_101112.jpg"])
def test_a_motion_photo_is_read_as_its_photo_where_a_picture_is_asked_for(tmp_path, name):
    """A motion photo given as an example (or packed in a shard) is the photo people see. Before, FFmpeg's probe of
    a small JPEG read on into the video and recognised neither: "Invalid data found when processing input"."""
    path = write_motion_photo(tmp_path / name, PHOTO, indexed_frames(20, 64, 96), LAYOUTS[name])
    plain = read_image(write_jpeg(tmp_path / "plain.jpg", PHOTO))
    assert np.array_equal(read_image(str(path)), plain)
    assert np.array_equal(read_image(path.read_bytes()), plain)


def test_a_moment_of_a_motion_photo_is_cut_into_a_clip_of_its_own(tmp_path):
    """The app's preview and `vtr search --export` cut the video out of the photo, from the second asked."""
    path = write_motion_photo(tmp_path / "PXL_1.MP.jpg", PHOTO, indexed_frames(30, 64, 96), "samsung")
    out = tmp_path / "clip.mp4"
    cut_clip(str(path), 1.0, 2.0, out)
    got = shown_frames(out)
    assert got[0] == 10 and got[-1] == 19 and len(got) == 10


def test_photos_without_a_video_are_photos(tmp_path):
    """A plain photo; one whose video an editor dropped and whose XMP it kept; one whose XMP says it is no motion
    photo (``MotionPhoto="0"``: a video after it is not shown); trailing bytes that merely end in ``SEFT``; a damaged
    XMP; a video extension. None of these has a video, and none raises."""
    frames = indexed_frames(10, 64, 96)
    jpeg = write_jpeg(tmp_path / "p.jpg", PHOTO).read_bytes()
    mp4 = write_video(tmp_path / "v.mp4", frames, fps=10).read_bytes()
    cases = {
        "plain.jpg": jpeg,
        "edited.jpg": with_xmp(jpeg, motion_photo_xmp(len(mp4))),
        "turned_off.jpg": with_xmp(jpeg, motion_photo_xmp(len(mp4), flag=0)) + mp4,
        "seft.jpg": jpeg + b"\0" * 40 + (20).to_bytes(4, "little") + b"SEFT",
        "samsung_cut.jpg": jpeg + samsung_trailer(mp4)[len(mp4) // 2:],  # its directory points before the file
        "broken_xmp.jpg": with_xmp(jpeg, motion_photo_xmp(len(mp4))[:-40]) + mp4,
        "wrong_length.jpg": with_xmp(jpeg, motion_photo_xmp(len(mp4) + 7)) + mp4,
        "truncated.jpg": jpeg[:30],
        "empty.jpg": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert embedded_video(tmp_path / name) is None, name
        assert ffmpeg_input(tmp_path / name) == str(tmp_path / name)
    renamed = tmp_path / "clip.mp4"
    renamed.write_bytes(write_motion_photo(tmp_path / "m.jpg", PHOTO, frames).read_bytes())
    assert embedded_video(renamed) is None  # only photos' names are read as photos
    assert embedded_video(tmp_path / "missing.jpg") is None


def test_an_xmp_written_with_elements_and_without_the_flag_is_read(tmp_path):
    """RDF writes a property as an attribute or as an element; an editor may drop ``GCamera:MotionPhoto`` and keep
    the directory. Both still locate the video."""
    frames = indexed_frames(10, 64, 96)
    jpeg = write_jpeg(tmp_path / "p.jpg", PHOTO).read_bytes()
    mp4 = write_video(tmp_path / "v.mp4", frames, fps=10).read_bytes()
    unflagged = tmp_path / "unflagged.jpg"
    unflagged.write_bytes(with_xmp(jpeg, motion_photo_xmp(len(mp4), flag=None)) + mp4)
    assert unflagged.read_bytes()[slice(*embedded_video(unflagged))] == mp4
    as_elements = motion_photo_xmp(len(mp4)).replace(
        b'<Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" ' + f'Item:Length="{len(mp4)}"'.encode()
        + b' Item:Padding="0"/>',
        b"<Container:Item><Item:Mime>video/mp4</Item:Mime><Item:Semantic>MotionPhoto</Item:Semantic>"
        + f"<Item:Length>{len(mp4)}</Item:Length></Container:Item>".encode())
    assert b"<Item:Length>" in as_elements
    elements = tmp_path / "elements.jpg"
    elements.write_bytes(with_xmp(jpeg, as_elements) + mp4)
    assert elements.read_bytes()[slice(*embedded_video(elements))] == mp4


def test_ffmpeg_opens_a_motion_photo_whose_path_holds_commas_and_colons(tmp_path):
    """The ``subfile`` URL's options end at its first ``,,:``; whatever the path holds after it is the path."""
    folder = tmp_path / "trip, day 2: beach,,:x"
    folder.mkdir()
    path = write_motion_photo(folder / "PXL_1.MP.jpg", PHOTO, indexed_frames(10, 64, 96))
    with av.open(ffmpeg_input(path)) as container:
        assert [frame_index_of(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == list(range(10))


def test_damaged_photos_never_raise(tmp_path):
    """A photo cut short or with bytes overwritten anywhere (a failing card, an interrupted copy) gives a span inside
    the file or none, never an exception: the scan reads every photo of a camera folder."""
    rng = np.random.default_rng(0)
    frames = indexed_frames(10, 64, 96)
    sources = [write_motion_photo(tmp_path / f"m{i}.{'heic' if layout.startswith('heic') else 'jpg'}", PHOTO, frames,
                                  layout).read_bytes() for i, layout in enumerate(sorted(set(LAYOUTS.values())))]
    sources.append(b"\xff\xd8" + b"\xff" * 5000)  # fill bytes without end
    for data in sources:
        for _ in range(40):
            copy = bytearray(data[:int(rng.integers(1, len(data) + 1))])
            for at in rng.integers(0, len(copy), size=int(rng.integers(0, 4))):
                copy[at] = int(rng.integers(0, 256))
            span = video_span(io.BytesIO(bytes(copy)), len(copy))
            assert span is None or 0 <= span[0] < span[1] <= len(copy)
