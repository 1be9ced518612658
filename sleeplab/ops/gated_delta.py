"""The gated delta rule: a fast-weight memory that decays, then corrects what it stores for key k.

    +---------------------------------------------------------------------------------------+
    |  paper orientation, S_t in R^{V x K}:                                                  |
    |      S_t = S_{t-1} alpha_t (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,   o_t = S_t q_t  |
    |  alpha_t = exp(g_t) in (0, 1] forgets, beta_t in (0, 1) is the write strength.         |
    +---------------------------------------------------------------------------------------+

Reading it as "predict, then correct": with the decayed memory S' = alpha_t S_{t-1}, the memory's
current guess for key k_t is S' k_t; the update writes beta_t (v_t - S' k_t) k_t^T, i.e. one step
of online regression towards v_t. Like fla we store the TRANSPOSE, S^T in R^{K x V} (``[B, H, K, V]``),
so per token:
    S <- exp(g_t) S;   u_t = beta_t (v_t - S^T k_t);   S <- S + k_t u_t^T;   o_t = scale * S^T q_t.

Chunk form (exact, not an approximation). Take a chunk of C tokens starting from state S0, with
G_i = g_1 + ... + g_i and Gamma_i = exp(G_i). Unrolling the recurrence, the state just before token
i writes is Gamma_i S0 + sum_{j<i} exp(G_i - G_j) k_j u_j^T, so the pseudo-values u solve
    u_i + beta_i sum_{j<i} exp(G_i - G_j) (k_i . k_j) u_j = beta_i (v_i - Gamma_i S0^T k_i),
i.e. (I + A) U = diag(beta) (V - diag(Gamma) K S0) with A strictly lower triangular (the "WY"/"UT"
form). Everything except the S0 term is shared by all chunks and done in one batched pass:
    U     = (I + A)^{-1} diag(beta) V  -  (I + A)^{-1} diag(beta Gamma) K S0  =:  U0 - W S0
    O     = scale * ( diag(Gamma) Q S0 + (Q K^T ⊙ D) U ),     D_ij = exp(G_i - G_j), j <= i
    S_end = Gamma_C S0 + K^T diag(exp(G_C - G_j)) U
Only the last three lines run chunk by chunk (``_chunk.scan_chunks``).

Contract: g must be <= 0 (log of a decay). It is NOT checked at run time, because a value check forces
a GPU->host sync and cannot be captured in a CUDA graph; positive g makes the state grow without bound.
"""
from __future__ import annotations

import torch

from sleeplab.ops._chunk import (MODES, check_inputs, chunk_decay, compute_dtype, default_scale, from_chunks,
                                 scan_chunks, start_state, strictly_lower, to_chunks, unit_lower_inverse)

TRITON_MAX_T = 64  # mode="triton": the sequence is one chunk, a [T, T] register tile solved in T serial steps


def gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                     mode="chunk", chunk_size=64):
    """fla-compatible gated delta rule.

    q, k: [B, T, H, K] (L2-normalised keys keep it stable); v: [B, T, H, V];
    g: [B, T, H] log decay, must be <= 0 (not checked, see module doc); beta: [B, T, H] in (0, 1);
    initial_state: [B, H, K, V] or None; scale defaults to K**-0.5.
    mode: "chunk" (parallel WY form, the default), "recurrent" (token-by-token oracle) or "triton"
    (fused Triton kernels, ``triton_gdn.py``: CUDA tensors, T <= 64, not float64; chunk_size unused,
    the sequence is one chunk; not yet measured on a GPU, so opt-in only).
    Returns (o [B, T, H, V] in v's dtype, final_state [B, H, K, V] in float32/64 or None)."""
    check_inputs("gated_delta_rule", q, k, v, g, beta, initial_state, mode, chunk_size, MODES + ("triton",))
    fn = {"recurrent": _recurrent, "chunk": _chunk, "triton": _triton}[mode]
    o, S = fn(q, k, v, g, beta, default_scale(scale, q.shape[-1]), initial_state, chunk_size)
    return o.to(v.dtype), (S if output_final_state else None)


