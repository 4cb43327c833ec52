"""The fused numba conv1d + SiLU against its PyTorch twin, and the mixer/encoder's fused channels-last inference path
against the reference and the readable path."""

import pytest
import torch

from tests.models.test_mamba import _randomize, reference_mixer
from vtr.models.mamba import BiMambaMixer, Block, RMSNorm
from vtr.models.videomamba import videomamba_test
from vtr.ops import mixer_ops
from vtr.ops.mixer_ops import add_rows, causal_conv1d_silu_ref, causal_conv1d_silu_rows, rmsnorm_rows
from vtr.ops.selective_scan import selective_scan_rows as real_scan

needs_numba = pytest.mark.skipif(mixer_ops._load() is None, reason="numba not importable")


@needs_numba
@pytest.mark.parametrize("length", [1, 3, 67, 150])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("taps", [4, 3])  # 4: VideoMamba's, with the kernel's one-pass loop; 3: the general loop
def test_fused_conv_matches_reference(length, reverse, dtype, taps):
    torch.manual_seed(length)
    xz = torch.randn(2, length, 10).to(dtype)  # rows: x = columns 0..4, z = 5..9 (never read)
    w, b = torch.randn(5, 1, taps), torch.randn(5)
    got = causal_conv1d_silu_rows(xz[..., :5], w, b, reverse=reverse)
    want = causal_conv1d_silu_ref(xz[..., :5], w.reshape(5, taps), b, reverse=reverse)
    assert got.dtype == torch.float32 and got.shape == (2, length, 5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # a slice further along selects other columns: the z half convolved with the same weights differs
    other = causal_conv1d_silu_rows(xz[..., 5:], w, b, reverse=reverse)
    torch.testing.assert_close(other, causal_conv1d_silu_ref(xz[..., 5:], w.reshape(5, taps), b, reverse=reverse),
                               rtol=1e-5, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_conv_one_pass_loop_gives_the_general_loops_bits(reverse, dtype):
    # 4 taps run the one-pass loop; the same taps behind a zero tap (5 taps: 0·x adds exactly nothing) run the
    # general one, in the same order: the two must agree bit for bit
    torch.manual_seed(0)
    xz = torch.randn(2, 90, 40).to(dtype)
    w, b = torch.randn(40, 4), torch.randn(40)
    four = causal_conv1d_silu_rows(xz, w, b, reverse=reverse)
    five = causal_conv1d_silu_rows(xz, torch.cat([torch.zeros(40, 1), w], 1), b, reverse=reverse)
    assert torch.equal(four, five)


@needs_numba
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("taps", [4, 3])
def test_fused_conv_writes_bf16_rounded_once(reverse, taps):
    # the official bf16 path's conv output, for the scan and x_proj to read: the kernel's fp32 result rounded to
    # nearest even once, as it is written (both loops: 4 taps run the one-pass loop, 3 the general one)
    torch.manual_seed(1)
    xz = torch.randn(2, 70, 48).to(torch.bfloat16)
    w, b = torch.randn(24, taps), torch.randn(24)
    f32 = causal_conv1d_silu_rows(xz[..., :24], w, b, reverse=reverse)
    low = causal_conv1d_silu_rows(xz[..., :24], w, b, reverse=reverse, out_dtype=torch.bfloat16)
    assert low.dtype == torch.bfloat16 and low.shape == f32.shape
    assert torch.equal(low, f32.to(torch.bfloat16))
    with pytest.raises(ValueError, match="out_dtype"):
        causal_conv1d_silu_rows(xz[..., :24], w, b, out_dtype=torch.float16)


@needs_numba
@pytest.mark.parametrize("width", [7, 576])
def test_rmsnorm_rows_is_the_norm_in_one_pass(width):
    torch.manual_seed(2)
    x = torch.randn(3, 50, width) * 4
    norm = RMSNorm(width)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(width))
        want = norm(x)
    got = rmsnorm_rows(x, norm.weight, norm.eps)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)  # only the sum of squares is summed in another order
    assert torch.equal(rmsnorm_rows(x, norm.weight, norm.eps, torch.bfloat16), got.to(torch.bfloat16))
    rows = rmsnorm_rows(x[:, 10:20].contiguous(), norm.weight, norm.eps)  # each row on its own
    torch.testing.assert_close(rows, got[:, 10:20], rtol=0, atol=0)
    with pytest.raises(ValueError, match="fp32 x"):
        rmsnorm_rows(x.to(torch.bfloat16), norm.weight, norm.eps)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_rows_is_torchs_add(dtype):
    torch.manual_seed(3)
    a, b = torch.randn(2, 33, 40), torch.randn(2, 33, 40).to(dtype)
    got = add_rows(a, b)
    assert got.dtype == torch.float32 and torch.equal(got, a + b)
    with pytest.raises(ValueError, match="same-shape"):
        add_rows(a, b[:, :5])


