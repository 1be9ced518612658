"""The pieces one block is built from: attention over the live window, a gated-delta fast-weight
mixer, an MLP, and the pre-norm residual block that holds one mixer and one MLP.

Layers know nothing about windows or sleep: attention takes whatever keys and values it is handed
(``past_kv``) plus a boolean mask, and the fast-weight mixer takes a state ``S`` and returns the next
one. Deciding what to hand them, and what to throw away, is the job of ``sleeplab/sleep.py``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import RULES, compute_dtype
from .ops.gated_delta import TRITON_MAX_T

KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: each [B, H, len, D]


def band_mask(q_len: int, k_len: int, band: int | None, device=None) -> torch.Tensor:
    """Boolean [q_len, k_len] mask, True = may attend. The queries are the last ``q_len`` of the
    ``k_len`` keys (the first ``k_len - q_len`` keys come from the cache). Causal, and when ``band``
    is set each query sees at most ``band`` keys: itself and the ``band - 1`` before it."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_pos = torch.arange(k_len, device=device)[None, :]
    allowed = k_pos <= q_pos
    if band is not None:
        allowed &= (q_pos - k_pos) < band
    return allowed


def block_causal_mask(seq_len: int, window: int, device=None) -> torch.Tensor:
    """Causal attention that never crosses a window boundary: hard eviction seen all at once."""
    pos = torch.arange(seq_len, device=device)
    same_window = (pos[:, None] // window) == (pos[None, :] // window)
    return same_window & (pos[None, :] <= pos[:, None])


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: int):
        super().__init__()
        self.up = nn.Linear(d_model, ratio * d_model, bias=False)
        self.down = nn.Linear(ratio * d_model, d_model, bias=False)

    def forward(self, x):  # [B, T, d] -> [B, T, d]
        return self.down(F.gelu(self.up(x)))


