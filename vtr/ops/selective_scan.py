"""The selective scan of Mamba (model.md §3): the readable reference, the fast paths, and one dispatch.

All implementations share mamba_ssm's ``selective_scan_fn`` signature and semantics::

    u:          [B, D, L]   input (after conv + SiLU)
    delta:      [B, D, L]   Δ before bias/softplus
    A:          [D, N]      fp32, negative (A = -exp(A_log))
    B, C:       [B, N, L]   input-dependent ("variable") B and C
    D:          [D] or None skip connection
    z:          [B, D, L] or None gate: output *= SiLU(z)
    delta_bias: [D] or None added to delta before softplus
    returns     [B, D, L]   in u's dtype

Recurrence, from s₀ = 0 of shape [D, N]::

    Δ = softplus(delta + delta_bias)                  (if delta_softplus)
    s_t = exp(Δ_t · A) ⊙ s_{t-1} + (Δ_t · u_t) ⊗ B_t
    y_t = s_t · C_t + D ⊙ u_t;   out_t = y_t ⊙ SiLU(z_t)

Implementations, side by side (every one computes in fp32 and casts the result back to u's dtype):

- :func:`selective_scan_ref` — the readable loop, the ground truth for tests.
- ``numba`` — fused CPU kernels (``_scan_numba.py``), one pass per block of 16 channels (SIMD lanes across
  channels): with autograd the forward checkpoints the state every 64 steps, and a hand-written reverse-time
  backward recomputes from them; for inference a kernel on channels-last rows (:func:`selective_scan_rows`).
- :func:`selective_scan_torch` — pure PyTorch, any device: a chunked two-level sequential scan, vectorised
  over channels, state and chunks; autograd with per-channel-tile recomputation.
- ``mamba_ssm`` — ``selective_scan_fn``'s CUDA kernel.

:func:`selective_scan` chooses at run time (``impl`` argument, else env ``VTR_SCAN``, default ``auto``):

============  =====================================  ======================================
``VTR_SCAN``  CPU tensors                            CUDA tensors
============  =====================================  ======================================
``auto``      numba, else torch                      mamba_ssm, else torch
``cpu``       numba, else torch                      torch
``cuda``      torch                                  mamba_ssm, else torch
``ref``       reference                              reference
============  =====================================  ======================================

:func:`selective_scan_rows` is the inference entry in the bidirectional mixer's own layout, channels last
([B, L, D], what its projections read and write), with its options (the scan run back to front, a sum with the other
direction, a bf16 result): one numba kernel call on that path, the readable composition transpose → flip → scan →
flip → transpose → add → cast everywhere else.

numba and mamba_ssm are imported inside functions on first use; an import failure is logged once and the next
best path runs, so ``import vtr`` never fails for want of either. :func:`available_backends` says what would run.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import threading

import torch
import torch.utils.checkpoint
import torch.nn.functional as F

log = logging.getLogger(__name__)

IMPLS = ("auto", "cpu", "cuda", "ref")
_P_FLUSH = 1e-20  # decay products below this are zero: P·S then stays far from the denormal range


# ------------------------------------------------------------------------------------------------ reference
def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Readable reference (mamba_ssm ``selective_scan_ref``), O(L) Python steps.

    u, delta, z: [B, D, L]; A: [D, N]; B, C: [B, N, L]; D, delta_bias: [D]. Returns [B, D, L] in u's dtype.
    Computed in fp32 whatever the input dtype: Δ·A and Δ·B·u are materialised as [B, D, L, N], then one
    state update and C contraction per time step.
    """
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    B = B.float()
    C = C.float()
    A = A.float()
    delta_A = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # [B, D, L, N]
    delta_B_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # [B, D, L, N]
    state = u.new_zeros(batch, dim, A.shape[1])  # [B, D, N]
    ys = []
    for t in range(length):
        state = delta_A[:, :, t] * state + delta_B_u[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", state, C[:, :, t]))
    y = torch.stack(ys, dim=2)  # [B, D, L]
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(dtype_in)


def _check_shapes(u, delta, A, B, C):
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be [B, D, L] of one shape, got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be [D, N] with D = {dim}, got {tuple(A.shape)}")
    want = (batch, A.shape[1], length)
    if tuple(B.shape) != want or tuple(C.shape) != want:
        raise ValueError(f"B and C must be [B, N, L] = {want} (variable B/C only), got {tuple(B.shape)}, {tuple(C.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported")


# ------------------------------------------------------------------------------------------ pure PyTorch
def _scan_tile(dt, u, A, Bk, Ck):
    """y [b, d, K*T] of the zero-initialised scan for one channel tile.

    dt, u: [b, d, K*T] (Δ after bias/softplus, zero padded); A: [d, N]; Bk, Ck: [T, b, K, N] (B, C split in K
    chunks of T steps, time-in-chunk first so that every step below reads one contiguous slab).

    Two levels, both plain sequential recurrences (no cumsum/cumprod-in-log-space, no division, so no
    overflow or cancellation): (1) all K chunks at once, T steps: the chunk-local state h (zero start) and
    the running decay product P = Π exp(Δ·A); (2) K steps across chunks: the state S entering each chunk.
    Then s_t = h_t + P_t · S_chunk.
    """
    b, d, Lp = dt.shape
    T, _, K, N = Bk.shape
    dtT = dt.reshape(b, d, K, T).permute(3, 0, 1, 2)  # [T, b, d, K]
    duT = (dt * u).reshape(b, d, K, T).permute(3, 0, 1, 2)
    # Denormals make x86 arithmetic ~1000x slower: keep exp's argument ≥ -80 (exp(-80) ≈ 2e-35, an absolute
    # error far below fp32 resolution of any state) and flush decay products below 1e-20 to zero.
    dA = torch.exp((dtT[..., None] * A[None, None, :, None, :]).clamp_min(-80.0))  # [T, b, d, K, N]
    dBu = duT[..., None] * Bk[:, :, None]  # [T, b, d, K, N]
    h, P = dBu[0], dA[0]
    hs, Ps = [h], [P]
    for j in range(1, T):
        h = dA[j] * h + dBu[j]
        P = torch.threshold(P * dA[j], _P_FLUSH, 0.0)
        hs.append(h)
        Ps.append(P)
    S = [torch.zeros_like(h[:, :, 0])]  # state entering chunk 0: [b, d, N]
    for k in range(1, K):
        S.append(P[:, :, k - 1] * S[-1] + h[:, :, k - 1])
    S = torch.stack(S, dim=2)  # [b, d, K, N]
    states = torch.stack(hs) + torch.stack(Ps) * S  # [T, b, d, K, N]
    y = torch.einsum("tbdkn,tbkn->bdkt", states, Ck)
    return y.reshape(b, d, Lp)


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         chunk=None, tile_elems=1 << 23):
    """Pure-PyTorch scan for any device, with autograd; same contract as :func:`selective_scan_ref`.

    Time is split in chunks of ``chunk`` steps (default ≈ √L, so ≈ 2√L sequential tensor ops), channels in
    tiles of about ``tile_elems`` state values. Under autograd every tile is recomputed in the backward
    (``torch.utils.checkpoint``), so memory stays O(tile) rather than O(B·D·L·N).
    """
    _check_shapes(u, delta, A, B, C)
    dtype_in = u.dtype
    batch, dim, length = u.shape
    N = A.shape[1]
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uf = u.float()
    T = chunk or max(4, int(round(math.sqrt(length))))
    K = -(-length // T)
    pad = K * T - length
    # zero padding at the end: Δ = 0 keeps the state, and the padded outputs are dropped
    dtp, up = F.pad(dt, (0, pad)), F.pad(uf, (0, pad))
    Bk = F.pad(B.float(), (0, pad)).reshape(batch, N, K, T).permute(3, 0, 2, 1)  # [T, b, K, N]
    Ck = F.pad(C.float(), (0, pad)).reshape(batch, N, K, T).permute(3, 0, 2, 1)
    Af = A.float()
    tile = max(1, tile_elems // (batch * K * T * N))
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, delta_bias))
    ys = []
    for d0 in range(0, dim, tile):
        args = (dtp[:, d0:d0 + tile], up[:, d0:d0 + tile], Af[d0:d0 + tile], Bk, Ck)
        if grad:
            ys.append(torch.utils.checkpoint.checkpoint(_scan_tile, *args, use_reentrant=False))
        else:
            ys.append(_scan_tile(*args))
    y = torch.cat(ys, dim=1)[..., :length]
    out = y if D is None else y + uf * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(dtype_in)