def _triton(q, k, v, g, beta, scale, initial_state, chunk_size):
    """Checks what the kernels cannot handle, then runs them. triton is imported only here: it is optional."""
    T = q.shape[1]
    if T > TRITON_MAX_T:
        raise ValueError(f"gated_delta_rule: mode='triton' needs T <= {TRITON_MAX_T} (one chunk), got T={T} "
                         f"(q of shape {tuple(q.shape)}); use mode='chunk' for longer sequences")
    tensors = dict(q=q, k=k, v=v, g=g, beta=beta, initial_state=initial_state)
    for name, x in tensors.items():
        if x is not None and x.dtype == torch.float64:
            raise ValueError(f"gated_delta_rule: mode='triton' computes in float32, so {name} must be float32, "
                             f"bfloat16 or float16, got float64; use mode='chunk' for float64")
        if x is not None and x.device != q.device:
            raise ValueError(f"gated_delta_rule: mode='triton' needs every tensor on q's device {q.device}, "
                             f"got {name} on {x.device}")
    try:
        from sleeplab.ops import triton_gdn
    except ImportError as e:
        raise ImportError("gated_delta_rule: mode='triton' needs the triton package (pip install triton); "
                          "mode='chunk' runs without it") from e
    if q.device.type != "cuda" and not triton_gdn.INTERPRETED:
        raise ValueError(f"gated_delta_rule: mode='triton' needs CUDA tensors, got q on {q.device}; use "
                         "mode='chunk' (tests run it on CPU with TRITON_INTERPRET=1 set before triton is imported)")
    return triton_gdn.single_chunk_gated_delta(q, k, v, g, beta, scale, initial_state)


def _recurrent(q, k, v, g, beta, scale, initial_state, chunk_size):
    """The oracle: the definition, one token at a time. Slow (T sequential steps), obviously right."""
    dt = compute_dtype(q, k, v, g, beta, initial_state)
    q, k, v, g, beta = (x.to(dt) for x in (q, k, v, g, beta))
    B, T, H, K = q.shape
    S = start_state(initial_state, B, H, K, v.shape[-1], q, dt)          # [B, H, K, V]
    outs = []
    for t in range(T):
        S = g[:, t].exp()[..., None, None] * S                           # forget
        pred = torch.einsum("bhkv,bhk->bhv", S, k[:, t])                  # memory's guess for k_t
        u = beta[:, t, :, None] * (v[:, t] - pred)                        # [B, H, V] correction
        S = S + k[:, t, :, :, None] * u[:, :, None, :]                    # rank-1 write k_t u_t^T
        outs.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))   # read after writing
    return torch.stack(outs, dim=1), S                                    # [B, T, H, V]


def _chunk(q, k, v, g, beta, scale, initial_state, chunk_size):
    dt = compute_dtype(q, k, v, g, beta, initial_state)
    B, T, H, K = q.shape
    C = min(chunk_size, T)  # a short sequence is one short chunk, not a padded long one
    qc, kc, vc = (to_chunks(x, C, dt) for x in (q, k, v))                # [B, H, N, C, K|V]
    gc, bc = (to_chunks(x, C, dt) for x in (g, beta))                    # [B, H, N, C]
    dec = chunk_decay(gc)

    # Products that share an operand are taken as one matmul (the step is bound by kernel count):
    # [Q; K] K^T gives Q K^T (for the output) and K K^T (for A) together.
    qk, kk = (torch.cat([qc, kc], dim=-2) @ kc.transpose(-1, -2)).split(C, dim=-2)  # [B, H, N, C, C] each
    # A_ij = beta_i exp(G_i - G_j) (k_i . k_j), j < i. D's diagonal is exp(0) = 1, so mask it out.
    A = (bc[..., None] * dec.D * kk).masked_fill(~strictly_lower(C, q.device), 0.0)
    Tinv = unit_lower_inverse(A)                                         # (I + A)^{-1}
    # U0 = Tinv diag(beta) V and W = Tinv diag(beta Gamma) K: one product with [V | K]
    U0, W = (Tinv @ torch.cat([bc[..., None] * vc, (bc * dec.gamma)[..., None] * kc], dim=-1)
             ).split([v.shape[-1], K], dim=-1)                           # [B, H, N, C, V], [B, H, N, C, K]

    S0 = start_state(initial_state, B, H, K, v.shape[-1], q, dt)
    o, S = scan_chunks(qc, kc, qk, dec, U0, W, S0, scale)
    return from_chunks(o, T), S
