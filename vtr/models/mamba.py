"""The bidirectional Mamba mixer of VideoMamba (model.md §3), its RMSNorm and its pre-norm block.

Parameter names follow the release (``layers.{i}.mixer.*``): ``in_proj``, per direction ``conv1d``,
``x_proj``, ``dt_proj``, ``A_log``, ``D`` (backward: ``conv1d_b``, ``x_proj_b``, ``dt_proj_b``, ``A_b_log``,
``D_b``) and one shared ``out_proj``.

Layout: the readable path (training, CUDA) keeps every per-channel tensor channels first, ``[B, C, L]``, which is
what mamba_ssm's scan and conv want; its only layout changes are at ``in_proj`` (``[B, L, D]`` in) and ``out_proj``
(``[B, L, D]`` out), where they are folded into the matmuls. CPU inference runs channels last, ``[B, L, C]``, from
``in_proj`` to ``out_proj`` (plain ``linear`` calls, numba kernels that read time steps as rows; see
:meth:`BiMambaMixer._forward_rows`).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vtr.ops.mixer_ops import add_rows, causal_conv1d_silu_rows, fused_available, linear_rows, rmsnorm_rows
from vtr.ops.selective_scan import selective_scan, selective_scan_rows

logger = logging.getLogger(__name__)

_CAUSAL_CONV1D = None  # None: not tried yet; False: unavailable; else the function


def _causal_conv1d_cuda():
    """``causal_conv1d.causal_conv1d_fn`` when it imports, else ``None`` (tried once, never raises)."""
    global _CAUSAL_CONV1D
    if _CAUSAL_CONV1D is None:
        try:
            from causal_conv1d import causal_conv1d_fn

            _CAUSAL_CONV1D = causal_conv1d_fn
        except Exception:  # ImportError, or a broken CUDA build raising anything else
            _CAUSAL_CONV1D = False
    return _CAUSAL_CONV1D or None


def causal_conv1d_silu(x, weight, bias):
    """SiLU(causal depthwise conv1d(x) + bias) with zero left padding of ``K - 1``.

    x: [B, C, L]; weight: [C, 1, K] (nn.Conv1d layout) or [C, K]; bias: [C] or None -> [B, C, L].
    Uses causal_conv1d's kernel on CUDA when available (result in x's dtype). Otherwise K shifted multiply-adds,
    which on CPU beat oneDNN's depthwise convolution and need no padded copy; the result is then at least fp32
    (a bf16 x from an autocast in_proj is upcast, and the scan gets the fp32 u it computes in).
    """
    weight = weight.reshape(weight.shape[0], -1)
    if x.is_cuda:
        fn = _causal_conv1d_cuda()
        if fn is not None:
            return fn(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), activation="silu")
    k, length = weight.shape[1], x.shape[-1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    x = x.to(dtype)  # one cast up front: mixed-dtype addcmuls are several times slower than this copy
    w = weight.to(dtype)[:, :, None]  # [C, K, 1]
    b = torch.zeros((), dtype=dtype, device=x.device) if bias is None else bias.to(dtype)[:, None]
    y = torch.addcmul(b, x, w[:, k - 1])  # tap on x_t
    for j in range(1, min(k, length)):  # tap on x_{t-j}
        y[..., j:].addcmul_(x[..., : length - j], w[:, k - 1 - j])
    return F.silu(y, inplace=not torch.is_grad_enabled())


def _autocast_dtype(device_type):
    """The autocast dtype active for ``device_type``, or None when autocast is off there."""
    try:
        on = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if on else None
    except TypeError:  # torch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def _channels_first_linear(weight, x, dtype=None):
    """weight: [O, I]; x: [B, I, L] (any strides, e.g. a transposed [B, L, I]) -> weight · x: [B, O, L].

    One batched GEMM with the layout change folded in (no transposed copy of x or of the result). Computes in
    ``dtype`` when given (autocast off), else in the autocast dtype when autocast is on, else in x's dtype; the
    weight is cast once, not once per batch element.
    """
    dev = x.device.type
    dtype = dtype or _autocast_dtype(dev) or x.dtype
    with torch.autocast(dev, enabled=False):
        return torch.bmm(weight.to(dtype).expand(x.shape[0], -1, -1), x.to(dtype))


class RMSNorm(nn.Module):
    """y = x · rsqrt(mean(x²) + eps) · weight, computed in fp32, returned in fp32 (no bias)."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.weight.float()


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval or with rate 0)."""

    def __init__(self, rate=0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f"rate={self.rate}"


class BiMambaMixer(nn.Module):
    """Bidirectional Mamba ("bimamba v2") mixer. forward(h: [B, L, D]) -> [B, L, D].

    xz = in_proj(h); x, z = split(xz); o_fwd = dir(x, z); o_bwd = dir_b(flip(x), flip(z));
    out = out_proj(o_fwd + flip(o_bwd)) — no division by 2. Both directions go through
    :func:`vtr.ops.selective_scan.selective_scan`; CPU inference with the fused kernels runs channels last through
    :func:`~vtr.ops.selective_scan.selective_scan_rows`, which computes the same without transposes or flips.
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init_floor=1e-4, dt_scale=1.0, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        di, n, r = self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(d_model, 2 * di, bias=False, **fk)
        for suffix in ("", "_b"):
            setattr(self, "conv1d" + suffix,
                    nn.Conv1d(di, di, kernel_size=d_conv, groups=di, padding=d_conv - 1, bias=True, **fk))
            setattr(self, "x_proj" + suffix, nn.Linear(di, r + 2 * n, bias=False, **fk))
            setattr(self, "dt_proj" + suffix, nn.Linear(r, di, bias=True, **fk))
        # S4D-real init, computed on the CPU: on the meta device (a model built to be filled from a checkpoint)
        # arange and rand have no kernel, and their first call imports torch's decompositions (0.8 s a process).
        a_log = torch.log(torch.arange(1, n + 1, dtype=torch.float32, device="cpu")).repeat(di, 1)
        a_log = a_log.to(self.in_proj.weight.device)
        self.A_log = nn.Parameter(a_log.clone())
        self.D = nn.Parameter(torch.ones(di, device=device))
        self.A_b_log = nn.Parameter(a_log.clone())
        self.D_b = nn.Parameter(torch.ones(di, device=device))
        for p in (self.A_log, self.D, self.A_b_log, self.D_b):
            p._no_weight_decay = True
        self.out_proj = nn.Linear(di, d_model, bias=False, **fk)
        self._init_dt(dt_min, dt_max, dt_init_floor, dt_scale)

    @torch.no_grad()
    def _init_dt(self, dt_min, dt_max, dt_init_floor, dt_scale):
        """mamba_ssm's dt_proj init: weight U(±R^-0.5·scale); bias = softplus⁻¹(dt), dt log-uniform in [min, max]."""
        std = self.dt_rank ** -0.5 * dt_scale
        if self.dt_proj.weight.is_meta:
            return  # no values to draw (see the A init)
        for proj in (self.dt_proj, self.dt_proj_b):
            nn.init.uniform_(proj.weight, -std, std)
            dt = torch.exp(torch.rand(self.d_inner, device=proj.bias.device) * (math.log(dt_max) - math.log(dt_min))
                           + math.log(dt_min)).clamp(min=dt_init_floor)
            proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            proj.bias._no_reinit = True

    def _scan_args(self, xz, conv, x_proj, dt_proj, A_log, D, reverse=False):
        """One direction's selective-scan arguments from xz: [B, 2·d_inner, L]; u, delta, B, C, z: [B, ·, L] in the
        direction's scan order (reversed time when ``reverse``)."""
        di, r, n = self.d_inner, self.dt_rank, self.d_state
        if reverse:
            xz = xz.flip(-1)  # one flip of x and z together
        u = causal_conv1d_silu(xz[:, :di], conv.weight, conv.bias)  # [B, di, L]
        # x_proj and dt_proj (≈10% of the FLOPs) run in u's dtype, fp32 on CPU even under autocast: Δ, B, C and
        # u then reach the fp32 scan without casts, and Δ = softplus(·) is not rounded to bf16.
        x_dbl = _channels_first_linear(x_proj.weight, u, dtype=u.dtype)  # [B, R+2N, L]
        delta = _channels_first_linear(dt_proj.weight, x_dbl[:, :r], dtype=u.dtype)  # [B, di, L]; bias in scan
        # B, C: [B, N, L] views; the scan re-lays them out as it needs (the CPU kernel wants [B, L, N]).
        return dict(u=u, delta=delta, A=-torch.exp(A_log.float()), B=x_dbl[:, r:r + n], C=x_dbl[:, r + n:],
                    D=D.float(), z=xz[:, di:], delta_bias=dt_proj.bias.float(), delta_softplus=True)

    def forward(self, h):
        """h: [B, L, D] -> [B, L, D]."""
        if fused_available(h):
            return self._forward_rows(h)
        # Autograd (training), CUDA, or VTR_FUSED=0: the readable composition, differentiable on every path.
        xz = _channels_first_linear(self.in_proj.weight, h.mT)  # [B, 2·di, L] straight from [B, L, D]
        o = selective_scan(**self._scan_args(xz, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D))
        # The backward scan runs on the reversed sequence with the _b parameters.
        o_b = selective_scan(**self._scan_args(xz, self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log,
                                               self.D_b, reverse=True)).flip(-1)
        o = o.add_(o_b) if not torch.is_grad_enabled() else o + o_b
        # out_proj back to [B, L, D] = oᵀ · Wᵀ, the transposes folded into the GEMM.
        return self._out_proj(o)

    @torch.no_grad()
    def _forward_rows(self, h):
        """CPU inference, channels last from ``in_proj`` to ``out_proj``: h: [B, L, D] -> [B, L, D].

        Every step reads and writes [B, L, ·] rows, the layout the projections' GEMMs produce and consume, so nothing
        is transposed; the backward direction's conv and scan run back to front over the same rows (nothing flipped)
        and its scan adds into the forward direction's output as it writes it, in the dtype out_proj reads (bf16
        under autocast). Under bf16 autocast every step takes the official bf16 path's dtypes (mamba_ssm under
        autocast): the conv writes u in bf16, x_proj and dt_proj run in bf16 (AMX / AVX512-BF16 GEMMs), and the scan
        reads u and Δ as bf16, computing in fp32 (Δ's softplus included); B and C reach it in fp32. In fp32 every
        step is fp32 and the GEMMs go through oneDNN (:func:`linear_rows`).
        """
        di, r, n = self.d_inner, self.dt_rank, self.d_state
        dtype = _autocast_dtype("cpu") or torch.float32
        low = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32  # u, x_proj's and dt_proj's outputs
        with torch.autocast("cpu", enabled=False):
            xz = linear_rows(h.to(dtype), self.in_proj.weight.to(dtype))  # [B, L, 2·di]
            o = None
            for conv, x_proj, dt_proj, A_log, D, reverse in (
                    (self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, False),
                    (self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b, True)):
                # [B, L, di] in bf16 under bf16 autocast, else fp32; then [B, L, R+2N] and Δ: [B, L, di] in that
                # dtype (Δ's bias is added in the scan)
                u = causal_conv1d_silu_rows(xz[..., :di], conv.weight, conv.bias, reverse=reverse, out_dtype=low)
                x_dbl = linear_rows(u, x_proj.weight.to(low))
                delta = linear_rows(x_dbl[..., :r], dt_proj.weight.to(low))
                o = selective_scan_rows(u, delta, -torch.exp(A_log.float()), x_dbl[..., r:r + n], x_dbl[..., r + n:],
                                        D.float(), xz[..., di:], dt_proj.bias.float(), True, reverse=reverse, add=o,
                                        out_dtype=torch.float32 if o is None else dtype)
            return linear_rows(o, self.out_proj.weight.to(o.dtype))

    def _out_proj(self, o):
        """o: [B, d_inner, L] -> [B, L, D] via one batched GEMM on the transposed view."""
        dev = o.device.type
        dtype = _autocast_dtype(dev) or o.dtype
        with torch.autocast(dev, enabled=False):
            return torch.bmm(o.to(dtype).mT, self.out_proj.weight.to(dtype).T.expand(o.shape[0], -1, -1))


