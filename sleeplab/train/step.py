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
                 precision: str = "bf16", loss_fn=model_loss, backward=torch.Tensor.backward):
        """loss_fn(model, batch, n_sleep, plan) -> scalar loss (benchmarks swap in plain Algorithm 1);
        backward(loss) runs the backward pass (Lightning's ``manual_backward`` under DDP)."""
        self.model, self.optimizers, self.schedule, self.loss_fn = model, optimizers, schedule, loss_fn
        self.grad_clip, self.bf16, self.backward = grad_clip, precision == "bf16", backward
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, batch: Batch, n_sleep: int, step: int, plan=None) -> torch.Tensor:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        with autocast(self.model.device, self.bf16):
            loss = self.loss_fn(self.model, batch, n_sleep, plan)
        self.backward(loss)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.schedule.apply(self.optimizers, step)
        for opt in self.optimizers:
            opt.step()
        return loss.detach()

    def release(self) -> None:
        """Nothing to free (the graph step frees its CUDA graphs)."""

    def check(self) -> None:
        """Nothing to check: every eager batch plans its own windows (``sleep.window_plan``)."""


class ScheduledStep:
    """Sets the scheduled learning rate, then runs a step object that does not schedule by itself."""

    def __init__(self, inner, optimizers, schedule: WarmupConstant):
        self.inner, self.optimizers, self.schedule = inner, optimizers, schedule

    def __call__(self, batch: Batch, n_sleep: int, step: int) -> torch.Tensor:
        self.schedule.apply(self.optimizers, step)
        return self.inner(batch, n_sleep, step)

    def release(self) -> None:
        self.inner.release()

    def check(self) -> None:
        self.inner.check()


def make_step(model, optimizers, schedule: WarmupConstant, grad_clip: float | None = 1.0,
              precision: str = "bf16", fast: bool = False, loss_fn=model_loss, backward=torch.Tensor.backward,
              eager_calls: int = 2):
    """The eager step, or with ``fast`` on a CUDA model the CUDA-graph step (AdamW must then have been
    built with ``capturable=True``, see :func:`build_optimizers`), which first runs ``eager_calls``
    eager steps for each N."""
    if fast and model.device.type == "cuda":
        from .fast import GraphedStep  # CUDA only; imported lazily so CPU installs never load it
        graphed = GraphedStep(model, optimizers, loss_fn, grad_clip, constant_lr_from=schedule.constant_from(),
                              eager_calls=eager_calls, precision=precision, backward=backward)
        return ScheduledStep(graphed, optimizers, schedule)
    if fast:
        warnings.warn(f"fast=True needs a CUDA device, the model is on {model.device}: using the eager step")
    return EagerStep(model, optimizers, schedule, grad_clip, precision, loss_fn, backward)
