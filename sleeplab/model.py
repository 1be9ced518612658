"""SleepLM: embedding -> a stack of attention and gated-delta blocks -> output head (eq. 4-6).

The model holds no sleep logic. It offers three verbs, and ``sleeplab/sleep.py`` composes them into
Algorithm 1 (and into the streaming runner):

    h = model.embed(tokens, start)                         # once per window
    h, S, kv = model.run_blocks(h, S, mask, past_kv)       # one pass of the whole block stack
    logits = model.head_logits(h)                          # only in prediction windows

``model(tokens, loss_mask)`` calls that loop (``sleep.sleep_forward``) for convenience, the one place
the model uses ``sleep.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

from .layers import Block
from .ops import compute_dtype

EVICTIONS = ("hard", "sliding", "none")
PASS_NORMS = ("none", "rms")
INJECTIONS = ("none", "add", "scaled", "adapter")
FEEDS = ("features", "embedding")
OP_MODES = ("chunk", "recurrent", "triton")


@dataclass
class SleepLMConfig:
    # architecture (defaults: a toy model that trains on a laptop CPU)
    vocab_size: int = 16
    d_model: int = 64
    n_heads: int = 4
    pattern: str = "attn,gdn,attn,gdn"   # one entry per block, "attn" or "gdn" (eq. 5)
    mlp_ratio: int = 4
    max_positions: int = 128             # learned absolute positions over the whole sequence
    rule: str = "gated_delta"            # fast-weight update: gated_delta | delta | hebbian (eq. 3)
    op_mode: str = "chunk"               # chunk (exact parallel form) | recurrent (token loop oracle) |
                                         # triton (fused kernels, gated_delta only); execution, not weights
    # memory and sleep (Algorithm 1)
    window: int = 24                     # L: attention window, and the eviction period
    eviction: str = "hard"               # hard: clear the cache every L tokens; sliding: keep L-1; none
    n_sleep: int = 1                     # N: passes over each full window before its KV is evicted
    # options beyond the paper, all off by default (sleep.py and layers.py define each one)
    n_sleep_range: tuple[int, int] | None = None  # train with N ~ U{lo..hi} drawn per batch
    grad_passes: int | None = None       # features carry gradient through only the last k passes (S always does)
    pass_norm: str = "none"              # none | rms: features enter every pass at the embedding's scale
    inject: str = "none"                 # none | add | scaled | adapter: the window's embedding in later passes
    feed: str = "features"               # features (the paper) | embedding: later passes re-read the window, not h
    depth_init: bool = False             # residual output projections scaled by the effective depth (blocks x N)
    checkpoint_windows: bool = False     # recompute each sleep in backward to save memory

    def __post_init__(self):
        if isinstance(self.n_sleep_range, list):
            self.n_sleep_range = tuple(self.n_sleep_range)
        for name in ("vocab_size", "d_model", "n_heads", "mlp_ratio", "max_positions", "window",
                     "n_sleep"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        bad = [kind for kind in self.kinds if kind not in ("attn", "gdn")]
        if bad or not self.kinds:
            raise ValueError(f"pattern {self.pattern!r} has unknown block kinds {bad}; use 'attn' and 'gdn'")
        if self.eviction not in EVICTIONS:
            raise ValueError(f"eviction {self.eviction!r} is not known; allowed: {EVICTIONS}")
        if self.op_mode not in OP_MODES:
            raise ValueError(f"op_mode {self.op_mode!r} is not known; allowed: {OP_MODES}")
        if self.op_mode == "triton" and self.rule != "gated_delta":
            raise ValueError(f"op_mode 'triton' has kernels for rule 'gated_delta' only, got rule {self.rule!r}; "
                             "use op_mode 'chunk' or 'recurrent' for it")
        if self.n_sleep_range is not None:
            lo, hi = self.n_sleep_range
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
                raise ValueError(f"n_sleep_range must be (lo, hi) with 1 <= lo <= hi, got {self.n_sleep_range!r}")
        if self.grad_passes is not None and (not isinstance(self.grad_passes, int) or self.grad_passes < 1):
            raise ValueError(f"grad_passes must be None or a positive integer, got {self.grad_passes!r}")
        if self.pass_norm not in PASS_NORMS:
            raise ValueError(f"pass_norm {self.pass_norm!r} is not known; allowed: {PASS_NORMS}")
        if self.inject not in INJECTIONS:
            raise ValueError(f"inject {self.inject!r} is not known; allowed: {INJECTIONS}")
        if self.feed not in FEEDS:
            raise ValueError(f"feed {self.feed!r} is not known; allowed: {FEEDS}")
        if self.feed == "embedding" and (self.pass_norm, self.inject) != ("none", "none"):
            raise ValueError(f"feed 'embedding' gives later passes no features to normalise or inject into; "
                             f"got pass_norm {self.pass_norm!r}, inject {self.inject!r} (use 'none' for both)")

    @property
    def kinds(self) -> list[str]:
        return [kind.strip() for kind in self.pattern.split(",") if kind.strip()]

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SleepLMConfig":
        d = upgrade_fields(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config has fields this version of sleeplab does not know: {unknown}")
        return cls(**d)


def upgrade_fields(d: dict) -> dict:
    """Config fields as this version names them. Checkpoints written before ``inject`` existed say
    ``reinject_input``, where True meant the plain add."""
    d = dict(d)
    if "reinject_input" in d:
        d["inject"] = "add" if d.pop("reinject_input") else "none"
    return d


class SleepLM(nn.Module):
    def __init__(self, config: SleepLMConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.max_positions, c.d_model)
        self.blocks = nn.ModuleList(
            Block(kind, c.d_model, c.n_heads, c.head_dim, c.mlp_ratio, c.rule, c.op_mode) for kind in c.kinds
        )
        self.norm_f = nn.RMSNorm(c.d_model, eps=1e-6)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        # inject="adapter": later passes read W [h, e] (Huginn's adapter); W starts as [I, I], the
        # plain sum, and learns how much of the window's embedding each feature needs
        self.adapter = nn.Linear(2 * c.d_model, c.d_model, bias=False) if c.inject == "adapter" else None
        self.apply(self._init)
        if self.adapter is not None:
            with torch.no_grad():
                self.adapter.weight.copy_(torch.eye(c.d_model).repeat(1, 2))
        if c.depth_init:
            # GPT-2's residual scaling with the depth the stream really sees: every pass adds the
            # output of every block, so a window's features are the sum of blocks x N residual writes
            scale = (2 * len(self.blocks) * c.n_sleep) ** -0.5
            for block in self.blocks:
                for proj in block.residual_outputs():
                    proj.weight.data.mul_(scale)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def empty_state(self, batch: int) -> list[torch.Tensor | None]:
        """Fast weights S = 0 for every GDN block (None for attention blocks): Alg. 1, line 1."""
        dtype = compute_dtype(self.head.weight)
        return [torch.zeros(b.mixer.state_shape(batch), device=self.device, dtype=dtype) if b.kind == "gdn" else None
                for b in self.blocks]

    def embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """tokens [B, T] at absolute positions start..start+T-1 -> h [B, T, d]."""
        end = start + tokens.shape[1]
        if end > self.config.max_positions:
            raise ValueError(f"position {end - 1} is past max_positions={self.config.max_positions}; "
                             "build the model with a larger max_positions")
        pos = torch.arange(start, end, device=tokens.device)
        return self.tok_emb(tokens) + self.pos_emb(pos)

    def run_blocks(self, h, states, mask, past_kvs=None):
        """One pass of the whole stack. states: S per block (None for attn); past_kvs: cache per block.
        Returns (h, new states, this pass's (K, V) per attention block, cache included)."""
        new_states, kvs = [], []
        for i, block in enumerate(self.blocks):
            past = past_kvs[i] if past_kvs is not None else None
            h, memory = block(h, state=states[i], mask=mask, past_kv=past)
            new_states.append(memory if block.kind == "gdn" else None)
            kvs.append(memory if block.kind == "attn" else None)
        return h, new_states, kvs

    def head_logits(self, h):  # [B, T, d] -> [B, T, vocab]
        return self.head(self.norm_f(h))

    def forward(self, tokens, loss_mask=None, n_sleep=None, generator=None):
        from .sleep import sleep_forward
        return sleep_forward(self, tokens, loss_mask, n_sleep=n_sleep, generator=generator)
