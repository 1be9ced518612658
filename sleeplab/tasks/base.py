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


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_range(name: str, lo_hi, minimum: int = 1) -> tuple[int, int]:
    """An inclusive integer range ``(lo, hi)`` with ``minimum <= lo <= hi``."""
    if (not isinstance(lo_hi, (tuple, list)) or len(lo_hi) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in lo_hi)):
        raise ValueError(f"{name} must be a pair of integers (lo, hi), got {lo_hi!r}")
    lo, hi = lo_hi
    if lo < minimum or hi < lo:
        raise ValueError(f"{name} must satisfy {minimum} <= lo <= hi, got {lo_hi!r}")
    return int(lo), int(hi)


def score(pred: torch.Tensor, batch: Batch) -> dict[str, float]:
    """Teacher-forced accuracy of predicted token ids ``pred`` [B, T] against ``batch``.

    ``exact``: fraction of examples whose every scored position is right (the paper's "exact accuracy";
    for one deterministic answer this equals greedy decoding). ``per_label``: fraction of scored positions
    right.
    """
    if pred.shape != batch.targets.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)}, targets {tuple(batch.targets.shape)}")
    hit = (pred.to(batch.targets.device) == batch.targets) & batch.loss_mask
    exact = (hit | ~batch.loss_mask).all(dim=1).float().mean()
    per_label = hit.sum().float() / batch.loss_mask.sum().clamp(min=1)
    return {"exact": exact.item(), "per_label": per_label.item()}


def window_roles(loss_mask: torch.Tensor, window: int) -> list[str]:
    """Role of each window of ``window`` tokens from position 0: "consolidate" (no loss) or "predict".

    Raises if examples of the batch disagree, since the sleep loop decides roles once per batch: the
    rule is ``sleeplab.sleep.window_plan``'s, shown here in words.
    """
    from ..sleep import window_plan  # at call time: the task generators import nothing of the model
    check_positive("window", window)
    return ["predict" if w.predict else "consolidate" for w in window_plan(loss_mask, loss_mask.shape[1], window)]


def render_tokens(batch: Batch, i: int, vocab: list[str], window: int, joiner: str = " ",
                  skip: tuple[str, ...] = ("<pad>",)) -> str:
    """Plain-text view of example ``i``: windows joined by " | ", scored tokens shown as ``tok[->ans]``.

    Tokens listed in ``skip`` are left out (leading padding would otherwise fill the notebook cell).
    """
    tok = batch.tokens[i].tolist()
    mask = batch.loss_mask[i].tolist()
    tgt = batch.targets[i].tolist()
    windows = []
    for start in range(0, len(tok), window):
        words = []
        for p in range(start, min(start + window, len(tok))):
            s = vocab[tok[p]]
            if mask[p]:
                words.append(f"{s}[->{vocab[tgt[p]]}]")
            elif s not in skip:
                words.append(s)
        windows.append(joiner.join(words))
    return " | ".join(windows)
