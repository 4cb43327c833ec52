"""Numba kernel of the memory-bound mixer step before the scan: causal depthwise conv1d + SiLU.

Imported lazily by :mod:`vtr.ops.mixer_ops` (this module imports numba at top level). The kernel reads its input
once from memory and writes its output once; the torch version it replaces makes one pass per tap, one for the
cast and one for SiLU, plus a flipped copy for the backward direction. The input may be float32 or bfloat16
*bits* (an int16 view of a bf16 tensor: numba has no bf16 type), so an autocast ``in_proj`` output is upcast
inside the kernel instead of in a copy.

(A fused RMSNorm kernel was measured too and dropped: no faster than torch's on [1569, 576] rows.)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vtr.ops._scan_numba import as_f32, exp32

_F = np.float32


# fastmath={"contract"}: FMAs only (one rounding instead of two), no reassociation; error_model="numpy": IEEE
# division without a ZeroDivisionError branch, so the SiLU loop vectorises (its divisor is ≥ 1).
@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def conv1d_silu(xz, c0, w, bias, reverse, out):
    """out[b, c] = SiLU(bias[c] + Σ_j w[c, j] · x[b, c, t - (K-1) + j]) with x = xz[:, c0:c0 + C] (zero left pad).

    xz: [B, C', L] float32 or int16 (bf16 bits), contiguous; w: [C, K] float32; bias: [C] float32;
    out: [B, C, L] float32. ``reverse``: x is read back to front (the backward scan direction's input, so the
    flipped copy of x is never made) and out is in that reversed time order.
    """
    nb, nc, L = out.shape
    K = w.shape[1]
    for task in prange(nb * nc):
        b = task // nc
        c = task % nc
        src = xz[b, c0 + c]
        buf = np.zeros(L + K - 1, np.float32)  # K-1 zeros, then the channel's row (in L1: a few KiB)
        body = buf[K - 1:]
        if reverse:
            rsrc = src[::-1]
            for t in range(L):
                body[t] = as_f32(rsrc[t])
        else:
            for t in range(L):
                body[t] = as_f32(src[t])
        o = out[b, c]
        bc = bias[c]
        for t in range(L):
            o[t] = bc
        for j in range(K):  # one vectorised pass per tap, over L1-resident rows
            wj = w[c, j]
            tap = buf[j:j + L]
            for t in range(L):
                o[t] += wj * tap[t]
        for t in range(L):
            v = o[t]
            o[t] = v / (_F(1.0) + exp32(-v))
