"""Every selective-scan path against a float64 recurrence, on outputs and gradients; dispatch and fallbacks."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtr.ops import selective_scan as ss

HAS_NUMBA = ss._load_numba() is not None
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba not importable")
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def scan64(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The recurrence in float64 (differentiable): ground truth for every implementation."""
    dt = delta.double() + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = F.softplus(dt)
    dA = torch.exp(dt[..., None] * A.double()[:, None, :])  # [B, D, L, N]
    dBu = (dt * u.double())[..., None] * B.double().transpose(1, 2)[:, None]
    s = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64)
    ys = []
    for a, bu, c in zip(dA.unbind(2), dBu.unbind(2), C.double().unbind(2)):
        s = a * s + bu
        ys.append((s * c[:, None]).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + u.double() * D.double()[:, None]
    return y * F.silu(z.double()) if z is not None else y


def make(batch, dim, length, n=16, softplus=True, with_D=True, with_z=True, with_bias=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(batch * 1000 + dim * 10 + length)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    delta = r(batch, dim, length) * 0.5 - 1.0 if softplus else torch.rand(batch, dim, length, generator=g) * 0.3
    x = dict(u=r(batch, dim, length), delta=delta, A=-(torch.rand(dim, n, generator=g) * 3 + 0.1),
             B=r(batch, n, length), C=r(batch, n, length), D=r(dim) if with_D else None,
             z=r(batch, dim, length) if with_z else None,
             delta_bias=r(dim) * 0.3 if with_bias and softplus else (torch.rand(dim, generator=g) * 0.1 if with_bias else None))
    return {k: (v.to(dtype) if v is not None and k != "A" else v) for k, v in x.items()}


def rel(x, ref):
    return ((x.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


IMPLS = [pytest.param(ss.selective_scan_numba, id="numba", marks=needs_numba),
         pytest.param(ss.selective_scan_torch, id="torch")]
# L = 150 and 67: not multiples of the numba chunk (64) nor of the torch chunk (≈√L); L = 1: a single step
SHAPES = [(2, 5, 150), (1, 3, 67), (1, 2, 1)]
OPTIONS = [(True, True, True), (False, False, False), (True, False, True), (False, True, False)]


@pytest.mark.parametrize("softplus", [True, False], ids=["softplus", "raw"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "D%d-z%d-bias%d" % o)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("fn", IMPLS)
def test_forward_and_grads_match_float64(fn, shape, opts, softplus):
    x = make(*shape, softplus=softplus, with_D=opts[0], with_z=opts[1], with_bias=opts[2])
    x64 = {k: v.double().requires_grad_() if v is not None else None for k, v in x.items()}
    ref = scan64(**x64, delta_softplus=softplus)
    gout = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(gout)

    with torch.no_grad():  # inference path
        y = fn(**x, delta_softplus=softplus)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    assert rel(y, ref) < 1e-5

    xg = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
    y = fn(**xg, delta_softplus=softplus)  # training path
    assert rel(y, ref) < 1e-5
    y.backward(gout.float())
    for k in NAMES:
        if xg[k] is None:
            continue
        assert xg[k].grad is not None and xg[k].grad.dtype == xg[k].dtype, k
        assert rel(xg[k].grad, x64[k].grad) < 2e-5, k


@needs_numba
@pytest.mark.parametrize("shape", [(2, 37, 130, 16), (1, 19, 70, 12), (1, 16, 64, 32)],
                         ids=lambda s: "x".join(map(str, s)))
def test_numba_grads_across_channel_blocks(shape):
    # the backward runs blocks of 16 channels in SIMD lanes: several blocks, a partial last one, N other than 16
    batch, dim, length, n = shape
    x = make(batch, dim, length, n=n)
    x64 = {k: v.double().requires_grad_() for k, v in x.items()}
    ref = scan64(**x64, delta_softplus=True)
    gout = torch.randn(ref.shape, dtype=torch.float64)
    ref.backward(gout)
    xg = {k: v.clone().requires_grad_() for k, v in x.items()}
    y = ss.selective_scan_numba(**xg, delta_softplus=True)
    assert rel(y, ref) < 1e-5
    y.backward(gout.float())
    for k in NAMES:
        assert rel(xg[k].grad, x64[k].grad) < 2e-5, k


def test_reference_matches_float64():
    x = make(2, 4, 40)
    assert rel(ss.selective_scan_ref(**x, delta_softplus=True), scan64(**x, delta_softplus=True)) < 1e-5


@pytest.mark.parametrize("fn", IMPLS + [pytest.param(ss.selective_scan_ref, id="ref")])
def test_bf16_inputs_upcast_and_cast_back(fn):
    x = make(1, 4, 70, dtype=torch.bfloat16)
    xg = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
    y = fn(**xg, delta_softplus=True)
    assert y.dtype == torch.bfloat16
    # every path computes in fp32 from the same bf16 values: equal up to the final bf16 rounding
    assert rel(y, scan64(**x, delta_softplus=True)) < 1e-2
    y.float().sum().backward()
    for k in NAMES:
        assert xg[k].grad.dtype == xg[k].dtype, k


def test_torch_fallback_long_sequence_is_accurate():
    # several chunks and tiles, decays strong enough to underflow the chunk products (flushed to zero)
    x = make(1, 6, 700)
    x["A"] = x["A"] * 10
    y = ss.selective_scan_torch(**x, delta_softplus=True, tile_elems=4096)
    assert rel(y, scan64(**x, delta_softplus=True)) < 1e-5


def test_rejects_bad_shapes():
    x = make(1, 3, 10)
    x["B"] = x["B"][:, :, :5]
    with pytest.raises(ValueError):
        ss.selective_scan(**x, impl="cpu")


# ------------------------------------------------------------------------------------------------ dispatch
@pytest.mark.parametrize("env, expect", [("ref", "ref"), ("cpu", "numba"), ("auto", "numba"), ("cuda", "torch")])
def test_dispatch_honours_env(monkeypatch, env, expect):
    if expect == "numba" and not HAS_NUMBA:
        expect = "torch"
    monkeypatch.setenv("VTR_SCAN", env)
    assert ss._resolve(None, "cpu") == expect
    assert ss.available_backends()["cpu"] == expect


def test_dispatch_calls_the_chosen_impl(monkeypatch):
    calls = []
    for name in ("selective_scan_ref", "selective_scan_numba", "selective_scan_torch"):
        orig = getattr(ss, name)
        monkeypatch.setattr(ss, name, lambda *a, _o=orig, _n=name, **k: calls.append(_n) or _o(*a, **k))
    x = make(1, 2, 9)
    monkeypatch.setenv("VTR_SCAN", "ref")
    ss.selective_scan(**x)
    ss.selective_scan(**x, impl="cpu")  # the argument wins over the environment
    monkeypatch.delenv("VTR_SCAN")
    ss.selective_scan(**x)
    fast = "selective_scan_numba" if HAS_NUMBA else "selective_scan_torch"
    assert calls == ["selective_scan_ref", fast, fast]
    with pytest.raises(ValueError):
        ss.selective_scan(**x, impl="fastest")


def test_numba_missing_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(ss, "_load_numba", lambda: None)
    monkeypatch.delenv("VTR_SCAN", raising=False)
    assert ss._resolve(None, "cpu") == "torch"
    assert ss.available_backends()["numba"] is False
    x = make(1, 3, 20)
    assert rel(ss.selective_scan(**x, delta_softplus=True), scan64(**x, delta_softplus=True)) < 1e-5


def test_mamba_ssm_missing_cuda_goes_to_torch(monkeypatch):
    monkeypatch.setattr(ss, "_load_mamba_ssm", lambda: None)
    assert ss._resolve("auto", "cuda") == "torch"
    assert ss._resolve("cuda", "cuda") == "torch"
    assert ss._resolve("cpu", "cuda") == "torch"


def _kernel_like_mamba_ssm(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The checks selective_scan_cuda.fwd makes on its arguments (csrc/selective_scan/selective_scan.cpp), then the
    reference scan: the kernel's contract, on the CPU."""
    assert A.dtype == torch.float32
    for name, t in (("delta", delta), ("B", B), ("C", C), ("z", z)):
        if t is not None and t.dtype != u.dtype:
            raise RuntimeError(f"Expected {name}.scalar_type() == input_type to be true, but got false.")
    return ss.selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def test_the_mamba_ssm_kernel_gets_its_arguments_in_u_s_dtype(monkeypatch):
    """Under CUDA autocast without causal_conv1d, the conv returns fp32 u while in_proj's gate z is bf16: the kernel
    refuses that pair (seen on an H200), so z is upcast to u's dtype, and the result is the fp32 scan's."""
    monkeypatch.setattr(ss, "_load_mamba_ssm", lambda: _kernel_like_mamba_ssm)
    monkeypatch.setattr(ss, "_resolve", lambda impl, device_type: "mamba_ssm")  # as for CUDA tensors
    x = make(2, 8, 30)
    mixed = {**x, "z": x["z"].bfloat16()}
    y = ss.selective_scan(**mixed, delta_softplus=True)
    assert y.dtype == torch.float32
    ref = scan64(**{**x, "z": mixed["z"].float()}, delta_softplus=True)
    assert rel(y, ref) < 1e-5


def test_fresh_process_without_numba_imports_and_runs():
    code = (
        "import sys; sys.modules['numba'] = None\n"  # makes `import numba` raise ImportError
        "import torch, vtr\n"
        "from vtr.ops.selective_scan import selective_scan, available_backends\n"
        "assert available_backends()['cpu'] == 'torch', available_backends()\n"
        "u = torch.randn(1, 2, 5, requires_grad=True)\n"
        "y = selective_scan(u, torch.rand(1, 2, 5), -torch.rand(2, 4), torch.randn(1, 4, 5), torch.randn(1, 4, 5))\n"
        "y.sum().backward(); print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@needs_numba
def test_numba_threads_follow_torch():
    import numba

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            ss.selective_scan_numba(**make(1, 2, 5))
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@needs_numba
def test_first_numba_launch_leaves_torch_threads_alone():
    # starting numba's OpenMP pool sets the process's OpenMP thread count to NUMBA_NUM_THREADS, which is torch's
    # count too: a process that asked torch for 1 thread must still have 1 after its first scan
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from vtr.ops import selective_scan as ss\n"
        "x = dict(u=torch.randn(1, 9, 4), delta=torch.rand(1, 9, 4), A=-torch.rand(4, 3), B=torch.randn(1, 9, 3),\n"
        "         C=torch.randn(1, 9, 3))\n"
        "ss.selective_scan_rows(**x, impl='cpu')\n"
        "import numba\n"
        "print('THREADS', torch.get_num_threads(), numba.get_num_threads())\n"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS="3", OMP_NUM_THREADS="3")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "THREADS 1 1" in r.stdout, r.stdout


# ------------------------------------------------------------------------------------------------ CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)], ids=["fp32", "bf16"])
def test_cuda_path_matches_cpu(dtype, tol, mamba_ssm_scan_calls):
    x = make(2, 64, 300, dtype=dtype)
    cpu = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
    gpu = {k: v.cuda().requires_grad_() if v is not None else None for k, v in x.items()}
    y_cpu = ss.selective_scan(**cpu, delta_softplus=True, impl="cpu")
    y_gpu = ss.selective_scan(**gpu, delta_softplus=True, impl="cuda")
    assert mamba_ssm_scan_calls == [(2, 64, 300)]  # the kernel ran, not the PyTorch fallback
    assert y_gpu.dtype == dtype and y_gpu.is_cuda
    assert rel(y_gpu.cpu(), y_cpu) < tol
    g = torch.randn(y_cpu.shape).to(dtype)
    y_cpu.backward(g)
    y_gpu.backward(g.cuda())
    for k in NAMES:
        assert rel(gpu[k].grad.cpu(), cpu[k].grad) < tol, k


@pytest.mark.gpu
def test_torch_fallback_on_cuda_matches_cpu():
    x = make(1, 16, 200)
    y = ss.selective_scan_torch(**{k: v.cuda() if v is not None else None for k, v in x.items()}, delta_softplus=True)
    assert rel(y.cpu(), scan64(**x, delta_softplus=True)) < 1e-5


# ------------------------------------------------------------------------- numba inference kernel (no grad)
# channel counts around the 16-channel block (1, 15, 17, 37), L around the 64-step chunk, N not a power of 2
@needs_numba
@pytest.mark.parametrize("softplus", [True, False], ids=["softplus", "raw"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "D%d-z%d-bias%d" % o)
@pytest.mark.parametrize("shape", [(2, 37, 150, 16), (3, 17, 64, 16), (1, 15, 65, 12), (2, 1, 3, 5), (1, 33, 129, 32)],
                         ids=lambda s: "x".join(map(str, s)))
def test_numba_inference_kernel_matches_reference(shape, opts, softplus):
    x = make(*shape, softplus=softplus, with_D=opts[0], with_z=opts[1], with_bias=opts[2])
    with torch.no_grad():
        y = ss.selective_scan_numba(**x, delta_softplus=softplus)
        ref = ss.selective_scan_ref(**x, delta_softplus=softplus)
    y64 = scan64(**x, delta_softplus=softplus)
    assert y.shape == ref.shape and y.dtype == torch.float32
    assert rel(y, y64) < 1e-5
    assert rel(y, ref) < 1e-5


@needs_numba
def test_numba_inference_and_training_forward_agree():
    # the no-grad path (gate read in place) and the autograd path (the same kernel saving checkpoints, the
    # gate copied): one output, bit for bit
    x = make(2, 19, 200, softplus=True)
    with torch.no_grad():
        y_inf = ss.selective_scan_numba(**x, delta_softplus=True)
    xg = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
    y_train = ss.selective_scan_numba(**xg, delta_softplus=True)
    assert torch.equal(y_inf, y_train.detach())


def _elementwise(fn):
    """A jitted ``run(x, out)`` that writes ``fn(x[i])`` to ``out[i]`` (fn: one of the kernels' inline scalar
    functions, which only exist inside jitted code)."""
    from numba import njit

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    return run


@needs_numba
def test_the_gate_silu_is_accurate_to_a_few_ulp():
    from vtr.ops._scan_numba import silu32

    run = _elementwise(silu32)
    x = np.concatenate([np.linspace(-80, 80, 1_000_001), [-1e30, -200.0, 0.0, 200.0, 1e30]]).astype(np.float32)
    out = np.empty_like(x)
    run(x, out)
    x64 = x.astype(np.float64)
    ref = x64 / (1 + np.exp(-np.clip(x64, -700, 700)))
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    inside = np.abs(x) <= 80
    assert (np.abs(out - ref) / ulp)[inside].max() <= 3
    assert np.isfinite(out).all() and (out[x == 0] == 0).all()
    # far out: x itself for large x; for very negative x, x·e^-88 (exp's clamp, as x·sigmoid32 gives): about 0
    assert out[x == 200.0] == 200.0 and out[x == 1e30] == np.float32(1e30)
    assert ((out[x <= -200.0] <= 0) & (np.abs(out[x <= -200.0]) < 1e-8)).all()


@needs_numba
def test_exp2_of_the_recurrence_is_accurate_to_two_ulp_and_clamps():
    from vtr.ops._scan_numba import exp2_32

    run = _elementwise(exp2_32)
    x = np.concatenate([np.linspace(-126, 126, 2_000_001), np.linspace(-0.5, 0.5, 200_001),
                        [-125.5, -0.5, 0.0, 0.5, 125.5]]).astype(np.float32)
    out = np.empty_like(x)
    run(x, out)
    assert (out[x == 0] == 1.0).all()  # the decay of a zero step is exactly 1 (p(0) = 1)
    err = np.abs(out.astype(np.float64) / np.exp2(x.astype(np.float64)) - 1)
    assert err.max() < 2.5e-7, err.max()
    # at and past the clamps: exactly 2**-126 and 2**126, never a garbage exponent, an inf or a zero
    far = np.array([-1e4, -200.0, -126.0, 126.0, 200.0, 1e4], np.float32)
    out = np.empty_like(far)
    run(far, out)
    assert np.isfinite(out).all() and (out > 0).all()
    assert out[0] == out[1] == out[2] == np.float32(2.0 ** -126)
    assert out[3] == out[4] == out[5] == np.float32(2.0 ** 126)


@needs_numba
def test_numba_inference_long_sequence_strong_decay():
    # many chunks, decays that underflow exp's clamp range and large Δ (softplus threshold branch)
    x = make(1, 20, 700)
    x["A"] = x["A"] * 30
    x["delta"] = x["delta"] * 20
    with torch.no_grad():
        y = ss.selective_scan_numba(**x, delta_softplus=True)
    assert torch.isfinite(y).all()
    assert rel(y, scan64(**x, delta_softplus=True)) < 1e-5


# ------------------------------------------- channels-last inference entry (the mixer's rows, run back to front)
def _rows_case(dtype_z, sliced, batch=2, dim=21, length=130, n=16):
    """A scan's inputs as rows, [B, L, ·], and its gate: z as the mixer passes it when ``sliced`` (a column slice
    of a wider tensor, the xz of in_proj) with B and C as column slices of one x_dbl."""
    x = {k: (v.mT.contiguous() if v is not None and v.dim() == 3 else v) for k, v in make(batch, dim, length, n).items()}
    z = x.pop("z")
    if sliced:
        wide = torch.randn(batch, length, 2 * dim)
        wide[..., dim:] = z
        z = wide.to(dtype_z)[..., dim:]
        x_dbl = torch.randn(batch, length, 3 + 2 * n)
        x_dbl[..., 3:3 + n], x_dbl[..., 3 + n:] = x["B"], x["C"]
        x["B"], x["C"] = x_dbl[..., 3:3 + n], x_dbl[..., 3 + n:]
        assert not (z.is_contiguous() or x["B"].is_contiguous() or x["C"].is_contiguous())
    else:
        z = z.to(dtype_z)
    return x, z


@pytest.fixture(params=[16, 64], ids=["blocks16", "blocks64"])
def block_width(request, monkeypatch):
    """The inference scan's channels per block, forced (it is otherwise chosen from the batch and the threads)."""
    monkeypatch.setattr(ss._load_numba(), "rows_width", lambda nb, nd, threads: request.param)
    return request.param


def _cf(x, z, reverse):
    """The channels-first, scan-order inputs that the rows stand for."""
    flip = (lambda t: t.flip(1)) if reverse else (lambda t: t)  # noqa: E731
    return {k: (flip(v).mT.contiguous() if v is not None and v.dim() == 3 else v) for k, v in x.items()}, \
        flip(z.float()).mT.contiguous()


@needs_numba
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reversed"])
@pytest.mark.parametrize("with_add", [False, True], ids=["alone", "add"])
@pytest.mark.parametrize("dtype_z, sliced", [(torch.float32, False), (torch.float32, True), (torch.bfloat16, True)],
                         ids=["z32", "z32-slice", "z16-slice"])
def test_scan_rows_match_the_reference(reverse, with_add, dtype_z, sliced, block_width):
    x, z = _rows_case(dtype_z, sliced, dim=21 if block_width == 16 else 150)  # a partial last block
    add = torch.randn(x["u"].shape) if with_add else None
    xc, zc = _cf(x, z, reverse)
    with torch.no_grad():
        # the readable composition (transpose, flip, reference scan, flip back, add) is the ground truth
        want = ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=reverse,
                                      add=None if add is None else add.clone(), impl="ref")
        ref = ss.selective_scan_ref(**xc, z=zc, delta_softplus=True).mT
        ref = (ref.flip(1) if reverse else ref) + (0 if add is None else add)
        assert rel(want, ref) < 1e-7  # the composition is literally that (the reference on transposed views)
        got = ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=reverse,
                                     add=None if add is None else add.clone(), out_dtype=torch.float32)
        got16 = ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=reverse,
                                       add=None if add is None else add.clone(), out_dtype=torch.bfloat16)
        y64 = scan64(**xc, z=zc, delta_softplus=True).mT
        y64 = (y64.flip(1) if reverse else y64) + (0 if add is None else add.double())
    assert got.dtype == torch.float32 and got16.dtype == torch.bfloat16
    assert rel(got, want) < 1e-5 and rel(got, y64) < 1e-5
    # bf16 output: the same fp32 values, rounded once to nearest even (as torch's cast rounds)
    assert torch.equal(got16, got.to(torch.bfloat16))


@needs_numba
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reversed"])
def test_scan_rows_kernel_is_the_training_kernel_bit_for_bit(reverse, block_width):
    # scan_rows does scan_fwd's arithmetic in scan_fwd's order, in blocks of 16 or 64 channels; only where it reads
    # and writes differs
    x, z = _rows_case(torch.float32, sliced=True, batch=3, dim=37 if block_width == 16 else 150, length=200)
    xc, zc = _cf(x, z, reverse)
    with torch.no_grad():
        rows = ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=reverse)
        cf = ss.selective_scan_numba(**xc, z=zc, delta_softplus=True).mT
    assert torch.equal(rows, cf.flip(1) if reverse else cf)


@needs_numba
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reversed"])
def test_scan_rows_reads_bf16_u_and_delta_as_their_fp32_values(reverse, monkeypatch, block_width):
    # the official bf16 path's scan inputs (u from the conv, Δ from dt_proj, both bf16): read in place and widened
    # exactly, so the result is that of their fp32 values bit for bit, with no fp32 copy of either made
    x, z = _rows_case(torch.bfloat16, sliced=True, batch=2, dim=37, length=90)
    low = {**x, "u": x["u"].to(torch.bfloat16), "delta": x["delta"].to(torch.bfloat16)}
    wide = {**x, "u": low["u"].float(), "delta": low["delta"].float()}
    add = torch.randn(x["u"].shape)
    with torch.no_grad():
        want = ss.selective_scan_rows(**wide, z=z, delta_softplus=True, reverse=reverse, add=add.clone(),
                                      out_dtype=torch.bfloat16)
        casts = []
        real_to = torch.Tensor.to
        monkeypatch.setattr(torch.Tensor, "to",
                            lambda self, *a, **k: casts.append((self.dtype, self.shape)) or real_to(self, *a, **k))
        got = ss.selective_scan_rows(**low, z=z, delta_softplus=True, reverse=reverse, add=add.clone(),
                                     out_dtype=torch.bfloat16)
        monkeypatch.undo()
    assert torch.equal(got, want)
    assert (torch.bfloat16, x["u"].shape) not in casts  # neither u nor Δ was copied to fp32 on the way in
    with torch.no_grad():
        assert not torch.equal(got, ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=reverse,
                                                           add=add.clone(), out_dtype=torch.bfloat16))


@needs_numba
def test_scan_rows_block_width_follows_the_batch_and_the_threads(monkeypatch):
    mod = ss._load_numba()
    assert (mod.W, mod.WR) == (16, 64)
    assert mod.rows_width(4, 1152, 2) == 64  # a batch of M clips on 2 cores: 72 tasks of 64 channels
    assert mod.rows_width(1, 1152, 2) == 64
    assert mod.rows_width(1, 1152, 16) == 16  # one clip on 16 threads: 18 wide tasks would idle 14 threads a round
    assert mod.rows_width(4, 1152, 16) == 64
    assert mod.rows_width(1, 20, 1) == 16  # 20 channels: a block of 64 would be mostly empty lanes

    # the kernel has recurrences of 16 and 64 lanes only: any other width is refused, not run on mismatched rows
    x, z = _rows_case(torch.float32, sliced=False)
    monkeypatch.setattr(mod, "rows_width", lambda nb, nd, threads: 32)
    with torch.no_grad(), pytest.raises(ValueError, match="width must be W or WR"):
        ss.selective_scan_rows(**x, z=z, delta_softplus=True)


@needs_numba
def test_scan_rows_reads_slices_in_place_and_adds_without_a_new_buffer(monkeypatch):
    x, z = _rows_case(torch.bfloat16, sliced=True)
    add = torch.randn(x["u"].shape)
    expect = add + ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=True, impl="ref")
    copies, flips = [], []
    real_contig, real_flip = torch.Tensor.contiguous, torch.Tensor.flip

    def contiguous(self, *a, **k):
        if not self.is_contiguous():
            copies.append(tuple(self.shape))
        return real_contig(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "contiguous", contiguous)
    monkeypatch.setattr(torch.Tensor, "flip", lambda self, *a: flips.append(a) or real_flip(self, *a))
    with torch.no_grad():
        got = ss.selective_scan_rows(**x, z=z, delta_softplus=True, reverse=True, add=add)
    assert flips == [] and copies == []  # the bf16 gate and B, C were read where they lie
    assert got.data_ptr() == add.data_ptr()  # the sum was written over `add`
    assert rel(got, expect) < 1e-5


def test_scan_rows_under_autograd_is_the_differentiable_composition():
    x, z = _rows_case(torch.float32, sliced=False, batch=1, dim=3, length=20)
    xg = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
    y = ss.selective_scan_rows(**xg, z=z, delta_softplus=True, reverse=True)
    xc, zc = _cf(x, z, True)
    assert rel(y.detach(), scan64(**xc, z=zc, delta_softplus=True).mT.flip(1)) < 1e-5
    y.sum().backward()
    assert all(xg[k].grad is not None for k in ("u", "delta", "A", "B", "C"))


def test_scan_rows_rejects_mismatched_shapes():
    x, z = _rows_case(torch.float32, sliced=False, batch=1, dim=3, length=20)
    with pytest.raises(ValueError, match="z must be"):
        ss.selective_scan_rows(**x, z=z[:, :10])
    with pytest.raises(ValueError, match="B must be"):
        ss.selective_scan_rows(**{**x, "B": x["B"].mT})


def test_cols_of_reads_a_column_slice_without_a_copy():
    with torch.inference_mode():  # the mixer's views: made under inference_mode, so they do not know their base
        wide = torch.randn(3, 10, 7)
        # every other row is a column slice too: of [3, 5, 14] rows, the odd ones' columns 3.. at offset 7 + 3
        for view, offset in ((wide[..., 5:], 5), (wide[..., 2:4], 2), (wide[:, ::2], 0), (wide[:, 1::2, 3:], 10)):
            src, off = ss._cols_of(view)
            assert src.is_contiguous() and off == offset and src.data_ptr() == wide.data_ptr()  # no copy
            assert torch.equal(src[..., off:off + view.shape[2]], view)  # what the kernel reads is the view
        for other in (wide.mT, wide[..., ::2], wide[:, :1].expand(3, 10, 7)):  # no column layout: copied
            src, off = ss._cols_of(other)
            assert off == 0 and src.is_contiguous() and torch.equal(src, other)
            assert src.data_ptr() != wide.data_ptr()


@needs_numba
def test_forked_child_trains_with_the_serial_kernels():
    # GNU OpenMP is not fork safe: a child forked after the parent's parallel launch (a fork-started DataLoader
    # worker) gets serial builds of both kernels, and they compute what the parent's parallel ones do
    code = (
        "import multiprocessing as mp, torch\n"
        "import vtr.ops.selective_scan as ss\n"
        "torch.manual_seed(0)\n"
        "x = [torch.randn(2, 21, 70), torch.rand(2, 21, 70), -torch.rand(21, 16), torch.randn(2, 16, 70),\n"
        "     torch.randn(2, 16, 70), torch.randn(21), torch.randn(2, 21, 70)]\n"
        "def grads():\n"
        "    xs = [t.clone().requires_grad_() for t in x]\n"
        "    y = ss.selective_scan_numba(*xs, delta_softplus=True)\n"
        "    y.pow(2).sum().backward()\n"
        "    return [y.detach()] + [t.grad for t in xs]\n"
        "def child(q):\n"
        "    q.put(([t.numpy() for t in grads()], ss._numba_state['serial'] is not None))  # by value\n"
        "parent = grads()\n"
        "ctx = mp.get_context('fork'); q = ctx.Queue(); p = ctx.Process(target=child, args=(q,)); p.start()\n"
        "got, serial = q.get(timeout=300); p.join(60)\n"
        "assert p.exitcode == 0, p.exitcode\n"
        "import numba\n"
        "assert serial == (numba.threading_layer() == 'omp'), serial\n"
        "for a, b in zip(got, parent):\n"
        "    assert torch.allclose(torch.from_numpy(a), b, rtol=1e-5, atol=1e-6), (a - b.numpy()).max()\n"
        "print('ok', serial)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


@needs_numba
def test_numba_backward_propagates_a_nonfinite_gradient():
    # the divergence guard reads the gradient norm: a NaN in one channel's incoming gradient must reach the
    # gradients that sum over channels (B, C), not vanish in the reassociated lane sums
    x = {k: v.clone().requires_grad_() for k, v in make(1, 20, 70).items()}
    y = ss.selective_scan_numba(**x, delta_softplus=True)
    g = torch.randn_like(y)
    g[0, 17, 40] = float("nan")
    y.backward(g)
    assert not torch.isfinite(x["B"].grad).all() and not torch.isfinite(x["C"].grad).all()
    assert torch.isfinite(x["u"].grad[0, :17]).all()  # the other channels' own gradients are untouched


_WIDE_CHILD = (
    "import os, sys, numpy as np, torch\n"
    "from vtr.ops import selective_scan as ss\n"
    "torch.manual_seed(0)\n"
    "D, L, N = 40, 150, 16\n"
    "x = dict(u=torch.randn(2, D, L), delta=torch.randn(2, D, L) * 0.5 - 1, A=-torch.rand(D, N) * 4,\n"
    "         B=torch.randn(2, N, L), C=torch.randn(2, N, L), D=torch.randn(D), z=torch.randn(2, D, L),\n"
    "         delta_bias=torch.randn(D) * 0.1)\n"
    "y = ss.selective_scan_rows(**{k: v.mT if v.dim() == 3 else v for k, v in x.items()}, delta_softplus=True,\n"
    "                           impl='cpu')\n"
    "xs = {k: v.clone().requires_grad_() for k, v in x.items()}\n"
    "ss.selective_scan_numba(**xs, delta_softplus=True).pow(2).sum().backward()\n"
    "from numba.core.registry import cpu_target\n"
    "feats = cpu_target.target_context.codegen()._tm_features\n"
    "np.savez(sys.argv[1], y=y.numpy(), **{k: v.grad.numpy() for k, v in xs.items()})\n"
    "print('WIDE', feats.endswith(',-prefer-256-bit'), 'NUMBA_CPU_FEATURES' in os.environ)\n"
)


@needs_numba
def test_numba_512_bit_vectors_change_speed_not_results(tmp_path):
    # vtr lets numba's LLVM use zmm registers on AVX-512 hosts (LLVM's tuning for Intel server cores prefers
    # 256-bit ones); it must act only there, leave the environment as it was and compute the same numbers
    import llvmlite.binding as llvm

    avx512 = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
    out = {}
    for wide in ("1", "0"):
        env = dict(os.environ, VTR_NUMBA_WIDE=wide)
        env.pop("NUMBA_CPU_FEATURES", None), env.pop("NUMBA_CPU_NAME", None)
        r = subprocess.run([sys.executable, "-c", _WIDE_CHILD, str(tmp_path / f"w{wide}.npz")], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("WIDE")][-1]
        assert line == f"WIDE {avx512 and wide == '1'} False", line
        out[wide] = np.load(tmp_path / f"w{wide}.npz")
    # the forward's sums run in a fixed order (a pairwise tree over the state): the same bits either way
    np.testing.assert_array_equal(out["1"]["y"], out["0"]["y"])
    for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"):  # lane sums reassociate: rounding only
        np.testing.assert_allclose(out["1"][k], out["0"][k], rtol=1e-5, atol=1e-5, err_msg=k)


_TARGET_CHILD = (
    "import sys, numpy as np, torch\n"
    "from vtr.ops import selective_scan as ss, _scan_numba as k\n"
    "torch.manual_seed(0)\n"
    "D, L, N = 40, 150, 16\n"
    "x = dict(u=torch.randn(2, D, L), delta=torch.randn(2, D, L) * 0.5 - 1, A=-torch.rand(D, N) * 4,\n"
    "         B=torch.randn(2, N, L), C=torch.randn(2, N, L), D=torch.randn(D), z=torch.randn(2, D, L),\n"
    "         delta_bias=torch.randn(D) * 0.1)\n"
    "ref = ss.selective_scan(**x, delta_softplus=True, impl='ref')\n"
    "x64 = {k_: v.double() for k_, v in x.items()}\n"  # the truth: the recurrence in float64
    "dt = torch.nn.functional.softplus(x64['delta'] + x64['delta_bias'][:, None])\n"
    "dA = torch.exp(torch.einsum('bdl,dn->bdln', dt, x64['A']))\n"
    "dBu = torch.einsum('bdl,bnl,bdl->bdln', dt, x64['B'], x64['u'])\n"
    "h, ys = torch.zeros(2, D, N, dtype=torch.float64), []\n"
    "for t in range(L):\n"
    "    h = dA[:, :, t] * h + dBu[:, :, t]\n"
    "    ys.append(torch.einsum('bdn,bn->bd', h, x64['C'][:, :, t]))\n"
    "truth = (torch.stack(ys, 2) + x64['u'] * x64['D'][:, None]) * torch.nn.functional.silu(x64['z'])\n"
    "rows = ss.selective_scan_rows(**{k_: v.mT if v.dim() == 3 else v for k_, v in x.items()}, delta_softplus=True,\n"
    "                              impl='cpu').mT\n"
    "fwd = ss.selective_scan_numba(**x, delta_softplus=True).detach()\n"
    "err = (rows.double() - truth).abs() / (1 + truth.abs())\n"  # relative where |y| > 1 (it reaches 15 here)
    "at = int(err.argmax())\n"
    "print('SCALEF', k.SCALEF, 'ROWS_EQ_FWD', torch.equal(rows, fwd), 'ERR', float(err.max()),\n"
    "      'REF_ERR', float(((ref.double() - truth).abs() / (1 + truth.abs())).max()),\n"
    "      'AT', np.unravel_index(at, err.shape), 'GOT', float(rows.flatten()[at]),\n"
    "      'WANT', float(truth.flatten()[at]))\n"
)


@needs_numba
def test_kernels_built_for_a_cpu_without_avx512(tmp_path):
    """The recurrence's hand-written vector code (``_recurrence``) has a second way to scale by 2**k for targets
    without AVX-512; build every kernel for such a target (AVX2 + FMA, and x86-64 with neither) in a fresh process
    and check it against the recurrence in float64, and the inference kernel against the training one, bit for bit.
    (Twice in about 30 CI runs, both kernels agreed with each other but were 0.0019 from torch's float32 reference,
    which the test compared with then; the line it prints says which side is off, and where.) The two targets build
    side by side: LLVM compiles on one core each."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"haswell and generic are x86-64 targets; this machine is {platform.machine()}")
    children = {}
    for cpu in ("haswell", "generic"):
        env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CACHE_DIR=str(tmp_path / cpu))
        env.pop("NUMBA_CPU_FEATURES", None)
        children[cpu] = subprocess.Popen([sys.executable, "-c", _TARGET_CHILD], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    try:
        for cpu, child in children.items():
            out, err = child.communicate(timeout=600)
            assert child.returncode == 0, (cpu, out + err)
            words = [ln for ln in out.splitlines() if ln.startswith("SCALEF")][-1].split()
            assert words[1] == "False" and words[3] == "True", (cpu, words)
            assert float(words[5]) < 1e-5, (cpu, words)
    finally:
        for child in children.values():
            if child.poll() is None:  # a failed check above left it running
                child.kill()
                child.communicate()


@needs_numba
@pytest.mark.parametrize("scalef", [True, False])
def test_exp2_scales_the_same_with_and_without_avx512(scalef):
    """Both ways of scaling by 2**k (``vscalefps`` where the CPU has AVX-512, the exponent's bits elsewhere) give
    the same bits; each is compiled here whatever this CPU has (without AVX-512 the ldexp is slow, never wrong)."""
    import types as pytypes

    import llvmlite.binding as llvm
    from numba import njit

    from vtr.ops import _scan_numba as mod

    if scalef and llvm.llvm_version_info < (16,):
        pytest.skip("llvm.ldexp needs LLVM 16+ (numba >= 0.61); SCALEF is False on older ones")
    f = mod.exp2_32.py_func
    variant = njit(inline="always")(pytypes.FunctionType(f.__code__, {**f.__globals__, "SCALEF": scalef}))

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = variant(x[i])

    @njit
    def run_host(x, out):
        for i in range(x.size):
            out[i] = mod.exp2_32(x[i])

    edges = [-np.inf, np.inf, -125.5, -0.5, 0.5, 125.5]
    x = np.concatenate([np.linspace(-130, 130, 1_000_001), edges]).astype(np.float32)
    out, host = np.empty_like(x), np.empty_like(x)
    run(x, out)
    run_host(x, host)
    assert np.array_equal(out.view(np.int32), host.view(np.int32))
    x = np.float32(np.nan) * np.ones(3, np.float32)
    run(x, out[:3])
    assert np.isnan(out[:3]).all()


@needs_numba
def test_scalef_follows_the_target_numba_compiles_for(monkeypatch):
    """``vscalefps`` only where numba's target has AVX-512: the features numba was given, never a named other target
    (a ``generic`` build for a shared cache would otherwise get a vector ldexp LLVM expands into scalar calls)."""
    from numba.core import config

    from vtr.ops import _scan_numba as mod

    monkeypatch.setattr(config, "CPU_FEATURES", "+64bit,+avx2,-avx512f")
    assert mod._target_has_avx512() is False
    monkeypatch.setattr(config, "CPU_FEATURES", "+64bit,+avx2,+avx512f,-prefer-256-bit")
    assert mod._target_has_avx512() is True
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert mod._target_has_avx512() is False
    monkeypatch.setattr(config, "CPU_NAME", None)
    import llvmlite.binding as llvm
    assert mod._target_has_avx512() is bool(llvm.get_host_cpu_features().get("avx512f", False))
