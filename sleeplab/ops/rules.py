"""Update-rule variants for ablations, with the same calling convention as ``gated_delta_rule``.

* hebbian (the paper's eq. 3; gated linear attention / Mamba2-style): only ADDS to the memory,
      S_t = alpha_t S_{t-1} + beta_t v_t k_t^T,        o_t = S_t q_t        (paper orientation, V x K)
  so nothing old is ever corrected, only faded. Stored transposed like fla: S <- exp(g_t) S + beta_t k_t v_t^T.
* delta (ungated): the gated delta rule with alpha_t = 1 (g = 0), nothing decays; only the
  "predict, then correct" write removes stale content.

Both have a recurrent oracle and an exact chunk form; all shapes/contracts as in ``gated_delta``.
"""
from __future__ import annotations

import torch

from sleeplab.ops._chunk import (check_inputs, chunk_decay, compute_dtype, default_scale, from_chunks,
                                 scan_chunks, start_state, to_chunks)
from sleeplab.ops.gated_delta import gated_delta_rule


def hebbian_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                 mode="chunk", chunk_size=64):
    """Gated Hebbian (linear-attention) memory. Shapes as ``gated_delta_rule``; g <= 0 (unchecked).
    Returns (o [B, T, H, V] in v's dtype, final_state [B, H, K, V] float32/64 or None)."""
    check_inputs("hebbian_rule", q, k, v, g, beta, initial_state, mode, chunk_size)
    fn = _hebbian_recurrent if mode == "recurrent" else _hebbian_chunk
    o, S = fn(q, k, v, g, beta, default_scale(scale, q.shape[-1]), initial_state, chunk_size)
    return o.to(v.dtype), (S if output_final_state else None)


def _hebbian_recurrent(q, k, v, g, beta, scale, initial_state, chunk_size):
    dt = compute_dtype(q, k, v, g, beta, initial_state)
    q, k, v, g, beta = (x.to(dt) for x in (q, k, v, g, beta))
    B, T, H, K = q.shape
    S = start_state(initial_state, B, H, K, v.shape[-1], q, dt)             # [B, H, K, V]
    outs = []
    for t in range(T):
        write = beta[:, t, :, None, None] * k[:, t, :, :, None] * v[:, t, :, None, :]
        S = g[:, t].exp()[..., None, None] * S + write                       # fade, then add k v^T
        outs.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
    return torch.stack(outs, dim=1), S


def _hebbian_chunk(q, k, v, g, beta, scale, initial_state, chunk_size):
    """The write never reads the state, so the pseudo-values are just U = diag(beta) V (no solve):
        O = scale (diag(Gamma) Q S0 + (Q K^T ⊙ D) diag(beta) V),  S_end = Gamma_C S0 + K^T diag(exp(G_C - G_j)) diag(beta) V."""
    dt = compute_dtype(q, k, v, g, beta, initial_state)
    B, T, H, K = q.shape
    C = min(chunk_size, T)
    qc, kc, vc = (to_chunks(x, C, dt) for x in (q, k, v))                    # [B, H, N, C, K|V]
    gc, bc = (to_chunks(x, C, dt) for x in (g, beta))                        # [B, H, N, C]
    S0 = start_state(initial_state, B, H, K, v.shape[-1], q, dt)
    o, S = scan_chunks(qc, kc, qc @ kc.transpose(-1, -2), chunk_decay(gc), bc[..., None] * vc, None, S0, scale)
    return from_chunks(o, T), S


def delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False,
               mode="chunk", chunk_size=64):
    """Ungated delta rule: ``gated_delta_rule`` with g = 0 (exp(0) = 1, no forgetting)."""
    if not isinstance(beta, torch.Tensor):
        raise ValueError(f"delta_rule: beta must be a torch.Tensor, got {type(beta).__name__}")
    g = torch.zeros_like(beta)
    return gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, mode=mode, chunk_size=chunk_size)


def delta_rule_ignoring_g(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                          mode="chunk", chunk_size=64):
    """``delta_rule`` behind the uniform RULES signature: g is accepted and IGNORED (no decay), so an
    ablation can swap rules without changing the caller."""
    return delta_rule(q, k, v, beta, scale=scale, initial_state=initial_state,
                      output_final_state=output_final_state, mode=mode, chunk_size=chunk_size)
