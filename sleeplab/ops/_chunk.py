"""Pieces shared by every chunked fast-weight rule: input checks, the chunk layout, the in-chunk
decay masks, the unit-lower-triangular inverse and the sequential scan over chunks.

Layout convention: public tensors are fla's ``[B, T, H, *]``; inside we work on
``[B, H, N, C, *]`` (N chunks of C tokens), so every per-chunk quantity is one batched matmul.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

MODES = ("chunk", "recurrent")


def check_inputs(name, q, k, v, g, beta, initial_state, mode, chunk_size, modes=MODES):
    """Shape/dtype/mode checks only (``modes``: the modes this rule has). The VALUES of g (must be
    <= 0) are deliberately not checked: ``(g > 0).any()`` is data-dependent, forces a GPU->host sync
    and breaks CUDA-graph capture."""
    if mode not in modes:
        raise ValueError(f"{name}: mode={mode!r} is not supported; allowed: {', '.join(map(repr, modes))}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{name}: chunk_size must be an integer >= 1, got {chunk_size!r}")
    for tname, t in (("q", q), ("k", k), ("v", v), ("beta", beta), ("g", g)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: {tname} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name}: {tname} must be a floating-point tensor, got dtype {t.dtype}")
    if q.dim() != 4:
        raise ValueError(f"{name}: q must be [B, T, H, K], got shape {tuple(q.shape)}")
    B, T, H, K = q.shape
    if T < 1:
        raise ValueError(f"{name}: sequence length T must be >= 1, got q of shape {tuple(q.shape)}")
    expected = {
        "k": (B, T, H, K),
        "v": (B, T, H, v.shape[-1] if v.dim() == 4 else -1),
        "g": (B, T, H),
        "beta": (B, T, H),
    }
    names = {"k": "[B, T, H, K]", "v": "[B, T, H, V]", "g": "[B, T, H]", "beta": "[B, T, H]"}
    for tname, t in (("k", k), ("v", v), ("beta", beta), ("g", g)):
        if tuple(t.shape) != expected[tname]:
            raise ValueError(f"{name}: {tname} must be {names[tname]} = {expected[tname]} "
                             f"(from q {tuple(q.shape)}), got shape {tuple(t.shape)}")
    if initial_state is not None:
        want = (B, H, K, v.shape[-1])
        if not isinstance(initial_state, torch.Tensor) or tuple(initial_state.shape) != want:
            got = tuple(initial_state.shape) if isinstance(initial_state, torch.Tensor) else type(initial_state).__name__
            raise ValueError(f"{name}: initial_state must be [B, H, K, V] = {want}, got {got}")


def compute_dtype(*tensors) -> torch.dtype:
    """float64 if the caller works in float64 (oracle tests), else float32 (bf16 inputs included:
    the state is a running sum over the whole sequence and loses too much in 8 mantissa bits)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def start_state(initial_state, B, H, K, V, like: torch.Tensor, dtype) -> torch.Tensor:
    if initial_state is None:
        return like.new_zeros(B, H, K, V, dtype=dtype)
    return initial_state.to(dtype)


def default_scale(scale, K: int) -> float:
    return K ** -0.5 if scale is None else scale


def to_chunks(x: torch.Tensor, C: int, dtype) -> torch.Tensor:
    """[B, T, H, *] -> [B, H, N, C, *], zero-padded at the end to N*C tokens.

    Why zero padding is exact for every rule here: a padded token has k = q = v = 0, beta = 0 and
    g = 0 (decay exp(0) = 1), so it leaves the state untouched and its output is dropped."""
    x = x.to(dtype)
    T = x.shape[1]
    N = math.ceil(T / C)
    if N * C != T:
        pad = [0, 0] * (x.dim() - 2) + [0, N * C - T]  # F.pad lists dims from the last one
        x = F.pad(x, pad)
    B, _, H = x.shape[:3]
    x = x.reshape(B, N, C, H, *x.shape[3:])
    return x.movedim(3, 1)  # [B, H, N, C, *]


def from_chunks(o: torch.Tensor, T: int) -> torch.Tensor:
    """[B, H, N, C, V] -> [B, T, H, V] (drops the padding)."""
    B, H, N, C, V = o.shape
    return o.reshape(B, H, N * C, V)[:, :, :T].transpose(1, 2)


class Decay(NamedTuple):
    G: torch.Tensor      # [B, H, N, C]     cumulative log decay inside each chunk, G_i = g_1 + ... + g_i
    D: torch.Tensor      # [B, H, N, C, C]  D_ij = exp(G_i - G_j) for j <= i, 0 above the diagonal
    gamma: torch.Tensor  # [B, H, N, C]     exp(G_i): decay from the chunk start to token i
    to_end: torch.Tensor  # [B, H, N, C]    exp(G_C - G_j): decay from token j to the chunk end


