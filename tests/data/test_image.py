"""Still images are read upright: a photo's EXIF orientation is applied as viewers apply it."""

import numpy as np
import pytest

from tests.videos import exif_block, write_photo
from vtr.data import image as image_module
from vtr.data.image import exif_orientation, read_image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
H, W, B = 48, 64, 16  # a block of B pixels in two corners of the stored picture


def stored_picture() -> np.ndarray:
    """As the camera stored it: red where its first row meets its first column, green at the first row's end."""
    s = np.full((H, W, 3), BLUE, np.uint8)
    s[:B, :B] = RED
    s[:B, -B:] = GREEN
    return s


# The EXIF standard's table: where the stored picture's first row and first column are on screen.
FIRST_ROW_AND_COLUMN = {1: ("top", "left"), 2: ("top", "right"), 3: ("bottom", "right"), 4: ("bottom", "left"),
                        5: ("left", "top"), 6: ("right", "top"), 7: ("right", "bottom"), 8: ("left", "bottom")}
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def corner_colour(rgb: np.ndarray, sides: set[str]) -> np.ndarray:
    rows = slice(0, B) if "top" in sides else slice(rgb.shape[0] - B, None)
    cols = slice(0, B) if "left" in sides else slice(rgb.shape[1] - B, None)
    return rgb[rows, cols].reshape(-1, 3).mean(0)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_shown_as_the_exif_standard_says(tmp_path, ext, orientation):
    path = write_photo(tmp_path / f"photo{ext}", stored_picture(), orientation, "MM" if orientation % 2 else "II")
    assert exif_orientation(path.read_bytes()) == orientation
    shown = read_image(path)
    assert shown.dtype == np.uint8 and shown.flags.c_contiguous
    assert shown.shape == ((W, H, 3) if orientation >= 5 else (H, W, 3))
    row, column = FIRST_ROW_AND_COLUMN[orientation]
    tol = 0 if ext == ".png" else 12  # lossless, or what the lossy codecs keep of a flat block
    # the stored first pixel is where its row and column are; the end of its first row is along the same edge
    assert np.abs(corner_colour(shown, {row, column}) - RED).max() <= tol
    assert np.abs(corner_colour(shown, {row, OPPOSITE[column]}) - GREEN).max() <= tol
    assert np.abs(corner_colour(shown, {OPPOSITE[row], OPPOSITE[column]}) - BLUE).max() <= tol
    assert np.array_equal(read_image(path.read_bytes()), shown)  # bytes as a training shard holds them


def test_a_picture_without_orientation_is_read_as_stored(tmp_path):
    stored = stored_picture()
    path = write_photo(tmp_path / "plain.png", stored)
    assert exif_orientation(path.read_bytes()) is None
    assert np.array_equal(read_image(path), stored)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_rotation_ffmpeg_reports_turns_a_picture_whose_exif_is_not_read_here(tmp_path, monkeypatch, orientation):
    """Formats whose orientation is not an EXIF block read here (an AVIF's or a HEIF's rotation box) are turned by
    the rotation FFmpeg reports, which is the same for the orientations that do not mirror."""
    path = write_photo(tmp_path / "photo.png", stored_picture(), orientation)
    expected = read_image(path)
    monkeypatch.setattr(image_module, "exif_orientation", lambda data: None)
    assert np.array_equal(read_image(path), expected)


@pytest.mark.parametrize("data", [
    b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*",  # a JPEG's EXIF cut short
    b"\xff\xd8\xff\xe1\x00\x20Exif\x00\x00MM\x00*\x00\x00\xff\xff\x00\x05",  # a directory past the end
    b"\xff\xd8\xff\xe1\x00\x20Exif\x00\x00XX\x00*\x00\x00\x00\x08",  # no byte order
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04eXIf",  # a PNG chunk cut short
    b"RIFF\x00\x00\x00\x00WEBPEXIF\xff\xff\xff\x7f",  # a WebP chunk longer than the file
    b"\xff\xd8\xff\xe1\x00\x2aExif\x00\x00" + exif_block(9),  # a value the standard does not define
    b"",
])
def test_damaged_or_odd_exif_is_no_orientation(data):
    assert exif_orientation(data) is None


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_an_hdr_photo_is_tone_mapped_as_hdr_video_is(tmp_path, transfer):
    """An HDR AVIF (PQ or HLG) comes out as its SDR colours; FFmpeg's plain conversion gave them dark or dull."""
    import av

    from tests.data.test_hdr import CHART, chart_frames, patches
    from tests.videos import write_hdr_photo

    path = write_hdr_photo(tmp_path / f"{transfer}.avif", chart_frames(1)[0], transfer)
    with av.open(str(path)) as container:
        plain = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(patches(plain) - CHART).max() > 30  # the photo shows the fault
    assert np.abs(patches(read_image(path)) - CHART).max() <= 6


