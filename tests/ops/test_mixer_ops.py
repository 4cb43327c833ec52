"""The fused numba conv1d + SiLU against its PyTorch twin, and the mixer/encoder with it against the reference."""

import pytest
import torch

from tests.models.test_mamba import _randomize, reference_mixer
from vtr.models.mamba import BiMambaMixer
from vtr.models.videomamba import videomamba_test
from vtr.ops import mixer_ops
from vtr.ops.mixer_ops import causal_conv1d_silu_fused, causal_conv1d_silu_ref

needs_numba = pytest.mark.skipif(mixer_ops._load() is None, reason="numba not importable")


@needs_numba
@pytest.mark.parametrize("length", [1, 3, 67, 150])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_conv_matches_reference(length, reverse, dtype):
    torch.manual_seed(length)
    xz = torch.randn(2, 10, length).to(dtype)  # x = channels 0..4, z = 5..9 (never read)
    w, b = torch.randn(5, 1, 4), torch.randn(5)
    got = causal_conv1d_silu_fused(xz, 0, 5, w, b, reverse=reverse)
    want = causal_conv1d_silu_ref(xz[:, :5], w.reshape(5, 4), b, reverse=reverse)
    assert got.dtype == torch.float32 and got.shape == (2, 5, length)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the offset selects channels: the z half convolved with the same weights differs
    other = causal_conv1d_silu_fused(xz, 5, 5, w, b, reverse=reverse)
    torch.testing.assert_close(other, causal_conv1d_silu_ref(xz[:, 5:], w.reshape(5, 4), b, reverse=reverse),
                               rtol=1e-5, atol=1e-6)


def test_fused_only_without_grad_and_with_the_switch(monkeypatch):
    x = torch.randn(1, 4, 8)
    with torch.no_grad():
        assert mixer_ops.fused_available(x) is (mixer_ops._load() is not None)
        monkeypatch.setenv("VTR_FUSED", "0")
        assert not mixer_ops.fused_available(x)
    monkeypatch.delenv("VTR_FUSED")
    assert not mixer_ops.fused_available(x)  # grad mode: the torch path (it has a backward)


@needs_numba
@pytest.mark.parametrize("length", [5, 70])
def test_mixer_inference_with_fused_conv_matches_reference(length, monkeypatch):
    torch.manual_seed(0)
    m = _randomize(BiMambaMixer(24, d_state=8)).eval()
    h = torch.randn(2, length, 24)
    with torch.no_grad():
        ref = reference_mixer(m, h)
        calls, flips = [], []
        real = mixer_ops.causal_conv1d_silu_fused
        monkeypatch.setattr("vtr.models.mamba.causal_conv1d_silu_fused",
                            lambda *a, **k: calls.append(k["reverse"]) or real(*a, **k))
        real_flip = torch.Tensor.flip
        monkeypatch.setattr(torch.Tensor, "flip", lambda self, *a: flips.append(a) or real_flip(self, *a))
        fused = m(h)
        assert calls == [False, True]  # both directions went through the kernel
        assert flips == []  # the backward direction is reversed inside the kernels' indexing, never copied
        monkeypatch.undo()
        monkeypatch.setenv("VTR_FUSED", "0")
        plain = m(h)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)


@needs_numba
def test_encoder_fused_matches_unfused_fp32_and_bf16(monkeypatch):
    torch.manual_seed(0)
    model = videomamba_test().eval()
    x = torch.randn(2, 4, 3, 32, 32)
    for autocast in (False, True):
        outs = []
        for switch in ("1", "0"):
            monkeypatch.setenv("VTR_FUSED", switch)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                outs.append(model(x).pooled.float())
        if autocast:  # both read the same bf16 xz; only fp32 summation order differs before later bf16 GEMMs
            torch.testing.assert_close(outs[0], outs[1], rtol=1e-2, atol=1e-2)
        else:
            torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
