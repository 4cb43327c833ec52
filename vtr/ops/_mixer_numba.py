"""Numba kernel of the memory-bound mixer step before the scan: causal depthwise conv1d + SiLU, channels last.

Imported lazily by :mod:`vtr.ops.mixer_ops` (this module imports numba at top level). The kernel reads its input
once from memory and writes its output once; the torch version it replaces makes one pass per tap, one for the
cast and one for SiLU, plus a flipped copy for the backward direction. The input may be float32 or bfloat16
*bits* (an int16 view of a bf16 tensor: numba has no bf16 type), so an autocast ``in_proj`` output is upcast
inside the kernel instead of in a copy.

The block's RMSNorm and residual add (:func:`rmsnorm_rows`, :func:`add_rows`) are here too. A fused RMSNorm was
first measured at batch 1 in fp32 and dropped (no faster than torch's on [1569, 576] rows); at batch 4 in bf16 on an
AMX CPU torch's norm, its bf16 cast and the add's promotion of the bf16 mixer output took 8% of a clip, and one pass
each saves most of it (``bench/README.md``, twenty-ninth round).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vtr.ops._scan_numba import as_f32, exp32, from_f32

_F = np.float32


# fastmath={"contract"}: FMAs only (one rounding instead of two), no reassociation; error_model="numpy": IEEE
# division without a ZeroDivisionError branch, so the SiLU loop vectorises (its divisor is ≥ 1).
@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def conv1d_silu_rows(xz, c0, wt, bias, reverse, out):
    """out[b, t, c] = SiLU(bias[c] + Σ_j wt[j, c] · x[b, t - (K-1) + j, c]) with x = xz[:, :, c0:c0 + C] (zeros
    outside [0, L)), in natural time order.

    xz: [B, L, C'] float32 or int16 (bf16 bits); wt: [K, C] float32 (the taps transposed, so that one tap of all
    channels is a row); bias: [C]; out: [B, L, C] float32 or int16 (bf16 bits: each value computed in fp32 and
    rounded once, as it is written). ``reverse``: the conv of the backward direction, causal in reversed time,
    x[b, t + (K-1) - j] (its output stays in natural order: the scan reads it back to front). One task per (batch,
    chunk of 32 steps), every loop along the channels, contiguous; the taps are summed in the order of nn.Conv1d's
    weight, with fused multiply-adds.
    """
    nb, L, nc = out.shape
    K = wt.shape[0]
    TC = 32
    nch = (L + TC - 1) // TC
    step = -1 if reverse else 1  # tap j reads row t + step·(j - (K-1))
    for task in prange(nb * nch):
        b = task // nch
        t0 = (task % nch) * TC
        acc = np.empty(nc, np.float32)  # a row's sums before SiLU, in fp32 whatever out's dtype
        for t in range(t0, min(L, t0 + TC)):
            o = out[b, t]
            q0 = t - step * (K - 1)  # tap 0's row
            if K == 4 and 0 <= q0 < L:
                # every tap inside the sequence, K = 4 (VideoMamba's d_conv): one pass, the sum in a register, in
                # the same order as the general loop below, so the same bits (bench/README.md, tenth round: faster)
                x0 = xz[b, q0, c0:c0 + nc]
                x1 = xz[b, q0 + step, c0:c0 + nc]
                x2 = xz[b, q0 + 2 * step, c0:c0 + nc]
                x3 = xz[b, q0 + 3 * step, c0:c0 + nc]
                w0, w1, w2, w3 = wt[0], wt[1], wt[2], wt[3]
                for c in range(nc):
                    v = (bias[c] + w0[c] * as_f32(x0[c]) + w1[c] * as_f32(x1[c]) + w2[c] * as_f32(x2[c])
                         + w3[c] * as_f32(x3[c]))
                    o[c] = from_f32(v / (_F(1.0) + exp32(-v)), o)
                continue
            for c in range(nc):
                acc[c] = bias[c]
            for j in range(K):
                q = q0 + step * j
                if q < 0 or q >= L:
                    continue
                xr = xz[b, q, c0:c0 + nc]
                wj = wt[j]
                for c in range(nc):
                    acc[c] += wj[c] * as_f32(xr[c])
            for c in range(nc):
                v = acc[c]
                o[c] = from_f32(v / (_F(1.0) + exp32(-v)), o)


# The sum of squares may be reassociated (vectorised: the order of a row's 576 terms is not torch's either). Its own
# function, not numba-inlined, so that the flag stays on its instructions alone and the scaling keeps torch's order.
@njit(fastmath={"contract", "reassoc"}, error_model="numpy", cache=True)
def _sum_squares(xr):
    s = _F(0.0)
    for c in range(xr.shape[0]):
        s += xr[c] * xr[c]
    return s


@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def rmsnorm_rows(x, w, eps, out):
    """out[i] = (x[i] · 1/sqrt(mean(x[i]²) + eps)) · w for every row i of x: [R, C] float32; w: [C] float32; out:
    [R, C] float32 or int16 (bf16 bits: each value rounded once, as it is written), scaled as torch's RMSNorm scales,
    (x · r) · w in fp32. One pass over memory: a row is summed and scaled while it is in cache."""
    rows, nc = x.shape
    inv_n, eps32 = _F(1.0) / _F(nc), _F(eps)  # eps comes as a Python float: every step stays in fp32, as torch's
    for i in prange(rows):
        xr = x[i]
        o = out[i]
        r = _F(1.0) / np.sqrt(_sum_squares(xr) * inv_n + eps32)
        for c in range(nc):
            o[c] = from_f32((xr[c] * r) * w[c], o)


@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def add_rows(a, b, out):
    """out = a + b over rows: a: [R, C] float32; b: [R, C] float32 or int16 (bf16 bits, widened exactly); out:
    [R, C] float32. torch's ``a + b`` (it promotes a bf16 b to fp32 first, the same values) without b's fp32 copy."""
    rows, nc = a.shape
    for i in prange(rows):
        ar, br, o = a[i], b[i], out[i]
        for c in range(nc):
            o[c] = ar[c] + as_f32(br[c])
