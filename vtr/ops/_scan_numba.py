"""Numba kernels of the fused CPU selective scan (forward and hand-written backward).

Imported lazily by :mod:`vtr.ops.selective_scan` (never at ``import vtr``): this module imports numba at
top level, so an ImportError here means "no numba" and the caller falls back to pure PyTorch.

Layouts (all float32, C-contiguous; the wrapper casts and transposes):

    u, delta, z:   [B, D, L]   natural layout, contiguous along L per channel
    A:             [D, N]
    Bt, Ct:        [B, L, N]   B and C transposed once so that one time step's N values are contiguous
    Dv, bias:      [D]         zeros when absent (adding 0 / 0·u changes nothing)

Each channel is scanned by one ``prange`` iteration in chunks of ``CHUNK`` steps, four short loops per
chunk that LLVM vectorises over N (or over time): softplus of Δ, exp(Δ·A) and Δ·u·B into a scratch buffer,
the recurrence itself (the only sequential loop: one multiply-add per state value and step), the C
contraction, the D skip and SiLU gate. exp/log are polynomial versions written here (Cephes, ≤ 2 ulp):
LLVM cannot vectorise calls to libm's expf, and the scalar calls cost more than the whole recurrence.
Everything is fp32 except the sums over time of the parameter gradients (float64 accumulators).

The training forward also saves the state at the start of every chunk (``ckpt`` [B, D, ceil(L/CHUNK), N]);
the backward recomputes one chunk's states from its checkpoint into an L1-sized buffer and runs the
reverse-time recurrence over it, so the full [B, D, L, N] state is never stored.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

CHUNK = 64  # time steps per tile: scratch of a few CHUNK×N buffers stays in L1
_F = np.float32


@intrinsic
def _i32_as_f32(typingctx, x):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _f32_as_i32(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


def as_f32(v):
    """float32 value of one element: a float, or the int16 bits of a bfloat16."""
    raise NotImplementedError  # only called from numba code, where the overload below replaces it


@overload(as_f32, inline="always")
def _as_f32_impl(v):
    if isinstance(v, types.Integer):
        # bf16 bits are the top half of the float32 bits: widen (the sign extension is shifted out) and shift
        return lambda v: _i32_as_f32(np.int32(v) << np.int32(16))
    return lambda v: np.float32(v)


@njit(inline="always", fastmath=False, cache=True)
def bf16_bits(v):
    """The int16 bits of float32 ``v`` rounded to bfloat16, to nearest even (torch's ``.to(torch.bfloat16)``)."""
    if v != v:
        return np.int16(0x7FC0)  # a quiet NaN (rounding could carry a NaN's payload into the exponent)
    bits = _f32_as_i32(v)
    return np.int16((bits + np.int32(0x7FFF) + ((bits >> np.int32(16)) & np.int32(1))) >> np.int32(16))


def from_f32(v, like):
    """``v`` (float32) as an element of array ``like``: float32, or the int16 bits of a bfloat16."""
    raise NotImplementedError  # only called from numba code, where the overload below replaces it


@overload(from_f32)  # LLVM inlines it; numba-level inlining warns (an internal SSA check)
def _from_f32_impl(v, like):
    if isinstance(like.dtype, types.Integer):
        return lambda v, like: bf16_bits(v)
    return lambda v, like: np.float32(v)


@njit(inline="always", fastmath=False, cache=True)
def exp32(x):
    """exp for float32, vectorisable (Cephes expf, ≤ 2 ulp); clamps to [exp(-87), exp(88)]."""
    x = min(max(x, _F(-87.0)), _F(88.0))
    k = np.floor(x * _F(1.44269504088896341) + _F(0.5))
    r = x - k * _F(0.693359375)
    r = r - k * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    return p * _i32_as_f32((np.int32(k) + np.int32(127)) << np.int32(23))


@njit(inline="always", fastmath=False, cache=True)
def log32(x):
    """log for finite float32 x > 0 (normal range), vectorisable (Cephes logf)."""
    bits = _f32_as_i32(x)
    e = _F((bits >> np.int32(23)) - np.int32(126))
    m = _i32_as_f32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000))  # mantissa in [0.5, 1)
    small = m < _F(0.707106781186547524)
    e = e - _F(1.0) if small else e
    m = m + m - _F(1.0) if small else m - _F(1.0)
    z = m * m
    y = _F(7.0376836292e-2)
    y = y * m - _F(1.1514610310e-1)
    y = y * m + _F(1.1676998740e-1)
    y = y * m - _F(1.2420140846e-1)
    y = y * m + _F(1.4249322787e-1)
    y = y * m - _F(1.6668057665e-1)
    y = y * m + _F(2.0000714765e-1)
    y = y * m - _F(2.4999993993e-1)
    y = y * m + _F(3.3333331174e-1)
    y = y * m * z
    y = y + _F(-2.12194440e-4) * e
    y = y - _F(0.5) * z
    return m + y + _F(0.693359375) * e


