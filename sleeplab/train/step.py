"""One optimisation step as an object, so the training loop does not care how the step runs.

Every step object offers the same call::

    loss = step(batch, n_sleep, step_index)    # -> detached scalar loss, parameters updated

:class:`EagerStep` is the plain PyTorch reference (CPU, and CUDA without ``fast``). On CUDA with
``fast=True``, :func:`make_step` returns the graph-captured step of ``sleeplab/train/fast.py``, which
must produce the same sequence of updates. The learning-rate schedule is applied before every step;
it only changes during warm-up, which the graph step runs eagerly.
"""
from __future__ import annotations

import warnings

import torch

from ..device import autocast
from ..tasks.base import Batch
from .loss import model_loss
from .optim import WarmupConstant


class EagerStep:
    def __init__(self, model, optimizers, schedule: WarmupConstant, grad_clip: float | None = 1.0,
                 precision: str = "bf16", loss_fn=model_loss):
        """loss_fn(model, batch, n_sleep, plan) -> scalar loss (benchmarks swap in plain Algorithm 1)."""
        self.model, self.optimizers, self.schedule, self.loss_fn = model, optimizers, schedule, loss_fn
        self.grad_clip, self.bf16 = grad_clip, precision == "bf16"
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, batch: Batch, n_sleep: int, step: int, plan=None) -> torch.Tensor:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        with autocast(self.model.device, self.bf16):
            loss = self.loss_fn(self.model, batch, n_sleep, plan)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.schedule.apply(self.optimizers, step)
        for opt in self.optimizers:
            opt.step()
        return loss.detach()


class ScheduledStep:
    """Sets the scheduled learning rate, then runs a step object that does not schedule by itself."""

    def __init__(self, inner, optimizers, schedule: WarmupConstant):
        self.inner, self.optimizers, self.schedule = inner, optimizers, schedule

    def __call__(self, batch: Batch, n_sleep: int, step: int) -> torch.Tensor:
        self.schedule.apply(self.optimizers, step)
        return self.inner(batch, n_sleep, step)


def make_step(model, optimizers, schedule: WarmupConstant, grad_clip: float | None = 1.0,
              precision: str = "bf16", fast: bool = False):
    """The eager step, or with ``fast`` on a CUDA model the CUDA-graph step (AdamW must then have been
    built with ``capturable=True``, see :func:`build_optimizers`)."""
    if fast and model.device.type == "cuda":
        from .fast import GraphedStep  # CUDA only; imported lazily so CPU installs never load it
        graphed = GraphedStep(model, optimizers, model_loss, grad_clip,
                              constant_lr_from=schedule.constant_from(), precision=precision)
        return ScheduledStep(graphed, optimizers, schedule)
    if fast:
        warnings.warn(f"fast=True needs a CUDA device, the model is on {model.device}: using the eager step")
    return EagerStep(model, optimizers, schedule, grad_clip, precision)