def heic_picture() -> np.ndarray:
    """A 120 x 200 picture whose every region differs: a gradient, a red block at the top left."""
    yy, xx = np.mgrid[0:120, 0:200]
    picture = np.stack([xx * 255 // 199, yy * 255 // 119, np.full_like(xx, 60)], -1).astype(np.uint8)
    picture[:40, :60] = RED
    return picture


@pytest.mark.parametrize("tile, turns", [(None, 0), (None, 1), (64, 0), (64, 3)])
def test_a_heic_photo_is_read_whole_and_upright(tmp_path, tile, turns):
    """An iPhone's HEIC is a grid of tiles, each an image of its own, and its rotation a property of the grid:
    FFmpeg gives the tiles as streams, so the first stream was one tile, a corner of the photo. The grid is read from
    the file and its tiles put together, cropped and turned (one image without a grid: as FFmpeg reads it)."""
    import av

    from tests.videos import write_heif
    from vtr.data.image import heif_grid

    picture = heic_picture()
    path = write_heif(tmp_path / "IMG_0001.HEIC", picture, tile=tile, quarter_turns=turns)
    shown = read_image(path)
    want = np.rot90(picture, turns)
    assert shown.shape == want.shape and np.abs(shown.astype(int) - want).mean() <= 4
    grid = heif_grid(path.read_bytes())
    if tile is None:
        assert grid is None
    else:  # 2 x 4 tiles of 64 for 120 x 200: the last row and column padded, the grid's size crops them
        assert (grid["rows"], grid["columns"], grid["width"], grid["height"]) == (2, 4, 200, 120)
        assert grid["tiles"] == list(range(1, 9)) and grid["transforms"] == ([("irot", turns)] if turns else [])
        with av.open(str(path)) as c:  # what FFmpeg's first stream is: the top left tile
            assert next(c.decode(c.streams.best("video"))).to_ndarray(format="rgb24").shape == (64, 64, 3)


def test_files_that_are_not_a_heic_grid_have_none(tmp_path):
    from tests.videos import write_heif
    from vtr.data.image import heif_grid

    whole = write_heif(tmp_path / "grid.heic", heic_picture(), tile=64).read_bytes()
    assert heif_grid(whole) is not None
    png = write_photo(tmp_path / "p.png", heic_picture()).read_bytes()
    for data in (png, b"", whole[:40], whole[:len(whole) // 4]):  # a photo cut short in its grid's description
        assert heif_grid(data) is None
    tiles_cut = whole[:len(whole) - 4000]  # the grid whole, its tiles cut short: an error, as any damaged photo's
    assert heif_grid(tiles_cut) is not None
    with pytest.raises(ValueError):  # FFmpeg's InvalidDataError is one
        read_image(tiles_cut)


@pytest.mark.parametrize("name", ["sticker.webp", "logo.png", "pngquant.png"])
def test_a_transparent_picture_is_read_over_white_as_a_page_shows_it(tmp_path, name):
    """A chat's sticker (WebP) or a logo (PNG, also one with a palette, as pngquant writes it) with transparency:
    its transparent pixels are white, as a browser shows the picture on a page; a half-transparent one is blended.
    Before, they were the colour the file stores under them, which no viewer shows: green here."""
    from tests.videos import transparent_frames, write_palette_png, write_rgba

    rgba = transparent_frames(1)[0]
    if name == "pngquant.png":  # an 8-bit palette whose entries carry alpha: FFmpeg decodes it as pal8
        path = write_palette_png(tmp_path / name, rgba)
    else:
        path = write_rgba(tmp_path / name, rgba[None])
    rgb = read_image(path)
    assert rgb.shape == (48, 64, 3)
    assert (rgb[2, 60] == 255).all()  # transparent: white, not the stored green
    assert np.abs(rgb[24, 10].astype(int) - (200, 30, 30)).max() <= 3  # opaque: its own colour
    assert np.abs(rgb[-2, 30].astype(int) - (127, 127, 255)).max() <= 3  # half-transparent blue over white


@pytest.mark.parametrize("width", [18, 34, 24])
def test_a_lossy_sticker_keeps_its_last_columns_whatever_its_width(tmp_path, width):
    """A lossy WebP with transparency decodes as 4:2:0 YUV with an alpha plane, and FFmpeg 8's conversion of that to
    RGBA writes wrong pixels in the last 1-4 columns of a picture 16k + 1 to 16k + 4 wide (its colours shifted by a
    channel, its alpha garbage: here the red edge came out white). Its conversion to RGB is right: the colour
    comes from that and the alpha from the plane."""
    import av

    rgba = np.zeros((16, width, 4), np.uint8)
    rgba[:, :6] = (0, 255, 0, 0)  # transparent, green stored under it
    rgba[:, 6:] = (200, 30, 30, 255)  # opaque red up to the right edge
    path = tmp_path / "sticker.webp"
    with av.open(str(path), "w", format="webp") as out:
        stream = out.add_stream("libwebp", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, 16, "yuva420p"  # lossy, alpha in an ALPH chunk
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")), *stream.encode()]:
            out.mux(packet)
    assert b"ALPH" in path.read_bytes() and b"VP8 " in path.read_bytes()
    rgb = read_image(path).astype(int)
    assert (rgb[:, :4] == 255).all()  # transparent: white
    assert np.abs(rgb[:, 8:] - (200, 30, 30)).max() <= 12, np.abs(rgb[:, 8:] - (200, 30, 30)).max(axis=(0, 2))


def test_transparency_is_blended_over_white_exactly_for_every_colour_and_alpha():
    """The shifts that stand for the division by 255 round as the exact blend does, for all 65,536 pairs."""
    from vtr.data.image import over_background

    c, a = np.meshgrid(np.arange(256), np.arange(256))
    rgba = np.stack([c, 255 - c, c // 2, a], -1).astype(np.uint8)
    alpha = a[..., None].astype(np.float64)
    exact = np.round((rgba[..., :3] * alpha + 255 * (255 - alpha)) / 255).astype(np.uint8)
    assert np.array_equal(over_background(rgba), exact)


def test_a_tiff_ffmpeg_decodes_blank_or_not_at_all_is_refused_saying_why(tmp_path):
    """A TIFF whose picture is a JPEG (a scanner's or an editor's "JPEG" TIFF): FFmpeg decodes JPEG only in a camera
    raw (DNG) and gave this one as a blank picture, without an error, which a search took as its example. One
    compressed in a way FFmpeg does not know (Zstandard) was "not an image file, or it is damaged". Both now say
    what they are and what to do; an uncompressed TIFF reads as before."""
    import av

    from tests.videos import write_tiff
    from vtr.data.image import tiff_compression

    picture = stored_picture()
    plain = write_tiff(tmp_path / "plain.tif", picture)
    assert tiff_compression(plain.read_bytes()) == 1
    assert np.array_equal(read_image(plain), picture)
    jpeg = write_tiff(tmp_path / "scan.tif", picture, compression=7)
    with av.open(str(jpeg)) as c:  # why it is refused: FFmpeg's picture of it is blank, its colours gone
        blank = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.ptp(blank.reshape(-1, 3), axis=0).max() == 0
    with pytest.raises(ValueError, match="compressed with JPEG, which FFmpeg does not decode outside a camera raw"):
        read_image(jpeg)
    with pytest.raises(ValueError, match="compressed with Zstandard, which FFmpeg does not decode: save it as"):
        read_image(write_tiff(tmp_path / "zstd.tif", picture, compression=50000))
    # a DNG's JPEG is FFmpeg's to read; and none of this is a TIFF
    assert tiff_compression(write_tiff(tmp_path / "raw.dng", picture, compression=7, dng=True).read_bytes()) is None
    assert tiff_compression(write_photo(tmp_path / "photo.jpg", picture).read_bytes()) is None
