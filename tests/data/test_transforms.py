import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtr.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform,
                                 random_resized_crop_params, resize_uint8)


def _aa_bicubic_weights(in_size, out_size):
    """Hand-written antialiased bicubic (PIL's filter, a = -0.5, support widened by the downscale factor):
    the semantics of F.interpolate(mode="bicubic", antialias=True, align_corners=False)."""

    def cubic(x, a=-0.5):
        x = abs(x)
        if x < 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        if x < 2:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    scale = in_size / out_size
    support_scale = max(scale, 1.0)
    support = 2.0 * support_scale
    w = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        ws = np.array([cubic((j - center + 0.5) / support_scale) for j in range(lo, hi)])
        w[i, lo:hi] = ws / ws.sum()
    return w


def test_bicubic_antialias_matches_a_hand_computation():
    h, w, oh, ow = 12, 16, 5, 6
    yy, xx = np.mgrid[0:h, 0:w]
    img = (xx * 9 + yy * 6 + (xx * yy) % 5).astype(np.float64)  # a gradient with some texture, <= 255
    expected = _aa_bicubic_weights(h, oh) @ img @ _aa_bicubic_weights(w, ow).T
    got = F.interpolate(torch.tensor(img, dtype=torch.float32)[None, None], size=(oh, ow), mode="bicubic",
                        align_corners=False, antialias=True)[0, 0].double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)
    # resize_uint8 = torchvision's tensor Resize on uint8: float interpolate, clamp, round, cast
    u8 = torch.tensor(img, dtype=torch.uint8)[None].expand(3, h, w)
    out = resize_uint8(u8, (oh, ow))
    assert out.dtype == torch.uint8
    assert (out[0].int() - torch.tensor(np.clip(np.round(expected), 0, 255)).int()).abs().max() <= 1


def test_resize_clamps_bicubic_overshoot():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    x[..., :, 4:] = 255  # a hard edge: bicubic over/undershoots in float
    out = resize_uint8(x, (6, 6))
    ref = F.interpolate(x.float(), size=(6, 6), mode="bicubic", align_corners=False, antialias=True)
    assert ref.min() < 0 and ref.max() > 255
    assert torch.equal(out, ref.clamp(0, 255).round().to(torch.uint8))


def test_eval_transform_constant_frame_is_exactly_normalised():
    rgb = (100, 150, 200)
    frames = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 48, 64).contiguous()
    out = EvalTransform()(frames)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    for c in range(3):
        expected = (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[:, c], torch.full((2, 224, 224), expected), atol=1e-6, rtol=0)


def test_eval_transform_squashes_without_crop_and_is_configurable():
    frames = torch.zeros(1, 3, 40, 80, dtype=torch.uint8)
    frames[..., :, :40] = 255  # left half white: after a squash (no crop) the left half stays white
    t = EvalTransform(size=32, mean=(0, 0, 0), std=(1, 1, 1))
    out = t(frames)
    assert out.shape == (1, 3, 32, 32)
    assert torch.all(out[..., :, :14] == 1) and torch.all(out[..., :, 18:] == 0)
    with pytest.raises(ValueError):
        t(torch.zeros(3, 40, 80, dtype=torch.uint8))


def test_random_resized_crop_params_follow_torchvision_rules():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_params(48, 64, generator=g)
        assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64
        assert 0.5 * 48 * 64 * 0.9 <= h * w <= 48 * 64
        assert 3 / 4 * 0.85 <= w / h <= 4 / 3 * 1.15  # rounding to whole pixels
    # no try can fit in a 10 x 1000 strip: centre crop with the largest allowed ratio
    assert random_resized_crop_params(10, 1000, generator=g) == (0, (1000 - 13) // 2, 10, 13)
    assert random_resized_crop_params(1000, 10, generator=g) == ((1000 - 13) // 2, 0, 13, 10)


def test_random_resized_crop_draws_like_torchvision():
    """Same draw order as torchvision's get_params on the global generator (torchvision is not importable)."""
    g = torch.Generator().manual_seed(1234)
    params = random_resized_crop_params(240, 320, generator=g)
    torch.manual_seed(1234)
    area = 240 * 320
    log_ratio = torch.log(torch.tensor((3 / 4, 4 / 3)))
    target_area = area * torch.empty(1).uniform_(0.5, 1.0).item()
    aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    assert 0 < w <= 320 and 0 < h <= 240
    i = torch.randint(0, 240 - h + 1, size=(1,)).item()
    j = torch.randint(0, 320 - w + 1, size=(1,)).item()
    assert params == (i, j, h, w)


def _textured_clip(t=4, h=48, w=64):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack([xx * 4, yy * 5, (xx + yy) * 2]).clamp(0, 255).to(torch.uint8)
    return img.expand(t, 3, h, w).contiguous()


def test_train_transform_same_crop_and_flip_for_all_frames():
    clip = _textured_clip()
    t = TrainTransform(size=32)
    for seed in range(5):
        out = t(clip, generator=torch.Generator().manual_seed(seed))
        assert out.shape == (4, 3, 32, 32)
        for k in range(1, 4):
            assert torch.equal(out[k], out[0])


def test_train_transform_is_reproducible_and_random():
    clip = _textured_clip(t=2)
    t = TrainTransform(size=32)
    a = t(clip, generator=torch.Generator().manual_seed(3))
    b = t(clip, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    outs = [t(clip, generator=torch.Generator().manual_seed(s)) for s in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    # a generator given at construction is used when none is passed
    c = TrainTransform(size=32, generator=torch.Generator().manual_seed(3))(clip)
    assert torch.equal(a, c)


def test_train_transform_flip():
    clip = _textured_clip(t=1)
    no_flip = TrainTransform(size=32, flip_p=0.0)(clip, generator=torch.Generator().manual_seed(0))
    flip = TrainTransform(size=32, flip_p=1.0)(clip, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flip, no_flip.flip(-1))


def test_train_transform_without_crop_resizes_the_whole_frame():
    clip = _textured_clip(t=2)
    whole = TrainTransform(size=32, scale=(1.0, 1.0), flip_p=0.0)
    for seed in range(3):
        out = whole(clip, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(out, EvalTransform(32)(clip))


def test_train_transform_rejects_bad_settings():
    with pytest.raises(ValueError, match="crop scale"):
        TrainTransform(size=32, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="crop scale"):
        TrainTransform(size=32, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="flip_p"):
        TrainTransform(size=32, flip_p=2.0)
