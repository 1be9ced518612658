"""The gated delta rule for ONE chunk (T <= 64) as two fused Triton kernels, forward and backward.

Why: the paper model calls the rule on 24-token windows, and the PyTorch chunk path spends ~25 small
kernels forward and ~50 backward per call on [B, H, 24, 64] tensors; the step is bound by kernel count
(docs/speed_notes.md). Here one program per (batch, head) holds the whole chunk in registers and does
what ``gated_delta._chunk`` does with N = 1 (same symbols, see that module's doc):
    G = cumsum(g), Gamma = exp(G), D_ij = exp(G_i - G_j) (j <= i), e_j = exp(G_T - G_j)
    A = diag(beta) (K K^T ⊙ D) strictly lower,  Tinv = (I + A)^{-1}  (forward substitution)
    U = Tinv diag(beta) (V - diag(Gamma) K S0)       (= U0 - W S0)
    O = scale (diag(Gamma) Q S0 + (Q K^T ⊙ D) U),    S_end = Gamma_T S0 + K^T diag(e) U
The backward is a Triton kernel as well (not a PyTorch recompute): it reloads the inputs and the saved
Tinv ([B*H, BT, BT] fp32, the only intermediate kept), recomputes U and applies the chain rule by hand
(`_gdn_bwd`'s comments give each step); the one non-obvious step is dA = -(Tinv^T dU) U^T.

Import this module only through ``gated_delta_rule(..., mode="triton")``: it imports triton, which is
optional. ``TRITON_INTERPRET=1`` set before the import runs the kernels on CPU tensors in Triton's
interpreter (tests only; ``INTERPRETED`` records it).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

INTERPRETED = bool(triton.knobs.runtime.interpret)


@triton.jit
def _rows(ptr, b, h, t, d, T, H, D):
    """Rows t of one (b, h) of a contiguous [B, T, H, D] tensor as fp32 [BT, BD], zeros past T and D.
    Zero rows are exact padding: k = q = v = 0 and beta = g = 0 leave the state and outputs untouched."""
    offs = ((b * T + t[:, None]) * H + h) * D + d[None, :]
    return tl.load(ptr + offs, mask=(t[:, None] < T) & (d[None, :] < D), other=0.0).to(tl.float32)


@triton.jit
def _store_rows(ptr, x, b, h, t, d, T, H, D):
    offs = ((b * T + t[:, None]) * H + h) * D + d[None, :]
    tl.store(ptr + offs, x, mask=(t[:, None] < T) & (d[None, :] < D))


@triton.jit
def _gates(g_ptr, beta_ptr, b, h, t, T, H):
    """-> g, beta [BT], the decays G, Gamma, e [BT], Gamma_T (scalar) and D [BT, BT]."""
    offs = (b * T + t) * H + h
    g = tl.load(g_ptr + offs, mask=t < T, other=0.0).to(tl.float32)
    beta = tl.load(beta_ptr + offs, mask=t < T, other=0.0).to(tl.float32)
    G = tl.cumsum(g, 0)
    G_T = tl.sum(tl.where(t == T - 1, G, 0.0), 0)
    # above the diagonal G_i - G_j >= 0 may be huge: exp(-inf) gives the exact 0 without an inf
    D = tl.exp(tl.where(t[:, None] >= t[None, :], G[:, None] - G[None, :], float("-inf")))
    return g, beta, G, tl.exp(G), tl.exp(G_T - G), tl.exp(G_T), D


@triton.jit
def _state(ptr, pid, dk, dv, K, V):
    return tl.load(ptr + pid * K * V + dk[:, None] * V + dv[None, :],
                   mask=(dk[:, None] < K) & (dv[None, :] < V), other=0.0).to(tl.float32)


@triton.jit
def _unit_lower_inverse(A, t, T):
    """(I + A)^{-1} for strictly lower A [BT, BT]: row i of X is e_i - A_i X, and A_i reads only rows
    j < i, which are final by then, so one pass over the rows in order solves it."""
    rows = t[:, None]
    X = tl.where(rows == t[None, :], 1.0, 0.0)
    for i in range(1, T):
        a_i = tl.sum(tl.where(rows == i, A, 0.0), 0)                  # row i of A, indexed by j
        X = tl.where(rows == i, X - tl.sum(a_i[:, None] * X, 0)[None, :], X)
    return X


@triton.jit
def _gdn_fwd(q_ptr, k_ptr, v_ptr, g_ptr, beta_ptr, s0_ptr, o_ptr, s_ptr, tinv_ptr, scale,
             T: tl.constexpr, H, K, V, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
             HAS_S0: tl.constexpr, SAVE_TINV: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    b, h = pid // H, pid % H
    t, dk, dv = tl.arange(0, BT), tl.arange(0, BK), tl.arange(0, BV)
    q = _rows(q_ptr, b, h, t, dk, T, H, K)                                 # [BT, BK]
    k = _rows(k_ptr, b, h, t, dk, T, H, K)                                 # [BT, BK]
    v = _rows(v_ptr, b, h, t, dv, T, H, V)                                 # [BT, BV]
    g, beta, G, gamma, e, gamma_T, D = _gates(g_ptr, beta_ptr, b, h, t, T, H)
    if HAS_S0:
        s0 = _state(s0_ptr, pid, dk, dv, K, V)                             # [BK, BV]
    else:
        s0 = tl.zeros([BK, BV], dtype=tl.float32)

    kk = tl.dot(k, tl.trans(k), input_precision=PREC)
    A = tl.where(t[:, None] > t[None, :], beta[:, None] * D * kk, 0.0)
    tinv = _unit_lower_inverse(A, t, T)
    R = beta[:, None] * (v - gamma[:, None] * tl.dot(k, s0, input_precision=PREC))
    U = tl.dot(tinv, R, input_precision=PREC)                              # [BT, BV] pseudo-values
    qk = tl.dot(q, tl.trans(k), input_precision=PREC)
    o = scale * (gamma[:, None] * tl.dot(q, s0, input_precision=PREC)
                 + tl.dot(qk * D, U, input_precision=PREC))
    s_end = gamma_T * s0 + tl.dot(tl.trans(k * e[:, None]), U, input_precision=PREC)

    _store_rows(o_ptr, o, b, h, t, dv, T, H, V)
    tl.store(s_ptr + pid * K * V + dk[:, None] * V + dv[None, :], s_end,
             mask=(dk[:, None] < K) & (dv[None, :] < V))
    if SAVE_TINV:
        tl.store(tinv_ptr + pid * BT * BT + t[:, None] * BT + t[None, :], tinv)


@triton.jit
def _gdn_bwd(q_ptr, k_ptr, v_ptr, g_ptr, beta_ptr, s0_ptr, tinv_ptr, do_ptr, ds_ptr,
             dq_ptr, dk_ptr, dv_ptr, dg_ptr, dbeta_ptr, ds0_ptr, scale, T: tl.constexpr, H, K, V,
             BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_S0: tl.constexpr,
             HAS_DS: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    b, h = pid // H, pid % H
    t, dk_, dv_ = tl.arange(0, BT), tl.arange(0, BK), tl.arange(0, BV)
    q = _rows(q_ptr, b, h, t, dk_, T, H, K)
    k = _rows(k_ptr, b, h, t, dk_, T, H, K)
    v = _rows(v_ptr, b, h, t, dv_, T, H, V)
    do = _rows(do_ptr, b, h, t, dv_, T, H, V)                              # [BT, BV]
    g, beta, G, gamma, e, gamma_T, D = _gates(g_ptr, beta_ptr, b, h, t, T, H)
    if HAS_S0:
        s0 = _state(s0_ptr, pid, dk_, dv_, K, V)
    else:
        s0 = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DS:
        ds = _state(ds_ptr, pid, dk_, dv_, K, V)                           # [BK, BV] grad of S_end
    else:
        ds = tl.zeros([BK, BV], dtype=tl.float32)
    tinv = tl.load(tinv_ptr + pid * BT * BT + t[:, None] * BT + t[None, :])
    causal = t[:, None] >= t[None, :]
    strict = t[:, None] > t[None, :]

    # forward values the gradients need (cheaper to recompute in registers than to store)
    ks0 = tl.dot(k, s0, input_precision=PREC)                               # [BT, BV]
    Y = v - gamma[:, None] * ks0
    U = tl.dot(tinv, beta[:, None] * Y, input_precision=PREC)
    qk = tl.dot(q, tl.trans(k), input_precision=PREC)
    kk = tl.dot(k, tl.trans(k), input_precision=PREC)

    # O = scale (diag(Gamma) Q S0 + M U), M = Q K^T ⊙ D
    kds = tl.dot(k, ds, input_precision=PREC)                               # [BT, BV]
    dU = scale * tl.dot(tl.trans(qk * D), do, input_precision=PREC) + e[:, None] * kds
    dM = tl.where(causal, scale * tl.dot(do, tl.trans(U), input_precision=PREC), 0.0)
    dos0 = tl.dot(do, tl.trans(s0), input_precision=PREC)                   # [BT, BK]
    dq = scale * gamma[:, None] * dos0 + tl.dot(dM * D, k, input_precision=PREC)
    dgamma = scale * tl.sum(q * dos0, 1)
    ds0 = scale * tl.dot(tl.trans(q * gamma[:, None]), do, input_precision=PREC) + gamma_T * ds
    # S_end = Gamma_T S0 + sum_j e_j k_j u_j^T (its dU share is in dU above)
    dk = (tl.dot(tl.trans(dM * D), q, input_precision=PREC)
          + e[:, None] * tl.dot(U, tl.trans(ds), input_precision=PREC))
    de = tl.sum(kds * U, 1)
    dgamma_T = tl.sum(tl.sum(s0 * ds, 1), 0)

    # U = Tinv R with Tinv = (I + A)^{-1}: dR = Tinv^T dU, dA = -Tinv^T dU R^T Tinv^T = -dR U^T
    dR = tl.dot(tl.trans(tinv), dU, input_precision=PREC)
    dA = tl.where(strict, -tl.dot(dR, tl.trans(U), input_precision=PREC), 0.0)
    # R = diag(beta) Y, Y = V - diag(Gamma) K S0
    dY = beta[:, None] * dR
    dgamma -= tl.sum(ks0 * dY, 1)
    dk -= gamma[:, None] * tl.dot(dY, tl.trans(s0), input_precision=PREC)
    ds0 -= tl.dot(tl.trans(k * gamma[:, None]), dY, input_precision=PREC)
    # A = diag(beta) (K K^T ⊙ D) below the diagonal (dA is zero on and above it)
    dbeta = tl.sum(dR * Y, 1) + tl.sum(dA * D * kk, 1)
    dP = beta[:, None] * dA
    dkk = dP * D
    dk += tl.dot(dkk + tl.trans(dkk), k, input_precision=PREC)

    # every decay is exp of a difference of G = cumsum(g): collect dG, then dg is its reverse cumsum
    Z = (dM * qk + dP * kk) * D                                            # dL/dD ⊙ D
    dG = tl.sum(Z, 1) - tl.sum(Z, 0) + dgamma * gamma - de * e
    dG += tl.where(t == T - 1, tl.sum(de * e, 0) + dgamma_T * gamma_T, 0.0)
    dG = tl.where(t < T, dG, 0.0)
    dg = tl.sum(dG, 0) - tl.cumsum(dG, 0) + dG

    _store_rows(dq_ptr, dq, b, h, t, dk_, T, H, K)
    _store_rows(dk_ptr, dk, b, h, t, dk_, T, H, K)
    _store_rows(dv_ptr, dY, b, h, t, dv_, T, H, V)
    offs = (b * T + t) * H + h
    tl.store(dg_ptr + offs, dg, mask=t < T)
    tl.store(dbeta_ptr + offs, dbeta, mask=t < T)
    if HAS_S0:
        tl.store(ds0_ptr + pid * K * V + dk_[:, None] * V + dv_[None, :], ds0,
                 mask=(dk_[:, None] < K) & (dv_[None, :] < V))


def _blocks(T, K, V):
    # tl.dot needs every dimension >= 16 and a power of two
    return tuple(max(16, triton.next_power_of_2(n)) for n in (T, K, V))


def _warps(BT):
    # a [64, 64] fp32 tile is 32 registers a thread at 4 warps; the backward holds ~15 such tiles
    return 4 if BT <= 32 else 8


# The kernels are launched inside torch.library custom ops, not a plain autograd.Function: dynamo treats a
# custom op as one opaque node whose output shapes come from the registered fake, so a compiled block
# (train/fast.py) traces around the kernels with no graph break and inductor never looks inside them.
# A launch inside an autograd.Function is traced into instead (under the interpreter it reaches
# untraceable storage pointers and fails with fullgraph=True; on a GPU it depends on dynamo's Triton support).
@torch.library.custom_op("sleeplab::gdn_single_chunk_fwd", mutates_args=())
def _fwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
            s0: torch.Tensor | None, scale: float, precision: str, save_tinv: bool
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> o [B, T, H, V], S_end [B, H, K, V] fp32, Tinv [B*H, BT, BT] fp32 (empty unless save_tinv).
    Every tensor must be contiguous (``single_chunk_gated_delta`` makes them so)."""
    o, S, tinv = _fwd_outputs(q, k, v, g, beta, s0, scale, precision, save_tinv)
    B, T, H, K = q.shape
    BT, BK, BV = _blocks(T, K, v.shape[-1])
    _gdn_fwd[(B * H,)](q, k, v, g, beta, q if s0 is None else s0, o, S, tinv if save_tinv else S, scale,
                       T, H, K, v.shape[-1], BT=BT, BK=BK, BV=BV, HAS_S0=s0 is not None,
                       SAVE_TINV=save_tinv, PREC=precision, num_warps=_warps(BT))
    return o, S, tinv