class Block(nn.Module):
    """Pre-norm residual block, residual stream in fp32: r <- r + drop_path(mixer(norm(r)))."""

    def __init__(self, dim, d_state=16, d_conv=4, expand=2, dt_rank="auto", norm_eps=1e-5, drop_path=0.0):
        super().__init__()
        self.norm = RMSNorm(dim, eps=norm_eps)
        self.mixer = BiMambaMixer(dim, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank)
        self.drop_path = DropPath(drop_path)

    def forward(self, residual):
        """residual: [B, L, D] fp32 -> [B, L, D] fp32."""
        dtype = _autocast_dtype("cpu") or torch.float32
        if (not self.training and residual.dtype == torch.float32 and dtype in (torch.float32, torch.bfloat16)
                and fused_available(residual)):
            # CPU inference: the norm in one pass over memory, written in the dtype in_proj reads (bf16 under
            # autocast), and the residual add without an fp32 copy of the bf16 mixer output (bench/README.md,
            # twenty-ninth round); the same values as below up to the order of the norm's sum of squares
            return add_rows(residual, self.mixer(rmsnorm_rows(residual, self.norm.weight, self.norm.eps, dtype)))
        h = self.mixer(self.norm(residual))
        return residual + self.drop_path(h)  # promotes a bf16 mixer output into the fp32 residual