@needs_numba
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
def test_block_inference_norms_and_adds_in_the_kernels(autocast, monkeypatch):
    # CPU inference: the block's norm is written in the dtype in_proj reads and its residual add takes the bf16 mixer
    # output as it is; the result is the readable block's (r + mixer(norm(r))) up to the norm's summation order
    torch.manual_seed(4)
    block = Block(24, d_state=8).eval()
    _randomize(block.mixer)
    r = torch.randn(2, 30, 24)
    seen, real_mixer, adds = [], block.mixer.forward, []
    monkeypatch.setattr(block.mixer, "forward", lambda h: seen.append(h.dtype) or real_mixer(h))
    monkeypatch.setattr("vtr.models.mamba.add_rows", lambda a, b: adds.append(b.dtype) or add_rows(a, b))
    dtype = torch.bfloat16 if autocast else torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got = block(r)
        monkeypatch.setenv("VTR_FUSED", "0")
        plain = block(r)
    assert seen == [dtype, torch.float32]  # the kernels' norm in the autocast dtype; the readable norm in fp32
    assert adds == [dtype]  # the kernel added the mixer's output, in the dtype it came in
    assert got.dtype == plain.dtype == torch.float32
    tol = dict(rtol=2e-2, atol=2e-2) if autocast else dict(rtol=1e-5, atol=1e-5)  # bf16: other GEMM roundings
    torch.testing.assert_close(got, plain, **tol)


def test_conv_reference_is_the_channels_first_conv():
    # the twin's two directions are the mixer's readable ones: a causal conv, and one on the time-reversed input
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 30, 6), torch.randn(6, 4), torch.randn(6)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    with torch.no_grad():
        conv.weight.copy_(w[:, None]), conv.bias.copy_(b)
        fwd = torch.nn.functional.silu(conv(x.mT)[..., :30]).mT
        bwd = torch.nn.functional.silu(conv(x.flip(1).mT)[..., :30]).mT.flip(1)
    torch.testing.assert_close(causal_conv1d_silu_ref(x, w, b), fwd)
    torch.testing.assert_close(causal_conv1d_silu_ref(x, w, b, reverse=True), bwd)


def test_fused_only_without_grad_and_with_the_switch(monkeypatch):
    x = torch.randn(1, 4, 8)
    with torch.no_grad():
        assert mixer_ops.fused_available(x) is (mixer_ops._load() is not None)
        monkeypatch.setenv("VTR_FUSED", "0")
        assert not mixer_ops.fused_available(x)
    monkeypatch.delenv("VTR_FUSED")
    assert not mixer_ops.fused_available(x)  # grad mode: the torch path (it has a backward)


@pytest.mark.parametrize("shape", [(3, 37, 24), (2, 5, 96)])
def test_linear_rows_matches_float64_and_runs_onednn_in_fp32(shape, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    w = torch.randn(40, shape[-1]) / shape[-1] ** 0.5
    exact = torch.nn.functional.linear(x.double(), w.double())
    calls = []
    op = mixer_ops._onednn_linear()
    if op is not None:
        monkeypatch.setitem(mixer_ops._state, "onednn", lambda *a: calls.append(a[0].dtype) or op(*a))
    with torch.no_grad():
        for xs in (x, torch.cat([x, x], -1)[..., : shape[-1]]):  # contiguous, and a column slice
            y = mixer_ops.linear_rows(xs, w)
            assert y.dtype == torch.float32 and y.shape == (*shape[:-1], 40)
            torch.testing.assert_close(y.double(), exact, rtol=0, atol=2e-6)
        yb = mixer_ops.linear_rows(x.bfloat16(), w.bfloat16())  # bf16: F.linear, not the oneDNN op
        assert yb.dtype == torch.bfloat16
        torch.testing.assert_close(yb.double(), exact, rtol=2e-2, atol=2e-2)
    assert calls == ([torch.float32] * 2 if op is not None else [])
    y = mixer_ops.linear_rows(x, w.requires_grad_())  # grad mode: F.linear, differentiable
    y.sum().backward()
    assert w.grad is not None and len(calls) == (2 if op is not None else 0)


def test_linear_rows_falls_back_for_good_when_onednn_fails(monkeypatch, caplog):
    def broken(*a):
        raise RuntimeError("could not create a primitive\nmore text")

    monkeypatch.setitem(mixer_ops._state, "onednn", broken)
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    with torch.no_grad(), caplog.at_level("WARNING", logger="vtr.ops.mixer_ops"):
        y = mixer_ops.linear_rows(x, w)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w))
    assert mixer_ops._state["onednn"] is None and "could not create a primitive" in caplog.text


