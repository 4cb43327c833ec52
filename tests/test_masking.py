import pytest
import torch

from vtr.masking import apply_keep, attention_mask_from_teacher, random_mask, row_mask, tube_mask


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# Upstream counts over the whole clip: int(0.8 * 1568) = 1254 masked -> 314 visible.
@pytest.mark.parametrize("ratio,expect_keep", [(0.8, 314), (0.5, 784), (0.0, 1568)])
def test_random_mask_counts(ratio, expect_keep):
    keep = random_mask(4, 8, 196, ratio, _gen())
    assert keep.dtype == torch.bool and keep.shape == (4, 8 * 196)
    assert (keep.sum(1) == expect_keep).all()
    # Different samples get different masks; the same seed gives the same masks.
    assert not torch.equal(keep[0], keep[1]) or ratio == 0.0
    assert torch.equal(keep, random_mask(4, 8, 196, ratio, _gen()))


def test_tube_mask_identical_across_frames():
    keep = tube_mask(3, 8, 196, 0.8, _gen(1))
    assert keep.shape == (3, 8 * 196)
    per_frame = keep.view(3, 8, 196)
    assert (per_frame == per_frame[:, :1]).all()
    assert (per_frame.sum(-1) == 40).all()
    assert not torch.equal(per_frame[0, 0], per_frame[1, 0])


def _runs(row):
    """Lengths and starts of the True runs of a 1-D bool tensor."""
    runs, start = [], None
    for i, v in enumerate(row.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.parametrize("ratio", [0.8, 0.5, 0.75, 0.95])
def test_row_mask_keeps_whole_rows(ratio):
    B, T, H, W = 5, 8, 14, 14
    keep = row_mask(B, T, H, W, ratio, _gen(2))
    assert keep.shape == (B, T * H * W)
    grid = keep.view(B, T, H, W)
    # Every row is entirely kept or entirely masked.
    assert ((grid.all(-1)) | (~grid.any(-1))).all()
    rows = grid.all(-1)  # [B, T, H]
    total = rows.sum((1, 2))
    assert (total == total[0]).all()  # equal count per sample
    assert (rows.sum(-1) >= 1).all()  # every frame has visible tokens
    per_frame = rows.sum(-1)
    assert (per_frame.max(1).values - per_frame.min(1).values <= 1).all()
    # Closest achievable kept fraction (given >= 1 row per frame).
    best = min(range(T, T * H + 1), key=lambda r: abs(r / (T * H) - (1 - ratio)))
    assert total[0].item() == best
    # Visible tokens come in contiguous runs whose lengths are multiples of W, aligned to row starts.
    for b in range(B):
        for start, length in _runs(keep[b]):
            assert start % W == 0 and length % W == 0
    assert torch.equal(keep, row_mask(B, T, H, W, ratio, _gen(2)))


def test_row_mask_kept_fraction_close_to_target():
    keep = row_mask(2, 8, 14, 14, 0.8, _gen(3))
    assert keep.float().mean().item() == pytest.approx(0.2, abs=0.5 / 14)


def test_attention_mask_counts_and_follows_attention():
    B, T, P = 2, 4, 196
    g = torch.Generator().manual_seed(4)
    attn = torch.rand(B, T, P, generator=g) * 1e-6
    hot = torch.zeros(B, T, P, dtype=torch.bool)
    hot[..., :50] = True
    attn[hot] = torch.rand(int(hot.sum()), generator=g) + 1.0
    attn = attn / attn.sum(-1, keepdim=True)
    keep = attention_mask_from_teacher(attn, 0.8, _gen(5))
    assert keep.shape == (B, T * P)
    per_frame = keep.view(B, T, P)
    assert (per_frame.sum(-1) == 196 - int(0.8 * 196)).all() and per_frame.sum(-1)[0, 0] == 40
    # 40 draws among 50 hot tokens holding ~all the mass: every kept token is hot.
    assert not (per_frame & ~hot).any()
    assert torch.equal(keep, attention_mask_from_teacher(attn, 0.8, _gen(5)))


def test_attention_mask_frequency_proportional_to_attention():
    # One visible token per frame out of P=4: the kept index is a single multinomial draw.
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    attn = probs.expand(1, 4000, 4)
    keep = attention_mask_from_teacher(attn, 0.75, _gen(6)).view(4000, 4)
    assert (keep.sum(-1) == 1).all()
    torch.testing.assert_close(keep.float().mean(0), probs, atol=0.03, rtol=0)


def test_attention_mask_survives_zero_attention():
    attn = torch.zeros(1, 2, 10)
    attn[..., 0] = 1.0
    keep = attention_mask_from_teacher(attn, 0.5, _gen(7))
    assert (keep.view(2, 10).sum(-1) == 5).all() and keep.view(2, 10)[:, 0].all()


def test_apply_keep_gathers_in_order():
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float32).view(2, 6, 3)
    keep = torch.tensor([[True, False, True, False, False, True], [False, True, True, True, False, False]])
    out = apply_keep(tokens, keep)
    assert out.shape == (2, 3, 3)
    torch.testing.assert_close(out[0], tokens[0, [0, 2, 5]])
    torch.testing.assert_close(out[1], tokens[1, [1, 2, 3]])
    with pytest.raises(ValueError):
        apply_keep(tokens, torch.tensor([[True] * 6, [False] * 6]))
    keep = tube_mask(2, 3, 2, 0.5, _gen())
    assert apply_keep(torch.randn(2, 6, 5), keep).shape == (2, 3, 5)


def test_invalid_ratio():
    with pytest.raises(ValueError):
        random_mask(1, 1, 4, 1.0)
    with pytest.raises(ValueError):
        row_mask(1, 1, 4, 4, -0.1)