# ------------------------------------------------------------------------------------------ numba (CPU)
_numba_lock = threading.Lock()  # numba's workqueue layer forbids concurrent launches; one scan at a time anyway
_numba_state = {"module": None, "failed": False, "pid": None, "serial": None}


def _import_numba_wide() -> None:
    """Import numba so that its LLVM vectorises our loops with 512-bit registers on AVX-512 CPUs.

    LLVM's tuning for Intel's AVX-512 server cores (Skylake-SP to Emerald Rapids) prefers 256-bit vectors, so the
    kernels' 16-channel lanes (:mod:`vtr.ops._scan_numba`) ran as two ymm halves: twice the instructions of the
    exp-bound recurrence. Dropping that preference (what clang's ``-mprefer-vector-width=512`` does) made the
    inference scan 1.28× faster on one core of an Emerald Rapids VM (``python -m bench.encoder --sections wide``).
    numba reads its target once, as it is imported, so this only acts when vtr is the first to import numba; the
    host's own feature list is used, with one tuning flag changed, and the variable is removed again so that child
    processes see the user's environment. ``VTR_NUMBA_WIDE=0``, or the user's own ``NUMBA_CPU_NAME`` or
    ``NUMBA_CPU_FEATURES``, leave numba's default.
    """
    if ("numba" in sys.modules or os.environ.get("VTR_NUMBA_WIDE", "1") == "0"
            or os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME")):
        return
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return
    os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"
    try:
        import numba  # noqa: F401  (reads NUMBA_CPU_FEATURES here, once)
    finally:
        del os.environ["NUMBA_CPU_FEATURES"]


def load_numba_module(name: str, state: dict, fallback: str):
    """``vtr.ops.<name>`` (a numba kernels module), imported once into ``state["module"]``; None when numba cannot
    import, with one warning saying what runs instead (``fallback``)."""
    if state["module"] is None and not state["failed"]:
        try:
            _import_numba_wide()
            state["module"] = importlib.import_module(f"vtr.ops.{name}")
        except Exception as e:  # ImportError, or a broken llvmlite
            state["failed"] = True
            log.warning("numba unavailable (%s): %s", e, fallback)
    return state["module"]


def _load_numba():
    """The kernels module, or None when numba cannot import (logged once). Tests monkeypatch this."""
    return load_numba_module("_scan_numba", _numba_state, "the CPU selective scan falls back to pure PyTorch")


def _kernels(mod):
    """(scan_fwd, scan_bwd, scan_rows) to launch in this process.

    numba's GNU-OpenMP threading layer kills a forked child that launches a parallel kernel after the parent
    did (it is not fork safe). In such a child (e.g. a fork-started DataLoader worker) use serial builds.
    """
    import numba

    pid = os.getpid()
    if _numba_state["pid"] is None:
        _numba_state["pid"] = pid
    if pid != _numba_state["pid"]:
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel launch yet in this process tree
            layer = None
        if layer == "omp":
            if _numba_state["serial"] is None:
                log.info("forked process after an OpenMP parallel launch: using serial numba scan kernels")
                _numba_state["serial"] = tuple(numba.njit(fastmath={"contract"}, error_model="numpy")(k.py_func)
                                               for k in (mod.scan_fwd, mod.scan_bwd, mod.scan_rows))
            return _numba_state["serial"]
    return mod.scan_fwd, mod.scan_bwd, mod.scan_rows


def _pool_threads() -> int:
    """The threads numba's kernels run on: torch's intra-op thread count (torch.set_num_threads, OMP_NUM_THREADS),
    within numba's pool."""
    import numba

    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def _launch(kernel, *args):
    import numba

    with _numba_lock:
        threads = torch.get_num_threads()
        numba.set_num_threads(_pool_threads())
        if torch.get_num_threads() != threads:
            # the first call starts numba's OpenMP pool, which sets the process's OpenMP thread count (torch's
            # too) to every core: give torch back the count it had
            torch.set_num_threads(threads)
        kernel(*args)


def _f32(t):
    return t.detach().to(torch.float32).contiguous()


def numba_view(t: torch.Tensor):
    """A contiguous CPU tensor as the array a kernel reads: float32 -> its array; bfloat16 -> an int16 array of
    its bits (numba has no bf16; the kernels convert with ``as_f32`` / ``from_f32``)."""
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()


def _numba_inputs(u, delta, A, B, C, D, z, delta_bias):
    dim = u.shape[1]
    zeros = torch.zeros(dim, dtype=torch.float32)
    return (
        _f32(u), _f32(delta), _f32(A),
        _f32(B).transpose(1, 2).contiguous(), _f32(C).transpose(1, 2).contiguous(),  # [B, L, N]
        zeros if D is None else _f32(D),
        torch.zeros(1, 1, 1) if z is None else _f32(z),
        zeros if delta_bias is None else _f32(delta_bias),
    )


def _numba_forward(mod, inputs, delta_softplus, has_z, save=True):
    """The forward kernel: the output, and (``save``, for training) the state checkpoints its backward needs."""
    u32, d32, A32, Bt, Ct, Dv, z32, bias = inputs
    batch, dim, length = u32.shape
    out = torch.empty_like(u32)
    ckpt = torch.empty(batch, dim, -(-length // mod.CHUNK) if save else 0, A32.shape[1])
    fwd, _, _ = _kernels(mod)
    _launch(fwd, u32.numpy(), d32.numpy(), A32.numpy(), Bt.numpy(), Ct.numpy(), Dv.numpy(), z32.numpy(),
            bias.numpy(), bool(delta_softplus), bool(has_z), out.numpy(), ckpt.numpy())
    return out, ckpt


class _NumbaScan(torch.autograd.Function):
    """Fused numba forward (checkpointing the state every CHUNK steps) + hand-written numba backward."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, mod):
        inputs = _numba_inputs(u, delta, A, B, C, D, z, delta_bias)
        out, ckpt = _numba_forward(mod, inputs, delta_softplus, z is not None)
        ctx.save_for_backward(*inputs, ckpt)
        ctx.mod, ctx.softplus = mod, bool(delta_softplus)
        ctx.present = (D is not None, z is not None, delta_bias is not None)
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias))
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, dout):
        mod = ctx.mod
        *inputs, ckpt = ctx.saved_tensors
        u32, _, A32, Bt = inputs[0], inputs[1], inputs[2], inputs[3]
        batch, dim, length = u32.shape
        N = A32.shape[1]
        has_D, has_z, has_bias = ctx.present
        n_blocks = -(-dim // mod.W)  # the kernel's partial sums of B's and C's gradients: one per block of channels
        du, ddelta = torch.empty_like(u32), torch.empty_like(u32)
        dz = torch.empty_like(u32) if has_z else torch.zeros(1, 1, 1)
        dA_part = torch.empty(batch, dim, N, dtype=torch.float64)
        dB_part = torch.empty(batch, n_blocks, length, N)
        dC_part = torch.empty(batch, n_blocks, length, N)
        dD_part = torch.empty(batch, dim, dtype=torch.float64)
        dbias_part = torch.empty(batch, dim, dtype=torch.float64)
        _, bwd, _ = _kernels(mod)
        _launch(bwd, *(t.numpy() for t in inputs), ctx.softplus, has_z, _f32(dout).numpy(), ckpt.numpy(),
                du.numpy(), ddelta.numpy(), dz.numpy(), dA_part.numpy(), dB_part.numpy(), dC_part.numpy(),
                dD_part.numpy(), dbias_part.numpy(), mod.W)
        grads = [du, ddelta, dA_part.sum(0), dB_part.sum(1).transpose(1, 2), dC_part.sum(1).transpose(1, 2),
                 dD_part.sum(0) if has_D else None, dz if has_z else None, dbias_part.sum(0) if has_bias else None]
        out = [None if g is None or dt is None else g.to(dt) for g, dt in zip(grads, ctx.dtypes)]
        return (*out, None, None)


def selective_scan_numba(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Fused numba CPU scan (same contract as :func:`selective_scan_ref`); raises RuntimeError without numba."""
    _check_shapes(u, delta, A, B, C)
    if u.device.type != "cpu":
        raise ValueError("the numba scan runs on CPU tensors only")
    mod = _load_numba()
    if mod is None:
        raise RuntimeError("numba is not available")
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    if grad:
        return _NumbaScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, mod)
    out, _ = _numba_forward(mod, _numba_inputs(u, delta, A, B, C, D, z, delta_bias), delta_softplus, z is not None,
                            save=False)
    return out.to(u.dtype)


# ----------------------------------------------------------------------------------------- mamba_ssm (CUDA)
_mamba_state = {"fn": None, "failed": False}


def _load_mamba_ssm():
    """mamba_ssm's ``selective_scan_fn``, or None when it cannot import (logged once). Tests monkeypatch this."""
    if _mamba_state["fn"] is None and not _mamba_state["failed"]:
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception as e:  # ImportError, or a CUDA extension built for another torch
            _mamba_state["failed"] = True
            log.warning("mamba_ssm unavailable (%s): CUDA tensors use the pure-PyTorch scan", e)
        else:
            _mamba_state["fn"] = selective_scan_fn
    return _mamba_state["fn"]


# ------------------------------------------------------------------------------------------------ dispatch
def _resolve(impl, device_type):
    """Name of the implementation that runs for this ``impl`` / ``VTR_SCAN`` and device type."""
    impl = (impl or os.environ.get("VTR_SCAN") or "auto").strip().lower()
    if impl not in IMPLS:
        raise ValueError(f"unknown selective scan implementation {impl!r}: expected one of {IMPLS}")
    if impl == "ref":
        return "ref"
    if device_type == "cuda" and impl in ("auto", "cuda"):
        return "mamba_ssm" if _load_mamba_ssm() is not None else "torch"
    if device_type == "cpu" and impl in ("auto", "cpu"):
        return "numba" if _load_numba() is not None else "torch"
    return "torch"


def available_backends():
    """What would run here: ``{"cpu": name, "cuda": name or None, "numba": bool, "mamba_ssm": bool, "impl": str}``.

    ``cpu``/``cuda`` name the implementation that ``selective_scan`` picks for tensors on that device under the
    current ``VTR_SCAN`` (``cuda`` is None without a GPU).
    """
    impl = (os.environ.get("VTR_SCAN") or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    return {
        "impl": impl,
        "cpu": _resolve(None, "cpu"),
        "cuda": _resolve(None, "cuda") if has_cuda else None,
        "numba": _load_numba() is not None,
        "mamba_ssm": _load_mamba_ssm() is not None if has_cuda else False,
    }


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, impl=None):
    """Mamba's selective scan, dispatched at run time (``impl`` overrides env ``VTR_SCAN``; see module doc).

    u, delta, z: [B, D, L]; A: [D, N] fp32; B, C: [B, N, L]; D, delta_bias: [D]. Returns [B, D, L] in u's
    dtype, differentiable on every path.
    """
    name = _resolve(impl, u.device.type)
    if name == "ref":
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if name == "numba":
        return selective_scan_numba(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if name == "mamba_ssm":
        return _mamba_ssm_scan(_load_mamba_ssm(), u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def _mamba_ssm_scan(fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """mamba_ssm's ``selective_scan_fn`` with its arguments as its kernel demands them: Δ, the input-dependent B and C
    and the gate z in u's dtype (the kernel refuses any other), A, D and the Δ bias in fp32. Under autocast they can
    differ: without causal_conv1d the conv returns fp32 u while in_proj's z is bf16; z is then upcast, exactly."""
    like_u = (lambda t: t.to(u.dtype).contiguous())
    return fn(u.contiguous(), like_u(delta), A.float().contiguous(), like_u(B), like_u(C),
              None if D is None else D.float(), None if z is None else like_u(z),
              None if delta_bias is None else delta_bias.float(), delta_softplus)


_KERNEL_DTYPES = (torch.float32, torch.bfloat16)  # what scan_rows reads for z and writes for out


def _cols_of(t):
    """(contiguous tensor, column offset) from which a kernel reads ``t[b, l, d]`` as ``src[b, l, offset + d]``.

    ``t`` itself when contiguous; when ``t`` is a column slice of a contiguous [B, L, K] tensor (the mixer's gate
    ``xz[..., d_inner:]``, B and C ``x_dbl[..., R:R + N]``), that whole tensor, rebuilt from ``t``'s strides and
    storage (views made under ``inference_mode`` or detached do not know their base), so no copy is made; else a
    contiguous copy.
    """
    if t.is_contiguous():
        return t, 0
    if t.dim() == 3 and t.stride(2) == 1:
        batch, length, width = t.shape
        k = t.stride(1)
        off = t.storage_offset() % k if k else 0
        start = t.storage_offset() - off
        if (k >= width and off + width <= k and t.stride(0) == length * k
                and t.untyped_storage().nbytes() >= (start + batch * length * k) * t.element_size()):
            return t.as_strided((batch, length, k), (length * k, k, 1), start), off
    return t.contiguous(), 0


def _kernel_rows(t):
    """u or Δ as :func:`~vtr.ops._scan_numba.scan_rows` reads it: fp32, or bf16 bits read without a copy."""
    return numba_view(t.detach().contiguous() if t.dtype in _KERNEL_DTYPES else _f32(t))


def _numba_rows(mod, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, add, out_dtype):
    """:func:`selective_scan_rows` on the numba kernel, one call (see there)."""
    dim = u.shape[2]
    zeros = torch.zeros(dim, dtype=torch.float32)
    Bm, bc0 = _cols_of(B.float())
    Cm, cc0 = _cols_of(C.float())
    if z is None:
        z_src, zc0 = torch.zeros(1, 1, 1), 0
    else:
        z_src, zc0 = _cols_of(z if z.dtype in _KERNEL_DTYPES else z.float())
    if add is not None and out_dtype == torch.float32 and add.dtype == torch.float32 and add.is_contiguous():
        out = add.detach()
    else:
        out = torch.empty(u.shape, dtype=out_dtype)
    acc = torch.zeros(1, 1, 1) if add is None else _f32(add)
    Dv = zeros if D is None else _f32(D)
    bias = zeros if delta_bias is None else _f32(delta_bias)
    _launch(_kernels(mod)[2], _kernel_rows(u), _kernel_rows(delta), _f32(A).numpy(), Bm.detach().numpy(), int(bc0),
            Cm.detach().numpy(), int(cc0), Dv.numpy(), numba_view(z_src.detach()), int(zc0), bias.numpy(),
            bool(delta_softplus), z is not None, bool(reverse), acc.numpy(), add is not None, numba_view(out),
            mod.rows_width(u.shape[0], dim, _pool_threads()))
    return out


def selective_scan_rows(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *, reverse=False,
                        add=None, out_dtype=None, impl=None):
    """The scan on channels-last tensors, for inference: the bidirectional mixer's own layout.

    u, delta, z: [B, L, D]; B, C: [B, L, N]; A, D, delta_bias as in :func:`selective_scan`; every tensor in natural
    time order. u and delta may be bf16 (the official bf16 path's inputs), read as their fp32 values. ``reverse``:
    the scan runs from the last step to the first (the mixer's backward direction: no flipped copies in or out). z
    may be fp32 or bf16 and a column slice of a larger tensor (``xz[..., d_inner:]``), B and C column slices of
    x_proj's output; they are read in place. add: [B, L, D], added to the result (it may be overwritten with the
    sum). out_dtype: the result's dtype (default u's).

    Equals ``rev(selective_scan(rev(u)ᵀ, rev(delta)ᵀ, A, rev(B)ᵀ, rev(C)ᵀ, D, rev(z)ᵀ, ...)ᵀ) + add`` cast to
    ``out_dtype``, with ``ᵀ`` the swap of the last two dims and ``rev`` a flip of time when ``reverse`` — which is
    literally what runs unless the numba kernel is the CPU path (see the dispatch table) and no gradient is needed.
    There, one :func:`~vtr.ops._scan_numba.scan_rows` call: no transposes, no flips, the gate read in fp32 or bf16,
    the sum and the cast done as the result is written (fp32 arithmetic throughout, one rounding to bf16 at the end).
    """
    out_dtype = out_dtype or u.dtype
    batch, length, dim = u.shape
    for name, t, width in (("delta", delta, dim), ("B", B, A.shape[1]), ("C", C, A.shape[1]), ("z", z, dim),
                           ("add", add, dim)):
        if t is not None and tuple(t.shape) != (batch, length, width):
            raise ValueError(f"{name} must be [B, L, {width}] = {(batch, length, width)}, got {tuple(t.shape)}")
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias, add))
    if (not grad and u.device.type == "cpu" and out_dtype in _KERNEL_DTYPES and A.shape[0] == dim
            and _resolve(impl, "cpu") == "numba"):
        return _numba_rows(_load_numba(), u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, add,
                           out_dtype)

    def cf(t):  # channels first, in scan order
        return None if t is None else (t.flip(1) if reverse else t).mT

    y = selective_scan(cf(u), cf(delta), A, cf(B), cf(C), D, cf(z), delta_bias, delta_softplus, impl=impl).mT
    if reverse:
        y = y.flip(1)
    if add is not None:
        y = add + y
    return y.to(out_dtype)
