"""VideoMamba encoder: release names/shapes, sequence layout, pooling, resizing, masking, checkpointing."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vtr.models.videomamba import (
    VideoMambaConfig,
    resize_pos_embed,
    resize_temporal_pos_embed,
    sinusoid_position_table,
    videomamba_middle,
    videomamba_small,
    videomamba_test,
    videomamba_tiny,
)

RELEASE_KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "official_keys_release.tsv"


def _release_vision_keys():
    keys = {}
    for line in RELEASE_KEYS.read_text().splitlines()[1:]:
        name, shape, _ = line.split("\t")
        if name.startswith("vision_encoder."):
            keys[name[len("vision_encoder."):]] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return keys


def test_middle_state_dict_matches_release():
    with torch.device("meta"):
        model = videomamba_middle()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    release = _release_vision_keys()
    assert len(release) == 556
    assert sorted(set(ours) - set(release)) == [] and sorted(set(release) - set(ours)) == []
    assert ours == release
    assert sum(p.numel() for p in model.parameters()) == 73_942_656  # model.md §7


def test_size_entrypoints():
    with torch.device("meta"):
        for fn, dim, depth in ((videomamba_tiny, 192, 24), (videomamba_small, 384, 24), (videomamba_middle, 576, 32)):
            m = fn(num_frames=16)
            assert (m.cfg.embed_dim, m.cfg.depth, len(m.layers), m.cfg.num_frames) == (dim, depth, depth, 16)
            assert m.temporal_pos_embedding.shape == (1, 16, dim)


def _official_embed(model, frames):
    """Position embeddings as the official forward_features adds them: per-frame cls, pos over (B·T), temporal over
    (B·N), then cls of the first frame prepended to the frame-major patch sequence."""
    x = model.patch_embed.proj(frames.permute(0, 2, 1, 3, 4))  # Conv3d on [B, C, T, H, W]
    b, c, t, h, w = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    x = torch.cat([model.cls_token.expand(b * t, -1, -1), x], dim=1) + model.pos_embed
    cls = x.reshape(b, t, -1, c)[:, 0, :1]
    x = x[:, 1:].reshape(b, t, h * w, c).permute(0, 2, 1, 3) + model.temporal_pos_embedding
    x = x.permute(0, 2, 1, 3).reshape(b, t * h * w, c)
    return torch.cat([cls, x], dim=1)


def test_embedding_order_matches_official():
    model = videomamba_test()
    frames = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        cls, patches = model.embed(frames)
        torch.testing.assert_close(torch.cat([cls, patches], 1), _official_embed(model, frames), rtol=1e-5, atol=1e-5)


def test_forward_shapes_and_pooled_by_hand():
    model = videomamba_test().eval()
    frames = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        out = model(frames)
        seq = model.forward_features(frames)
    assert out.tokens.shape == (2, 4 * 16, 64) and out.pooled.shape == (2, 4, 64) and out.cls.shape == (2, 64)
    torch.testing.assert_close(out.cls, seq[:, 0])
    torch.testing.assert_close(out.tokens, seq[:, 1:])
    by_hand = torch.stack([model.pool_norm(seq[:, 0] + seq[:, 1 + 16 * t: 1 + 16 * (t + 1)].mean(1))
                           for t in range(4)], dim=1)
    torch.testing.assert_close(out.pooled, by_hand)


def test_residual_stream_by_hand():
    model = videomamba_test().eval()
    frames = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        cls, patches = model.embed(frames)
        r = torch.cat([cls, patches], 1)
        for layer in model.layers:
            r = r + layer.mixer(layer.norm(r))
        torch.testing.assert_close(model.forward_features(frames), model.norm(r))
        # the official clip_decoder input: the residual before the last block's output is added
        r = torch.cat([cls, patches], 1)
        r = r + model.layers[0].mixer(model.layers[0].norm(r))
        torch.testing.assert_close(model.forward_features(frames, return_clip_input=True)[1], r)


@pytest.mark.parametrize("frames_, size", [(4, 32), (2, 32), (12, 32), (2, 40), (2, 24)])
def test_any_frame_count_and_resolution(frames_, size):
    model = videomamba_test().eval()
    with torch.no_grad():
        out = model(torch.randn(1, frames_, 3, size, size))
    p = (size // 8) ** 2
    assert out.tokens.shape == (1, frames_ * p, 64) and out.pooled.shape == (1, frames_, 64)
    assert torch.isfinite(out.pooled).all()


@pytest.mark.parametrize("size", [160, 256])
def test_resolution_224_patch16_grid(size):
    model = videomamba_test(patch_size=16, img_size=224, depth=1).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, size, size))
    assert out.tokens.shape == (1, 2 * (size // 16) ** 2, 64)


def test_resize_pos_embed():
    pe = torch.randn(1, 1 + 14 * 14, 8)
    out = resize_pos_embed(pe, (10, 16))
    assert out.shape == (1, 1 + 160, 8)
    torch.testing.assert_close(out[:, 0], pe[:, 0])
    grid = pe[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(10, 16), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(out[:, 1:], expect.reshape(1, 160, 8))
    assert resize_pos_embed(pe, 14) is pe


def test_resize_temporal_pos_embed():
    tpe = torch.arange(4.0).reshape(1, 4, 1).expand(1, 4, 3)
    out = resize_temporal_pos_embed(tpe, 8)
    # align_corners=False: output t samples input at (t + 0.5)·4/8 − 0.5, clamped to the ends
    expect = ((torch.arange(8.0) + 0.5) * 0.5 - 0.5).clamp(0, 3)
    torch.testing.assert_close(out[0, :, 0], expect)
    assert resize_temporal_pos_embed(tpe, 4) is tpe


def test_keep_mask_selects_tokens_and_pools_visible():
    model = videomamba_test().eval()
    frames = torch.randn(2, 4, 3, 32, 32)
    g = torch.Generator().manual_seed(1)
    keep = torch.zeros(2, 64, dtype=torch.bool)
    keep[0, torch.randperm(64, generator=g)[:40]] = True  # uneven counts per frame
    outside_frame1 = torch.cat([torch.arange(16), torch.arange(32, 64)])
    keep[1, outside_frame1[torch.randperm(48, generator=g)[:40]]] = True  # frame 1 fully masked
    assert keep.sum(1).tolist() == [40, 40]
    with torch.no_grad():
        out = model(frames, keep=keep)
        cls, patches = model.embed(frames)
        seq = torch.cat([cls, patches[keep].reshape(2, 40, -1)], dim=1).float()
        for layer in model.layers:
            seq = layer(seq)
        seq = model.norm(seq)
    torch.testing.assert_close(out.tokens, seq[:, 1:])
    frame_of = torch.arange(64) // 16
    for b in range(2):
        fid = frame_of[keep[b]]
        for t in range(4):
            sel = seq[b, 1:][fid == t]
            mean = sel.mean(0) if len(sel) else torch.zeros(64)
            torch.testing.assert_close(out.pooled[b, t], model.pool_norm(seq[b, 0] + mean))

    with torch.no_grad():  # keeping everything is the same as no mask
        full = model(frames)
        all_kept = model(frames, keep=torch.ones(2, 64, dtype=torch.bool))
    torch.testing.assert_close(all_kept.pooled, full.pooled)

    with pytest.raises(ValueError):
        bad = keep.clone()
        bad[0, ~keep[0].nonzero()[0]] = True
        model(frames, keep=bad)


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    ref = videomamba_test(drop_path_rate=0.0).train()
    ckpt = videomamba_test(grad_checkpointing=True).train()
    ckpt.load_state_dict(ref.state_dict())
    frames = torch.randn(2, 2, 3, 32, 32)
    grads = []
    for model in (ref, ckpt):
        out = model(frames)
        (out.pooled.square().mean() + out.tokens.mean()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)


def test_align_to_teacher():
    model = videomamba_test()
    tokens = torch.randn(2, 10, 64)
    out = model.align_to_teacher(tokens, pos=sinusoid_position_table(65, 64)[:, :10])
    assert out.shape == (2, 10, 512)
    table = sinusoid_position_table(5, 6)
    torch.testing.assert_close(table[0, 3, 2], torch.sin(torch.tensor(3 / 10000 ** (2 / 6))))
    torch.testing.assert_close(table[0, 3, 3], torch.cos(torch.tensor(3 / 10000 ** (2 / 6))))


def test_config_defaults_are_middle():
    cfg = VideoMambaConfig()
    assert (cfg.embed_dim, cfg.depth, cfg.patch_size, cfg.img_size, cfg.num_frames, cfg.d_state) == (
        576, 32, 16, 224, 8, 16)
    assert cfg.num_patches == 196


def test_runs_without_optional_packages():
    code = textwrap.dedent("""
        import sys, importlib.abc
        BLOCKED = {"mamba_ssm", "causal_conv1d", "faiss", "gradio"}
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked {name}")
                return None
        sys.meta_path.insert(0, Blocker())
        import torch, vtr
        from vtr.models.videomamba import videomamba_test
        out = videomamba_test()(torch.randn(1, 2, 3, 32, 32))
        assert out.pooled.shape == (1, 2, 64)
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")