def _fwd_outputs(q, k, v, g, beta, s0, scale, precision, save_tinv):
    B, T, H, K = q.shape
    BT = _blocks(T, K, v.shape[-1])[0]
    S = v.new_empty(B, H, K, v.shape[-1], dtype=torch.float32)
    return torch.empty_like(v), S, v.new_empty((B * H, BT, BT) if save_tinv else (0,), dtype=torch.float32)


@torch.library.custom_op("sleeplab::gdn_single_chunk_bwd", mutates_args=())
def _bwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
            s0: torch.Tensor | None, tinv: torch.Tensor, do: torch.Tensor | None, dS: torch.Tensor | None,
            scale: float, precision: str) -> list[torch.Tensor]:
    """-> [dq, dk, dv, dg, dbeta, dS0] (dS0 empty without s0). do or dS None: that output was unused."""
    grads = _bwd_outputs(q, k, v, g, beta, s0, tinv, do, dS, scale, precision)
    B, T, H, K = q.shape
    BT, BK, BV = _blocks(T, K, v.shape[-1])
    do = torch.zeros_like(v) if do is None else do.contiguous()
    _gdn_bwd[(B * H,)](q, k, v, g, beta, q if s0 is None else s0, tinv, do,
                       q if dS is None else dS.contiguous(), *grads[:5], q if s0 is None else grads[5],
                       scale, T, H, K, v.shape[-1], BT=BT, BK=BK, BV=BV, HAS_S0=s0 is not None,
                       HAS_DS=dS is not None, PREC=precision, num_warps=_warps(BT))
    return grads