def test_onednn_linear_is_found_in_this_torch():
    # torch's CPU wheels have oneDNN; when a build lacks it, linear_rows is F.linear and the mixer runs the same
    assert (mixer_ops._onednn_linear() is not None) is torch.backends.mkldnn.is_available()


@needs_numba
@pytest.mark.parametrize("length", [5, 70])
def test_mixer_fused_rows_path_matches_reference(length, monkeypatch):
    torch.manual_seed(0)
    m = _randomize(BiMambaMixer(24, d_state=8)).eval()
    h = torch.randn(2, length, 24)
    with torch.no_grad():
        ref = reference_mixer(m, h)
        calls, flips, transposes = [], [], []
        real = mixer_ops.causal_conv1d_silu_rows
        monkeypatch.setattr("vtr.models.mamba.causal_conv1d_silu_rows",
                            lambda *a, **k: calls.append(k["reverse"]) or real(*a, **k))
        real_flip, real_contig = torch.Tensor.flip, torch.Tensor.contiguous

        def contiguous(self, *a, **k):
            if not self.is_contiguous() and self.dim() == 3:  # an activation, [B, L, ·] or [B, ·, L]
                transposes.append(tuple(self.shape))
            return real_contig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, "flip", lambda self, *a: flips.append(a) or real_flip(self, *a))
        monkeypatch.setattr(torch.Tensor, "contiguous", contiguous)
        gemms = []
        real_linear = mixer_ops.linear_rows
        monkeypatch.setattr("vtr.models.mamba.linear_rows",
                            lambda x, w: gemms.append(tuple(w.shape)) or real_linear(x, w))
        fused = m(h)
        assert calls == [False, True]  # both directions went through the kernel
        assert len(gemms) == 6  # in_proj, out_proj, and x_proj and dt_proj of each direction, through linear_rows
        assert flips == []  # the backward direction runs back to front in the kernels' indexing, never copied
        assert transposes == []  # and every activation stays in rows: no re-laid-out copies
        monkeypatch.undo()
        monkeypatch.setenv("VTR_FUSED", "0")
        plain = m(h)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)


@needs_numba
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
def test_mixer_fused_rows_path_takes_the_official_dtypes(autocast, monkeypatch):
    # mamba_ssm under bf16 autocast: the conv's u, x_proj's output and Δ are bf16 (its scan reads them and computes in
    # fp32); in fp32 everything is fp32. The scan gets exactly those tensors: Δ = dt_proj(x_proj(u)[:R]) in u's dtype
    torch.manual_seed(0)
    m = _randomize(BiMambaMixer(32, d_state=8)).eval()
    h = torch.randn(2, 40, 32)
    seen = []

    def scan(u, delta, A, B, *a, **k):
        seen.append((u, delta, B))
        return real_scan(u, delta, A, B, *a, **k)

    monkeypatch.setattr("vtr.models.mamba.selective_scan_rows", scan)
    dtype = torch.bfloat16 if autocast else torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = m(h)
    assert len(seen) == 2 and out.shape == h.shape
    for (u, delta, B), x_proj, dt_proj in zip(seen, (m.x_proj, m.x_proj_b), (m.dt_proj, m.dt_proj_b)):
        assert u.dtype == delta.dtype == dtype
        with torch.autocast("cpu", enabled=False):
            x_dbl = torch.nn.functional.linear(u, x_proj.weight.to(dtype))
            want = torch.nn.functional.linear(x_dbl[..., :m.dt_rank], dt_proj.weight.to(dtype))
        # bf16: the same GEMMs, the same bits; fp32: oneDNN's (linear_rows) sums in another order than F.linear's
        tol = dict(rtol=0, atol=0) if autocast else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(delta, want, **tol)
        torch.testing.assert_close(B, x_dbl[..., m.dt_rank:m.dt_rank + m.d_state], **tol)


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
