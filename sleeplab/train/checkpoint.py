"""A run's own files: its directory layout, and the checkpoint with optimiser states that resumes it.

The file format (read, write, export, ``load_checkpoint``) is ``sleeplab.checkpoint``, in the core, so a
notebook loads a model without training code; this module adds what only training needs. It imports no
Lightning, so readers of run directories (``sleeplab.repro``) stay light.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, replace
from pathlib import Path

from ..checkpoint import Checkpoint, code_version, load_checkpoint, write
from ..model import SleepLMConfig
from .config import TrainConfig

# the files of a run directory (see module.py)
CHECKPOINT, METRICS, DONE, CONFIG = "checkpoint.sleeplab", "metrics.jsonl", "done.json", "config.json"


def load_run(path) -> Checkpoint:
    """``load_checkpoint`` with its train config as a :class:`TrainConfig`, for resuming the run."""
    ckpt = load_checkpoint(path)
    try:  # a train config from another version of the code fails here, naming the field
        train_config = TrainConfig.from_dict(ckpt.train_config)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} does not match this version of sleeplab: {err}") from None
    return replace(ckpt, train_config=train_config)


def manifest_for(train_config: TrainConfig, model_config: SleepLMConfig, task_config, **extra) -> dict:
    return {"train_config": train_config.to_dict(), "model_config": model_config.to_dict(),
            "task": train_config.task, "task_config": asdict(task_config), "code": code_version(), **extra}


def save_checkpoint(path, train_config: TrainConfig, model, optimizers, task_config, step: int,
                    **extra) -> Path:
    """Everything needed to continue: configs, weights, optimiser states and the step."""
    manifest = manifest_for(train_config, model.config, task_config, step=step, **extra)
    tensors = {"model": model.state_dict(), "optimizers": [opt.state_dict() for opt in optimizers]}
    return write(path, "checkpoint", manifest, tensors)


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl. A torn last line (a run killed mid-write) is dropped with a
    warning, since resuming re-makes it; a damaged line before it is refused (ValueError)."""
    lines = path.read_text().splitlines() if path.exists() else []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number < len(lines):
                raise ValueError(f"{path} line {number} is not valid JSON ({err}); only a torn last line "
                                 "can be repaired") from None
            warnings.warn(f"{path}: dropped its torn last line {number} ({line[:40]!r}...), left by a run "
                          "stopped mid-write; that record is lost, training resumes from the checkpoint")
    return records
