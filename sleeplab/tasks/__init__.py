"""Task generators. Each module exposes the same small surface:

``NAME``, ``Config`` (a dataclass of dials, validated on construction), ``make_batch(config, batch_size,
generator, split)``, ``vocab(config)``, ``default_window(config)``, ``render(batch, i)``,
``baselines(config)``, ``exact_match(pred, batch)`` and ``partition_key(batch)`` (the public hash that
keeps train and eval instances disjoint: an instance is eval-only iff its key % 10 == 0).
"""
from __future__ import annotations

from . import depo, gsm, mqar, rule110

TASKS = {"rule110": rule110, "depo": depo, "gsm": gsm, "mqar": mqar}


def get_task(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {sorted(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "get_task", "rule110", "depo", "gsm", "mqar"]