@njit(inline="always", fastmath=False, cache=True)
def softplus32(x):
    """torch's softplus (threshold 20): x if x > 20 else log1p(exp(x)) (log1p via Goldberg's trick)."""
    w = exp32(x)
    v = _F(1.0) + w
    lp = log32(v) * (w / (v - _F(1.0))) if v != _F(1.0) else w
    return x if x > _F(20.0) else lp


@njit(inline="always", fastmath=False, cache=True)
def sigmoid32(x):
    return _F(1.0) / (_F(1.0) + exp32(-x))


@njit(inline="always", fastmath=False, cache=True)
def _chunk_delta(deb, bias, t0, T, softplus, dt):
    """dt[:T] = Δ for steps t0..t0+T of one channel."""
    if softplus:
        for t in range(T):
            dt[t] = softplus32(deb[t0 + t] + bias)
    else:
        for t in range(T):
            dt[t] = deb[t0 + t] + bias


@njit(inline="always", fastmath=False, cache=True)
def _chunk_discretise(ub, Ad, Bb, t0, T, N, dt, dA, dBu):
    """dA[t, n] = exp(Δ_t A_n), dBu[t, n] = Δ_t u_t B_t[n] (flattened [T, N])."""
    for t in range(T):
        dtt = dt[t]
        dtu = dtt * ub[t0 + t]
        for n in range(N):
            dA[t * N + n] = exp32(dtt * Ad[n])
            dBu[t * N + n] = dtu * Bb[t0 + t, n]


@njit(inline="always", fastmath=False, cache=True)
def _chunk_contract(S, Cb, t0, T, N, y):
    """y[t] = Σ_n S[t, n] C_t[n] (pairwise order for N = 16)."""
    if N == 16:
        for t in range(T):
            k = t * 16
            c = t0 + t
            q0 = S[k] * Cb[c, 0] + S[k + 8] * Cb[c, 8]
            q1 = S[k + 1] * Cb[c, 1] + S[k + 9] * Cb[c, 9]
            q2 = S[k + 2] * Cb[c, 2] + S[k + 10] * Cb[c, 10]
            q3 = S[k + 3] * Cb[c, 3] + S[k + 11] * Cb[c, 11]
            q4 = S[k + 4] * Cb[c, 4] + S[k + 12] * Cb[c, 12]
            q5 = S[k + 5] * Cb[c, 5] + S[k + 13] * Cb[c, 13]
            q6 = S[k + 6] * Cb[c, 6] + S[k + 14] * Cb[c, 14]
            q7 = S[k + 7] * Cb[c, 7] + S[k + 15] * Cb[c, 15]
            y[t] = ((q0 + q4) + (q2 + q6)) + ((q1 + q5) + (q3 + q7))
    else:
        for t in range(T):
            acc = _F(0.0)
            for n in range(N):
                acc += S[t * N + n] * Cb[t0 + t, n]
            y[t] = acc


