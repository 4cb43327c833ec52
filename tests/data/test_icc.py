"""Photos carrying an ICC profile are read in sRGB, as a colour-managed viewer shows them (vtr.data.icc); the reference
is Little CMS (Pillow's ImageCms), with the relative colorimetric intent browsers use."""

import io

import av
import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.profiles import ADOBE_GAMMA, ADOBE_RGB, DISPLAY_P3, SRGB, SRGB_PARA, rgb_profile
from tests.videos import write_heif, write_webp_animation
from vtr.data import icc
from vtr.data.image import embedded_icc, read_image


def picture() -> np.ndarray:
    """Random colours, saturated ones among them, and a band of each primary and grey (even sizes, for HEVC)."""
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128), (0, 0, 0)]):
        rgb[:8, 8 * i:8 * i + 8] = colour
    return rgb


def lcms_srgb(rgb: np.ndarray, profile: bytes) -> np.ndarray:
    """``rgb`` in the space of ``profile`` converted to sRGB by Little CMS (no optimisation: its exact pipeline)."""
    transform = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                        ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")), "RGB", "RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                        flags=ImageCms.Flags.NOOPTIMIZE | ImageCms.Flags.HIGHRESPRECALC)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(rgb), transform))


def stored(path) -> np.ndarray:
    """The file's pixels as FFmpeg decodes them, whatever its profile says (what vtr read before)."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def write(path, rgb: np.ndarray, profile: bytes | None) -> None:
    fmt = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF"}[path.suffix]
    options = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(rgb).save(path, fmt, icc_profile=profile, **options)


@pytest.mark.parametrize("name", ["p3.jpg", "p3.png", "p3.webp", "p3.tif", "p3.heic", "grid.heic", "tiles.heic"])
def test_a_display_p3_photo_is_read_in_srgb_as_a_colour_managed_viewer_shows_it(tmp_path, name):
    profile = rgb_profile(DISPLAY_P3, SRGB_PARA, version=4)
    path = tmp_path / name
    if path.suffix == ".heic":
        write_heif(path, picture(), tile=None if name == "p3.heic" else 32, icc=profile,
                   icc_on="tiles" if name == "tiles.heic" else "primary")
    else:
        write(path, picture(), profile)
    assert embedded_icc(path.read_bytes()) == profile
    rgb = read_image(path)
    as_stored = stored(path) if path.suffix != ".heic" else read_image_without_profile(path, profile)
    expected = lcms_srgb(as_stored, profile)
    assert np.abs(rgb.astype(int) - expected).max() <= 1
    assert np.abs(rgb.astype(int) - as_stored).max() > 40  # saturated colours move (what was read before)


def read_image_without_profile(path, profile: bytes) -> np.ndarray:
    """A HEIC's whole picture as decoded, without its profile applied: the same file with the profile's bytes made
    unreadable (its size unchanged, so every box stays in place)."""
    data = path.read_bytes()
    plain = path.with_name("plain" + path.name)
    plain.write_bytes(data.replace(profile, b"\0" * len(profile)))
    return read_image(plain)


@pytest.mark.parametrize("curve", [ADOBE_GAMMA, ("table", 1024), ("table", 2), ("identity",), ("para", 0, (1.8,)),
                                   ("para", 1, (2.2, 1.0, 0.0)), ("para", 2, (2.2, 0.9, 0.1, 0.02)),
                                   ("para", 4, (2.4, 0.95, 0.05, 0.08, 0.04, 0.01, 0.005))])
@pytest.mark.parametrize("version", [2, 4])
def test_every_kind_of_tone_curve_converts_as_little_cms_converts_it(curve, version):
    profile = rgb_profile(ADOBE_RGB, curve, version=version, description="Adobe RGB (1998)")
    rgb = picture()
    transform = icc.srgb_transform(profile)
    assert transform is not None
    assert np.abs(icc.to_srgb(rgb, transform).astype(int) - lcms_srgb(rgb, profile)).max() <= 1


def test_an_adobe_rgb_camera_jpeg_split_over_several_segments_is_read_in_srgb(tmp_path):
    """A profile larger than a JPEG segment (65,519 bytes of it) is put together from its APP2 segments in order."""
    profile = rgb_profile(ADOBE_RGB, ADOBE_GAMMA, version=2, description="Adobe RGB (1998)", padding=150_000)
    path = tmp_path / "DSC_0042.jpg"
    write(path, picture(), profile)
    assert path.read_bytes().count(b"ICC_PROFILE\0") == 3
    assert embedded_icc(path.read_bytes()) == profile
    assert np.abs(read_image(path).astype(int) - lcms_srgb(stored(path), profile)).max() <= 1


@pytest.mark.parametrize("profile", [
    ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),  # Little CMS's own
    rgb_profile(SRGB, ("table", 1024), version=2, description="sRGB IEC61966-2.1"),  # HP's: rounded colorants
    rgb_profile(SRGB, SRGB_PARA, version=4, description="sRGB IEC61966-2.1"),
], ids=["lcms", "hp-v2-table", "v4-para"])  # named: Little CMS dates its profile, and pytest-xdist's workers collected
# it a second apart with different ids ("Different tests were collected between gw0 and gw1")
def test_srgb_however_its_profile_writes_it_is_read_as_stored(tmp_path, profile):
    assert icc.parse(profile) is not None and icc.srgb_transform(profile) is None
    path = tmp_path / "s.png"
    write(path, picture(), profile)
    assert np.array_equal(read_image(path), stored(path))


@pytest.mark.parametrize("profile", [
    ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),  # not RGB
    rgb_profile(space=b"GRAY"),
    rgb_profile(pcs=b"Lab "),  # colorants mean nothing with a Lab connection space
    rgb_profile()[:300],  # cut short: its tags point past its end
    rgb_profile(colorants=((0.5, 0.2, 0.0), (0.5, 0.2, 0.0), (0.1, 0.1, 0.7))),  # two equal colorants: no matrix
    b"not a profile at all" * 10,
], ids=["lcms-lab", "gray", "lab-pcs", "cut-short", "equal-colorants", "not-a-profile"])
def test_a_profile_that_is_not_an_rgb_matrix_profile_leaves_the_picture_as_stored(tmp_path, profile):
    assert icc.srgb_transform(profile) is None
    path = tmp_path / "odd.png"
    write(path, picture(), profile)
    assert np.array_equal(read_image(path), stored(path))


def test_a_jpeg_whose_profile_lost_a_segment_is_read_as_stored(tmp_path):
    profile = rgb_profile(padding=100_000)
    path = tmp_path / "cut.jpg"
    write(path, picture(), profile)
    data = path.read_bytes()
    second = data.index(b"ICC_PROFILE\0\x02")
    length = int.from_bytes(data[second - 2:second], "big")
    damaged = data[:second - 4] + data[second - 2 + length:]  # the second of two segments dropped
    path.write_bytes(damaged)
    assert embedded_icc(damaged) is None
    assert np.array_equal(read_image(path), stored(path))


def test_an_animated_webp_searched_by_is_its_first_frame_in_srgb(tmp_path):
    profile = rgb_profile()
    rgba = np.dstack([picture(), np.full((48, 64), 255, np.uint8)])
    frames = [(0, 0, rgba, 100, False, False, True), (0, 0, rgba[::-1].copy(), 100, False, False, True)]
    plain = read_image(write_webp_animation(tmp_path / "plain.webp", 64, 48, frames))
    managed = read_image(write_webp_animation(tmp_path / "p3.webp", 64, 48, frames, icc=profile))
    assert np.array_equal(plain, picture())  # lossless
    assert np.abs(managed.astype(int) - lcms_srgb(plain, profile)).max() <= 1


def test_the_srgb_colorants_are_those_of_little_cms():
    lcms = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).profile
    expected = np.array([lcms.red_colorant[0], lcms.green_colorant[0], lcms.blue_colorant[0]]).T
    assert np.allclose(icc.SRGB_COLORANTS, expected, atol=1e-5)
