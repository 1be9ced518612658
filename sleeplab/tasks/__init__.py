"""Task generators. Each module exposes the same small surface:

``NAME``, ``Config`` (a dataclass of dials, validated on construction), ``make_batch(config, batch_size,
generator, split)``, ``vocab(config)``, ``default_window(config)``, ``render(batch, i)``,
``baselines(config)``, ``exact_match(pred, batch)`` and ``partition_key(batch)`` (the public hash that
keeps train and eval instances disjoint: an instance is eval-only iff its key % 10 == 0).
"""
from __future__ import annotations

from dataclasses import fields

import torch

from ..seeds import derive_seed
from . import depo, gsm, mqar, rule110
from .base import Batch

TASKS = {"rule110": rule110, "depo": depo, "gsm": gsm, "mqar": mqar}
EVAL_SEED = 20260526     # one held-out set for every run, whatever its training seed


def get_task(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {sorted(TASKS)}")
    return TASKS[name]


def make_task_config(task: str, args: dict):
    """The task's Config from a dict of overrides, with a clear error for a dial the task lacks."""
    config_cls = get_task(task).Config
    unknown = sorted(set(args) - {f.name for f in fields(config_cls)})
    if unknown:
        raise ValueError(f"task {task!r} has no dials {unknown}; "
                         f"allowed: {sorted(f.name for f in fields(config_cls))}")
    return config_cls(**args)


def held_out(task: str, task_config, size: int, split: str = "eval", seed: int = EVAL_SEED) -> Batch:
    """The fixed held-out set: ``size`` examples of ``split`` from EVAL_SEED, made on the CPU (the first
    examples are the same for every size). Another ``seed`` draws a fresh set from the same partition."""
    generator = torch.Generator().manual_seed(derive_seed(seed, task, split))
    return get_task(task).make_batch(task_config, size, generator, split=split)


__all__ = ["TASKS", "EVAL_SEED", "get_task", "make_task_config", "held_out", "rule110", "depo", "gsm", "mqar"]