@njit(parallel=True, fastmath=False, cache=True)
def scan_fwd(u, delta, A, Bt, Ct, Dv, z, bias, softplus, has_z, out, ckpt):
    """out[b, d, :] = gated scan of channel d; saves chunk-start states to ckpt unless ckpt.shape[2] == 0."""
    nb, nd, L = u.shape
    N = A.shape[1]
    save = ckpt.shape[2] > 0
    for bd in prange(nb * nd):
        b = bd // nd
        d = bd % nd
        scratch = np.zeros(3 * CHUNK * N + 2 * N + 2 * CHUNK, np.float32)
        dA = scratch[0:CHUNK * N]
        dBu = scratch[CHUNK * N:2 * CHUNK * N]
        S = scratch[2 * CHUNK * N:3 * CHUNK * N]
        s = scratch[3 * CHUNK * N:3 * CHUNK * N + N]
        Ad = scratch[3 * CHUNK * N + N:3 * CHUNK * N + 2 * N]
        o = 3 * CHUNK * N + 2 * N
        dt = scratch[o:o + CHUNK]
        y = scratch[o + CHUNK:o + 2 * CHUNK]
        for n in range(N):
            Ad[n] = A[d, n]
        ub = u[b, d]
        deb = delta[b, d]
        ob = out[b, d]
        Bb = Bt[b]
        Cb = Ct[b]
        bd_bias = bias[d]
        Dd = Dv[d]
        for t0 in range(0, L, CHUNK):
            T = min(CHUNK, L - t0)
            if save:
                for n in range(N):
                    ckpt[b, d, t0 // CHUNK, n] = s[n]
            _chunk_delta(deb, bd_bias, t0, T, softplus, dt)
            _chunk_discretise(ub, Ad, Bb, t0, T, N, dt, dA, dBu)
            for t in range(T):  # the recurrence: the only sequential loop
                for n in range(N):
                    s[n] = dA[t * N + n] * s[n] + dBu[t * N + n]
                    S[t * N + n] = s[n]
            _chunk_contract(S, Cb, t0, T, N, y)
            if has_z:
                zb = z[b, d]
                for t in range(T):
                    zt = zb[t0 + t]
                    ob[t0 + t] = (y[t] + Dd * ub[t0 + t]) * (zt * sigmoid32(zt))
            else:
                for t in range(T):
                    ob[t0 + t] = y[t] + Dd * ub[t0 + t]


@njit(parallel=True, fastmath=False, cache=True)
def scan_bwd(u, delta, A, Bt, Ct, Dv, z, bias, softplus, has_z, dout, ckpt, n_groups,
             du, ddelta, dz, dA_part, dB_part, dC_part, dD_part, dbias_part):
    """Gradients of :func:`scan_fwd` given dout [B, D, L] and its checkpoints.

    Writes du, ddelta (w.r.t. the raw delta), dz [B, D, L]; per-(b, d) partial sums dA_part [B, D, N],
    dD_part, dbias_part [B, D] (float64); per-(b, channel group) partial sums dB_part, dC_part
    [B, n_groups, L, N] (B and C are shared by all channels: each group owns its buffer, no races).
    """
    nb, nd, L = u.shape
    N = A.shape[1]
    n_chunks = ckpt.shape[2]
    for bg in prange(nb * n_groups):
        b = bg // n_groups
        g = bg % n_groups
        d_lo = (g * nd) // n_groups
        d_hi = ((g + 1) * nd) // n_groups
        scratch = np.zeros(3 * CHUNK * N + N + 3 * N + 3 * CHUNK, np.float32)
        dA = scratch[0:CHUNK * N]
        Sx = scratch[CHUNK * N:2 * CHUNK * N + N]  # Sx[t] = state before step t, Sx[T] = after the chunk
        o = 2 * CHUNK * N + N
        h = scratch[o:o + N]
        carry = scratch[o + N:o + 2 * N]
        Ad = scratch[o + 2 * N:o + 3 * N]
        o2 = o + 3 * N
        dt = scratch[o2:o2 + CHUNK]
        dsp = scratch[o2 + CHUNK:o2 + 2 * CHUNK]
        y = scratch[o2 + 2 * CHUNK:o2 + 3 * CHUNK]
        dBu = scratch[o2 + 3 * CHUNK:o2 + 3 * CHUNK + CHUNK * N]
        dA_acc = np.zeros(N, np.float64)
        dBb = dB_part[b, g]
        dCb = dC_part[b, g]
        Bb = Bt[b]
        Cb = Ct[b]
        for d in range(d_lo, d_hi):
            for n in range(N):
                Ad[n] = A[d, n]
                carry[n] = _F(0.0)
                dA_acc[n] = 0.0
            ub = u[b, d]
            deb = delta[b, d]
            gb = dout[b, d]
            dub = du[b, d]
            ddb = ddelta[b, d]
            bd_bias = bias[d]
            Dd = Dv[d]
            dD_acc = 0.0
            dbias_acc = 0.0
            for c in range(n_chunks - 1, -1, -1):
                t0 = c * CHUNK
                T = min(CHUNK, L - t0)
                _chunk_delta(deb, bd_bias, t0, T, softplus, dt)
                if softplus:
                    for t in range(T):
                        x = deb[t0 + t] + bd_bias
                        dsp[t] = _F(1.0) if x > _F(20.0) else sigmoid32(x)
                _chunk_discretise(ub, Ad, Bb, t0, T, N, dt, dA, dBu)
                for n in range(N):
                    Sx[n] = ckpt[b, d, c, n]
                for t in range(T):  # recompute the chunk's states from its checkpoint
                    for n in range(N):
                        Sx[(t + 1) * N + n] = dA[t * N + n] * Sx[t * N + n] + dBu[t * N + n]
                _chunk_contract(Sx[N:], Cb, t0, T, N, y)
                for t in range(T - 1, -1, -1):  # reverse-time recurrence
                    ut = ub[t0 + t]
                    gt = gb[t0 + t]
                    if has_z:
                        zt = z[b, d, t0 + t]
                        sz = sigmoid32(zt)
                        yt = y[t] + Dd * ut
                        dz[b, d, t0 + t] = gt * yt * sz * (_F(1.0) + zt * (_F(1.0) - sz))
                        gy = gt * zt * sz
                    else:
                        gy = gt
                    dD_acc += gy * ut
                    dtt = dt[t]
                    k = t * N
                    hB = _F(0.0)
                    hAs = _F(0.0)
                    for n in range(N):
                        hn = gy * Cb[t0 + t, n] + carry[n]
                        dCb[t0 + t, n] += gy * Sx[k + N + n]
                        dBb[t0 + t, n] += hn * (dtt * ut)
                        q = hn * dA[k + n] * Sx[k + n]  # ∂/∂(Δ·A_n) of the state update
                        dA_acc[n] += dtt * q
                        hAs += Ad[n] * q
                        hB += hn * Bb[t0 + t, n]
                        carry[n] = dA[k + n] * hn
                    dub[t0 + t] = gy * Dd + dtt * hB
                    gdt = hAs + ut * hB
                    if softplus:
                        gdt = gdt * dsp[t]
                    ddb[t0 + t] = gdt
                    dbias_acc += gdt
            for n in range(N):
                dA_part[b, d, n] = dA_acc[n]
            dD_part[b, d] = dD_acc
            dbias_part[b, d] = dbias_acc


W = 16  # channels per block of the inference kernel: one SIMD lane per channel (one zmm)


@njit(inline="always", fastmath=False, cache=True)
def _load_row(src, t0, T, L, reverse, dst):
    """dst[:T] = float32 of src at scan steps t0..t0+T (src: one channel's row in natural time, float32 or bf16
    bits); ``reverse``: scan step t is natural position L-1-t."""
    if reverse:
        seg = src[L - t0 - T:L - t0]
        for t in range(T):
            dst[t] = as_f32(seg[T - 1 - t])
    else:
        seg = src[t0:t0 + T]
        for t in range(T):
            dst[t] = as_f32(seg[t])


@njit(inline="always", fastmath=False, cache=True)
def _store_row(r, t0, T, L, reverse, acc, has_acc, dst, tmp):
    """dst (one channel's row in natural time, float32 or bf16 bits) at scan steps t0..t0+T = r[:T] (+ acc, the
    same positions of a float32 row); ``reverse`` as in :func:`_load_row` (tmp: CHUNK scratch for the reversal)."""
    if reverse:
        o0 = L - t0 - T
        for k in range(T):  # a copy in L1, so that the loops below run forward over contiguous memory
            tmp[k] = r[T - 1 - k]
        fw = tmp
    else:
        o0 = t0
        fw = r
    seg = dst[o0:o0 + T]
    if has_acc:
        aseg = acc[o0:o0 + T]
        for k in range(T):
            seg[k] = from_f32(fw[k] + aseg[k], seg)
    else:
        for k in range(T):
            seg[k] = from_f32(fw[k], seg)


# fastmath={"contract"} only: lets LLVM fuse a*b + c into FMAs (one rounding instead of two: never less
# accurate; no reassociation, no finite-math assumptions). error_model="numpy": IEEE division without a
# ZeroDivisionError branch, which lets softplus and sigmoid vectorise (no divisor here can be zero: sigmoid
# divides by 1 + exp ≥ 1, softplus's v == 1 lane is discarded by the select).
@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def scan_fwd_infer(u, delta, A, Bt, Ct, Dv, z, zc0, bias, softplus, has_z, reverse_io, acc, has_acc, out):
    """Inference forward (no checkpoints), same contract as :func:`scan_fwd`, vectorised across channels.

    Extra layout options (what the backward direction of the bidirectional mixer needs, so that it makes no
    flipped copies, no separate sum and no cast):

    - z: [B, C', L] float32 or int16 (bf16 bits); channel d's gate is row ``zc0 + d`` (z may be the whole xz).
    - ``reverse_io``: u, Δ, B, C are in scan order but z and out in natural order: scan step t is position
      L-1-t of z's and out's rows (the scan runs back to front over a forward-ordered sequence).
    - ``has_acc``: out = scan + acc (acc: [B, D, L] float32, out's order; it may be out itself).
    - out: [B, D, L] float32 or int16 (bf16 bits, rounded to nearest even); computation is fp32 throughout.

    One ``prange`` task per (batch, block of W consecutive channels). The block's state is s[N, W], channel
    fastest, so the per-step loop over (n, c) runs the W channels in SIMD lanes: exp(Δ_t[c]·A[c, n]), the
    update s = exp(ΔA)·s + Δu·B_t[n] and the product P[n, c] = s·C_t[n], with B and C broadcast. y_t[c] =
    Σ_n P[n, c] is then a pairwise tree over n in long flat loops (no horizontal reduction; N is padded to a
    power of two with zero rows). Per CHUNK steps Δ (bias, softplus) and Δ·u are computed along time per
    channel and transposed into [CHUNK, W]; at the end y is transposed back, D-skipped and SiLU-gated along
    time. A partial last block has Δ = Δu = A = 0 lanes (their state stays 0) that are never written out.

    Notes for whoever edits this (numba runs LLVM's loop vectoriser but not the SLP vectoriser): a constant
    W-iteration loop with a small body is fully unrolled into scalar code, so the (n, c) loop keeps the big
    exp body and the sums are flat runtime-length loops; index time-sliced views with the bare loop variable
    (``x[t0 + t]`` carries numba's negative-index wraparound per lane and becomes a gather). The reversed and
    bf16 accesses are confined to copy loops over one chunk (:func:`_load_row`, :func:`_store_row`), so the
    loops with exp stay forward and contiguous.
    """
    nb, nd, L = u.shape
    N = A.shape[1]
    Np = 1
    while Np < N:
        Np *= 2
    NW = Np * W
    nblk = (nd + W - 1) // W
    for task in prange(nb * nblk):
        b = task // nblk
        d0 = (task % nblk) * W
        nc = min(W, nd - d0)
        rows = np.zeros((W, CHUNK), np.float32)   # per channel along time: Δ, then y
        rows2 = np.zeros((W, CHUNK), np.float32)  # Δ·u
        dtb = np.zeros((CHUNK, W), np.float32)
        dub = np.zeros((CHUNK, W), np.float32)
        yb = np.zeros((CHUNK, W), np.float32)
        zr = np.zeros(CHUNK, np.float32)   # one channel's gate in scan order
        tmp = np.zeros(CHUNK, np.float32)  # one channel's output, reversed
        P = np.zeros(NW, np.float32)
        P2 = P.reshape((Np, W))
        s = np.zeros((Np, W), np.float32)
        Ab = np.zeros((Np, W), np.float32)
        for c in range(nc):
            for n in range(N):
                Ab[n, c] = A[d0 + c, n]
        Bb = Bt[b]
        Cb = Ct[b]
        for t0 in range(0, L, CHUNK):
            T = min(CHUNK, L - t0)
            for c in range(nc):  # Δ and Δ·u along time, then transposed to [T, W]
                deb = delta[b, d0 + c, t0:t0 + T]
                ubc = u[b, d0 + c, t0:t0 + T]
                bc = bias[d0 + c]
                r = rows[c]
                r2 = rows2[c]
                if softplus:
                    for t in range(T):
                        r[t] = softplus32(deb[t] + bc)
                else:
                    for t in range(T):
                        r[t] = deb[t] + bc
                for t in range(T):
                    r2[t] = r[t] * ubc[t]
            for t in range(T):
                for c in range(W):
                    dtb[t, c] = rows[c, t]
                    dub[t, c] = rows2[c, t]
            for t in range(T):  # the recurrence: sequential in t, W channels per SIMD vector
                tt = t0 + t
                for n in range(N):
                    bn = Bb[tt, n]
                    cn = Cb[tt, n]
                    for c in range(W):
                        sv = exp32(dtb[t, c] * Ab[n, c]) * s[n, c] + dub[t, c] * bn
                        s[n, c] = sv
                        P2[n, c] = sv * cn
                h = NW // 2
                while h >= W:  # y_t = Σ_n P[n, :], pairwise
                    for j in range(h):
                        P[j] += P[j + h]
                    h //= 2
                for c in range(W):
                    yb[t, c] = P[c]
            for t in range(T):
                for c in range(W):
                    rows[c, t] = yb[t, c]
            for c in range(nc):  # D skip, SiLU gate, along time
                ubc = u[b, d0 + c, t0:t0 + T]
                Dd = Dv[d0 + c]
                r = rows[c]
                if has_z:
                    _load_row(z[b, zc0 + d0 + c], t0, T, L, reverse_io, zr)
                    for t in range(T):
                        zt = zr[t]
                        r[t] = (r[t] + Dd * ubc[t]) * (zt * sigmoid32(zt))
                else:
                    for t in range(T):
                        r[t] = r[t] + Dd * ubc[t]
                _store_row(r, t0, T, L, reverse_io, acc[b, d0 + c] if has_acc else r, has_acc, out[b, d0 + c], tmp)