def _bwd_outputs(q, k, v, g, beta, s0, tinv, do, dS, scale, precision):
    return [torch.empty_like(x) for x in (q, k, v, g, beta)] + [q.new_empty(0) if s0 is None else torch.empty_like(s0)]


def _setup_context(ctx, inputs, output):
    q, k, v, g, beta, s0, scale, precision, _ = inputs
    ctx.save_for_backward(q, k, v, g, beta, s0, output[2])
    ctx.scale, ctx.precision = scale, precision
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # an unused final state costs no zeros kernel


def _backward(ctx, do, dS, _):
    q, k, v, g, beta, s0, tinv = ctx.saved_tensors
    *grads, ds0 = _bwd_op(q, k, v, g, beta, s0, tinv, do, dS, ctx.scale, ctx.precision)
    return (*grads, None if s0 is None else ds0, None, None, None)


# the fakes are the allocations: dynamo learns the shapes from the same code that makes the real outputs
_fwd_op.register_fake(_fwd_outputs)
_bwd_op.register_fake(_bwd_outputs)
_fwd_op.register_autograd(_backward, setup_context=_setup_context)


def single_chunk_gated_delta(q, k, v, g, beta, scale, initial_state):
    """Shapes as ``gated_delta_rule`` (checked there), T <= ``gated_delta.TRITON_MAX_T``.
    Returns (o [B, T, H, V] in v's dtype, S_end [B, H, K, V] fp32).

    The in-kernel matmuls use TF32 where PyTorch's would be reduced-precision too (TF32 allowed, or
    CUDA autocast on, where the chunk path multiplies in bf16); exact fp32 ("ieee") otherwise."""
    fast = torch.backends.cuda.matmul.allow_tf32 or torch.is_autocast_enabled("cuda")
    precision = "tf32" if fast and q.is_cuda else "ieee"
    inputs = [None if x is None else x.contiguous() for x in (q, k, v, g, beta, initial_state)]
    # (I + A)^{-1} is kept for the backward only when there will be one
    save = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in inputs)
    o, S, _ = _fwd_op(*inputs, float(scale), precision, save)
    return o, S
