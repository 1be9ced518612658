"""The contract every task generator follows.

A task turns a config dataclass and a seeded ``torch.Generator`` into a :class:`Batch`. The token
layout is what the sleep loop needs: windows of ``L`` tokens (``default_window``) that carry no loss
are *consolidation* windows (the model sleeps on them); the window(s) holding loss positions are
*prediction* windows (one ordinary forward pass). Every example in a batch shares one layout, so the
sleep loop can decide each window's role once for the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Batch:
    tokens: torch.Tensor      # [B, T] long
    loss_mask: torch.Tensor   # [B, T] bool: positions whose output is scored
    targets: torch.Tensor     # [B, T] long: what the model should output AT that position
                              # (already shifted by the task; 0 where loss_mask is False)
    meta: dict[str, Any] = field(default_factory=dict)  # the structured instances; labels recomputable

    def __post_init__(self):
        if self.tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tuple(self.tokens.shape)}")
        for name in ("loss_mask", "targets"):
            t = getattr(self, name)
            if t.shape != self.tokens.shape:
                raise ValueError(f"{name} has shape {tuple(t.shape)}, tokens {tuple(self.tokens.shape)}")

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[1]

    def to(self, device) -> "Batch":
        return Batch(self.tokens.to(device), self.loss_mask.to(device), self.targets.to(device), self.meta)


def check_positive(name: str, value: int, minimum: int = 1) -> None:
    """Dials are validated with messages that name the value and what is allowed."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
