"""HDR video (PQ, HLG: what phones record) is tone-mapped to the SDR frames the model, the thumbnails, the previews
and the exports expect. The footage is a chart of SDR colours mastered as HDR by the standards' forward formulas
(tests.videos.sdr_as_hdr) and encoded losslessly, tagged as phones tag theirs."""

import av
import numpy as np
import pytest

from tests.videos import write_hdr_video, write_video
from vtr.data.hdr import HLG, PQ, is_hdr, to_sdr
from vtr.data.video import open_video

CHART = np.array([[180, 40, 40], [40, 160, 60], [50, 60, 170], [128, 128, 128], [200, 170, 140], [20, 20, 20],
                  [220, 220, 220], [230, 200, 30]], np.uint8)


def chart_frames(n: int = 5, side: int = 32) -> np.ndarray:
    """uint8 [n, 2 side, 4 side, 3]: the chart's colours in side x side patches, 4 a row."""
    img = np.zeros((2 * side, 4 * side, 3), np.uint8)
    for i, colour in enumerate(CHART):
        img[(i // 4) * side:(i // 4 + 1) * side, (i % 4) * side:(i % 4 + 1) * side] = colour
    return np.repeat(img[None], n, 0)


def patches(rgb: np.ndarray) -> np.ndarray:
    """The colour at the centre of each patch of a [H, W, 3] frame laid out as the chart (any size)."""
    h, w = rgb.shape[:2]
    return np.array([rgb[int(((i // 4) + 0.5) * h / 2), int(((i % 4) + 0.5) * w / 4)] for i in range(len(CHART))],
                    np.int32)


@pytest.fixture(scope="module", params=["hlg", "pq", "hlg-full-range"])
def hdr_video(request, tmp_path_factory):
    transfer, _, full = request.param.partition("-")
    return write_hdr_video(tmp_path_factory.mktemp("hdr") / f"{request.param}.mp4", chart_frames(), transfer,
                           full_range=bool(full))


def test_hdr_frames_come_out_as_their_sdr_colours(hdr_video):
    with av.open(str(hdr_video)) as c:
        frame = next(c.decode(video=0))
        assert is_hdr(frame) and frame.color_trc in (PQ, HLG)
        plain = frame.to_ndarray(format="rgb24")  # what every reader gave before: the YUV matrix only
    assert np.abs(patches(plain) - CHART).max() > 30  # HLG dull, PQ dark and grey: the footage shows the fault
    with open_video(str(hdr_video)) as reader:  # "auto": PyAV for HDR even where decord is installed
        assert reader.backend == "pyav"
        full = reader.get_frames([0, 4]).numpy()
        small = reader.get_frames([2], size=(64, 32)).numpy()  # scaled in swscale on the way, as the index reads
    for frame in (full[0], full[1], small[0]):
        assert np.abs(patches(frame) - CHART).max() <= 4, patches(frame).tolist()


def test_sdr_frames_are_converted_as_before(tmp_path):
    path = write_video(tmp_path / "sdr.mp4", chart_frames())
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        assert not is_hdr(frame)
        plain = frame.to_ndarray(format="rgb24")
    with open_video(str(path), backend="pyav") as reader:
        np.testing.assert_array_equal(reader.get_frames([0]).numpy()[0], plain)  # bit for bit


def test_tone_mapping_keeps_white_below_the_knee_and_rolls_highlights_off():
    """PQ code values of 203 nits (reference white) and of 1000 and 10000 nits: white is near SDR white (97%: the
    roll-off above the knee leaves room for highlights), brighter light is white (never wraps round), and a
    saturated highlight keeps its hue."""
    def pq(nits):
        y = np.power(np.asarray(nits, np.float64) / 10000, 2610 / 16384)
        return np.round(65535 * np.power((3424 / 4096 + 2413 / 128 * y) / (1 + 2392 / 128 * y), 2523 / 32))

    grey = pq([[[203.0] * 3], [[1000.0] * 3], [[10000.0] * 3], [[0.0] * 3]]).astype(np.uint16)
    out = to_sdr(grey, PQ, primaries=1)
    assert 245 <= out[0].min() < out[1].min() and out[1:3].min() >= 253 and out[3].max() == 0
    red = pq([[[1000.0, 50.0, 50.0]]]).astype(np.uint16)
    r, g, b = to_sdr(red, PQ, primaries=1)[0, 0].astype(int)
    assert r >= 250 and g < r - 60 and abs(g - b) <= 1  # rolled off, still red
    with pytest.raises(ValueError, match="not an HDR transfer"):
        to_sdr(grey, 1)


def test_previews_and_exports_of_hdr_video_are_sdr_and_tagged_bt709(hdr_video, tmp_path):
    from vtr.data.cut import cut_clip

    out = tmp_path / "cut.mp4"
    cut_clip(str(hdr_video), 0.0, 0.2, out, max_width=128)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace) == (1, 1, 1)  # BT.709, which players then assume
        frame = next(c.decode(video=0))
        assert not is_hdr(frame)
        rgb = frame.to_ndarray(format="rgb24")
    assert np.abs(patches(rgb) - CHART).max() <= 12, patches(rgb).tolist()  # H.264 at crf 23


def test_the_cut_detection_sees_hdr_video_as_the_windows_do(hdr_video):
    """The shots policy's cheap frames go through the same tone mapping (a PQ video seen dark and grey there would
    hide cuts that its windows show)."""
    from index.policies import detection_frames

    times, frames = detection_frames(str(hdr_video), 0.0, None, fps=5.0, size=(64, 32))
    assert len(frames) >= 1
    assert np.abs(patches(frames[0]) - CHART).max() <= 6, patches(frames[0]).tolist()


@pytest.mark.parametrize("transfer", [PQ, HLG])
@pytest.mark.parametrize("primaries", [9, 1])
def test_tone_mapping_is_the_standards_formulas(transfer, primaries):
    """:func:`to_sdr` (tables, rows at a time, the gain and the roll-off as one factor) against the chain written out
    in float64, pixel by pixel, on every kind of colour (out of BT.709's gamut, over the knee, near black), on a frame
    whose rows do not fill its last block: a code value apart at most, and rarely."""
    rng = np.random.default_rng(transfer + primaries)
    rgb16 = rng.integers(0, 65536, (75, 41, 3)).astype(np.uint16)
    rgb16[:5] = rng.integers(0, 2000, (5, 41, 3))  # near black, where the output is steep
    e = rgb16.astype(np.float64) / 65535
    if transfer == PQ:
        p = np.power(e, 4096 / (2523 * 128))
        light = 10000 * np.power(np.maximum(p - 3424 / 4096, 0) / (2413 / 128 - 2392 / 128 * p), 16384 / 2610) / 203
    else:
        a = 0.17883277
        scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - (0.5 - a * np.log(4 * a))) / a) + 1 - 4 * a) / 12)
        luma = [0.2627, 0.6780, 0.0593] if primaries == 9 else [0.2126, 0.7152, 0.0722]
        ys = np.maximum(scene @ np.array(luma), 1e-12)[..., None]
        light = scene * np.power(ys, 0.2) * 1000 / 203
    if primaries == 9:
        light = light @ np.array([[1.660491, -0.587641, -0.072850], [-0.124551, 1.132900, -0.008349],
                                  [-0.018151, -0.100579, 1.118730]]).T
    light = np.maximum(light, 0)
    peak = light.max(-1, keepdims=True)
    rolled = (0.8 + 0.2 * (1 - np.exp(-(peak - 0.8) / 0.2))) / np.maximum(peak, 1e-30)
    light = np.where(peak > 0.8, light * rolled, light)
    want = np.round(255 * np.power(light, 1 / 2.4))
    got = to_sdr(rgb16, transfer, primaries).astype(np.float64)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02, (diff.max(), (diff > 0).mean())
    assert np.array_equal(to_sdr(rgb16[3, 4], transfer, primaries), got[3, 4])  # one pixel as in a frame
