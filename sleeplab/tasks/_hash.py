"""The public train/eval partition shared by every task.

Each task reduces an instance (a CA state, a graph, a problem core, a set of key-value pairs) to a
non-negative integer *key* with :func:`mix32`. An instance belongs to the evaluation split iff
``key % EVAL_MODULUS == 0``; the training generator rejects those and the evaluation generator
keeps only those. The rule is public, so anyone can check that no evaluation instance was trained
on, yet it reveals nothing about which seeds a secret test set uses.

``mix32`` is written with plain ``& ^ >> *`` so one function serves Python ints (per-example
generators, tests) and int64 tensors on any device (vectorised generators). Every multiplier is below
2**31 and every operand below 2**32, so no int64 product ever overflows.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

EVAL_MODULUS = 10   # one instance in ten is reserved for evaluation
MASK32 = 0xFFFFFFFF
SPLITS = ("train", "eval")


def mix32(x):
    """An avalanche mix of a 32-bit value (works on ``int`` and on int64 tensors alike)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & MASK32
    return x ^ (x >> 16)


def hash_int(x, salt: int = 0):
    """Hash a non-negative integer of up to 62 bits (or a tensor of them) to 32 bits."""
    return mix32(mix32((x & MASK32) ^ salt) ^ (x >> 32))


def combine(h, v):
    """Order-dependent combination of a running 32-bit hash with one more value."""
    return mix32((h * 31 + 0x9E3779B) ^ (v & MASK32))


def check_split(split: str) -> bool:
    """Returns True for "eval", False for "train"; anything else is a ValueError."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split == "eval"


def in_eval(key: torch.Tensor | int):
    return key % EVAL_MODULUS == 0


def sample_split(draw: Callable[[int], Sequence[torch.Tensor]],
                 key: Callable[..., torch.Tensor], n: int, split: str) -> list[torch.Tensor]:
    """Draw ``n`` instances that all fall on ``split``'s side of the partition.

    ``draw(m)`` returns tensors whose first dimension indexes m candidate instances; ``key(*tensors)``
    gives each candidate's partition key. Candidates on the wrong side are dropped and more are drawn
    until ``n`` are kept (train keeps ~90%, eval ~10%, so we over-draw accordingly). Everything comes
    from the caller's generator inside ``draw``, so the result is a pure function of the seed.
    """
    want_eval = check_split(split)
    parts: list[list[torch.Tensor]] = []
    have = 0
    while have < n:
        need = n - have
        m = need * 12 + 16 if want_eval else need + need // 4 + 8
        cand = draw(m)
        ok = in_eval(key(*cand)) == want_eval
        idx = ok.nonzero().squeeze(1)[:need]
        parts.append([c[idx] for c in cand])
        have += idx.numel()
    return [torch.cat(cols) for cols in zip(*parts)]