class WindowAttention(nn.Module):
    """Multi-head causal softmax attention (eq. 1-2) over the cache it is given plus the new tokens."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.qkv = nn.Linear(d_model, 3 * n_heads * head_dim, bias=False)
        self.out = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def forward(self, x, mask: torch.Tensor, past_kv: KV | None = None):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # q, k, v: [B, H, T, D]
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=2)  # [B, H, P+T, D]
            v = torch.cat([past_kv[1], v], dim=2)
        # Written out instead of F.scaled_dot_product_attention: windows here are ~24 tokens, where the
        # fused kernels' tiles are mostly padding (cuDNN's took ~140 us forward + backward a call on an
        # H100, docs/speed_notes.md); two small matmuls and a softmax that torch.compile fuses cost less.
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5       # [B, H, T, P+T]
        y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v      # [B, H, T, D]
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.out(y), (k, v)


def _inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class GatedDeltaMixer(nn.Module):
    """Gated DeltaNet token mixer: fast weights S per head, written by the gated delta rule.

    alpha_t = exp(g_t), g_t = -exp(A_log) * softplus(a(x_t) + dt_bias)   (forget gate, per head)
    beta_t  = sigmoid(b(x_t))                                              (write strength, per head)
    q_t, k_t = L2norm(SiLU(W_q x_t)), L2norm(SiLU(W_k x_t));  v_t = SiLU(W_v x_t)
    y_t = W_o( RMSNorm(o_t) * SiLU(W_g x_t) )

    The gates are computed here in Python, not fused into a kernel, so they can be read and probed.
    No short convolution: its state across sleep passes is not specified by the paper, and dropping
    it keeps S the only thing that crosses a window boundary.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, rule: str = "gated_delta",
                 op_mode: str = "chunk"):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"rule {rule!r} is not known; allowed: {sorted(RULES)}")
        self.n_heads, self.head_dim, self.rule, self.op_mode = n_heads, head_dim, rule, op_mode
        inner = n_heads * head_dim
        self.q_proj = nn.Linear(d_model, inner, bias=False)
        self.k_proj = nn.Linear(d_model, inner, bias=False)
        self.v_proj = nn.Linear(d_model, inner, bias=False)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.g_proj = nn.Linear(d_model, inner, bias=False)
        self.o_norm = nn.RMSNorm(head_dim, eps=1e-5)
        self.o_proj = nn.Linear(inner, d_model, bias=False)
        # Decay init as in Gated DeltaNet: A ~ U(0, 16) and dt ~ logU[1e-3, 1e-1] give forget gates
        # spread from "remember almost everything" to "forget within a few tokens".
        self.A_log = nn.Parameter(torch.log(torch.empty(n_heads).uniform_(1e-2, 16)))
        dt = torch.exp(torch.rand(n_heads) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(_inverse_softplus(dt.clamp(min=1e-4)))
        self.A_log._no_weight_decay = True
        self.dt_bias._no_weight_decay = True

    def state_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.n_heads, self.head_dim, self.head_dim)  # S: [B, H, K, V]

    def project(self, x):
        """The six input projections (q, k, v, output gate, a, b) as ONE matmul: the training step is
        bound by its number of kernels, not by FLOPs (docs/speed_notes.md). The weights stay six
        parameters, so checkpoints, Muon and probes see the same matrices as before."""
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight, self.g_proj.weight,
                       self.a_proj.weight, self.b_proj.weight])
        inner, H = self.n_heads * self.head_dim, self.n_heads
        return F.linear(x, w).split([inner, inner, inner, inner, H, H], dim=-1)

    def unit_heads(self, z, dtype):
        """A q or k projection [B, T, H*K] -> [B, T, H, K]: L2norm(SiLU(z)) per head, in ``dtype``."""
        return F.normalize(F.silu(z).view(*z.shape[:2], self.n_heads, self.head_dim).to(dtype), dim=-1, eps=1e-6)

    def gates(self, a, b):
        """(g, beta), each [B, T, H], from the a and b projections: log forget gate (<= 0) and
        write strength in (0, 1)."""
        dt = compute_dtype(a)
        g = -self.A_log.to(dt).exp() * F.softplus(a.to(dt) + self.dt_bias)
        return g, torch.sigmoid(b.to(dt))

    def forward(self, x, state: torch.Tensor):
        B, T, _ = x.shape
        shape = (B, T, self.n_heads, self.head_dim)
        dt = compute_dtype(x)
        q, k, v, out_gate, a, b = self.project(x)
        q, k = self.unit_heads(q, dt), self.unit_heads(k, dt)
        v = F.silu(v).view(shape).to(dt)
        g, beta = self.gates(a, b)
        # One chunk per window when it fits (padding a 24-token window to 64 would waste 7x the work);
        # longer inputs in chunks of 32, where batched triangular solves are still fast on GPUs.
        # The Triton kernel holds its one chunk in registers, so it takes windows (T <= 64) only; the
        # N = 1 path (sleep.parallel_forward) hands over the whole sequence, which runs the chunk path.
        mode = "chunk" if self.op_mode == "triton" and T > TRITON_MAX_T else self.op_mode
        o, state = RULES[self.rule](q, k, v, g, beta, initial_state=state, output_final_state=True,
                                    mode=mode, chunk_size=min(T, 32))
        o = self.o_norm(o.to(x.dtype)) * F.silu(out_gate).view(shape)  # [B, T, H, V]
        return self.o_proj(o.reshape(B, T, -1)), state


class Block(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, kind: str, d_model: int, n_heads: int, head_dim: int, mlp_ratio: int,
                 rule: str, op_mode: str):
        super().__init__()
        if kind not in ("attn", "gdn"):
            raise ValueError(f"block kind {kind!r} is not known; allowed: 'attn', 'gdn'")
        self.kind = kind
        self.norm1 = nn.RMSNorm(d_model, eps=1e-6)
        self.norm2 = nn.RMSNorm(d_model, eps=1e-6)
        self.mixer = (WindowAttention(d_model, n_heads, head_dim) if kind == "attn"
                      else GatedDeltaMixer(d_model, n_heads, head_dim, rule, op_mode))
        self.mlp = MLP(d_model, mlp_ratio)

    def residual_outputs(self) -> list[nn.Linear]:
        """The projections whose outputs are added to the residual stream."""
        mixer_out = self.mixer.out if self.kind == "attn" else self.mixer.o_proj
        return [mixer_out, self.mlp.down]

    def forward(self, x, *, state=None, mask=None, past_kv=None):
        """Returns (x, memory): the new fast weights S for a GDN block, this pass's (K, V) for attention."""
        if self.kind == "attn":
            y, memory = self.mixer(self.norm1(x), mask, past_kv)
        else:
            y, memory = self.mixer(self.norm1(x), state)
        x = x + y
        return x + self.mlp(self.norm2(x)), memory