def chunk_decay(g: torch.Tensor) -> Decay:
    """g: [B, H, N, C] log decays (<= 0)."""
    G = g.cumsum(-1)
    C = g.shape[-1]
    diff = G[..., :, None] - G[..., None, :]  # [.., C, C] G_i - G_j
    # Above the diagonal G_i - G_j >= 0 and can be huge (e.g. +1900 with g = -30), so exp would be inf
    # and inf * 0 = nan in the backward; set it to -inf first so exp gives an exact 0 and zero grads.
    causal = torch.ones(C, C, dtype=torch.bool, device=g.device).tril()
    D = diff.masked_fill(~causal, float("-inf")).exp()
    return Decay(G, D, G.exp(), (G[..., -1:] - G).exp())


def strictly_lower(C: int, device) -> torch.Tensor:
    return torch.ones(C, C, dtype=torch.bool, device=device).tril(-1)


def unit_lower_inverse(A: torch.Tensor, method: str = "solve") -> torch.Tensor:
    """(I + A)^{-1} for a batch of strictly lower-triangular C x C matrices A.

    "solve" (default): ``torch.linalg.solve_triangular`` with ``unitriangular=True`` (the ones on the
    diagonal are implied, never read). Chosen because it is the cheapest, ~C^3/3 flops against
    ~2 log2(C) C^3 for the product below (~30x fewer at C = 64; the chunked CPU benchmark runs about
    1.7x faster with it), backward stable, differentiable (its backward is another triangular solve),
    and free of host syncs: we checked that fwd+bwd captures and replays in a CUDA graph (H200,
    torch 2.11), where it was also slightly faster than the product.
    "product": A is nilpotent (A^C = 0), so the Neumann series is finite and factors as
        (I + A)^{-1} = sum_n (-A)^n = (I - A)(I + A^2)(I + A^4)...(I + A^{2^(m-1)}),  2^m >= C,
    i.e. ceil(log2 C) factors. Exact algebra, matmul-only; kept as an independent cross-check and for
    backends where batched triangular solve is missing or slow."""
    C = A.shape[-1]
    eye = torch.eye(C, dtype=A.dtype, device=A.device)
    if method == "solve":
        return torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False, unitriangular=True)
    if method != "product":
        raise ValueError(f"unit_lower_inverse: method={method!r} is not supported; allowed: 'solve', 'product'")
    X = eye - A          # partial sum of (-A)^n for n < 2
    P = A                # A^(span / 2)
    span = 2
    while span < C:
        P = P @ P        # A^span
        X = X + X @ P    # times (I + A^span): doubles the number of terms in the partial sum
        span *= 2
    return X


def scan_chunks(q, k, qk, dec: Decay, U0, W, S, scale):
    """The only sequential part: walk the N chunks carrying the state S [B, H, K, V].

    q, k: [B, H, N, C, K]; qk = Q K^T: [B, H, N, C, C]; U0: [B, H, N, C, V]; W: [B, H, N, C, K] or None.
    Per chunk, the state-independent parts were done for all chunks at once by the caller; here
        U     = U0 - W S                              (pseudo-values; W is None for rules that
                                                       do not read the state before writing)
        O     = scale * (diag(Gamma) Q S + (Q K^T ⊙ D) U)
        S_end = Gamma_C S + K^T diag(exp(G_C - G_j)) U
    Returns o [B, H, N, C, V] and the final state."""
    C = q.shape[3]
    attn = qk * dec.D                                   # [B, H, N, C, C], causal by D's zeros
    q_dec = q * dec.gamma[..., None]                    # [B, H, N, C, K]
    k_dec = k * dec.to_end[..., None]                   # [B, H, N, C, K]
    chunk_decay_total = dec.gamma[..., -1, None, None]  # [B, H, N, 1, 1] = Gamma_C
    # diag(Gamma) Q S and W S read the same state: one matmul a chunk for both
    reads = q_dec if W is None else torch.cat([q_dec, W], dim=-2)  # [B, H, N, C or 2C, K]
    outs = []
    for n in range(q.shape[2]):
        read = reads[:, :, n] @ S                                  # [B, H, C or 2C, V]
        U = U0[:, :, n] if W is None else U0[:, :, n] - read[..., C:, :]   # [B, H, C, V]
        outs.append(scale * (read[..., :C, :] + attn[:, :, n] @ U))
        S = chunk_decay_total[:, :, n] * S + k_dec[:, :, n].transpose(-1, -2) @ U
    return torch.stack(outs, dim=2), S
