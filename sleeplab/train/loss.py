"""The training loss: masked cross-entropy on prediction tokens only (paper §2.5, Algorithm 1).

Consolidation windows carry no loss; the model learns to sleep only because gradients reach earlier
windows through the fast weights S.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..sleep import parallel_forward, sleep_forward
from ..tasks.base import Batch


def masked_cross_entropy(logits: torch.Tensor, batch: Batch, denominator: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the scored positions of ``batch``.

    Computed over every position and then masked, rather than by boolean indexing, so the shape never
    depends on the data: no host synchronisation, and a CUDA graph can record it. ``denominator``
    replaces the batch's own count of scored positions (data-parallel shards divide by the global
    batch's count, so their losses add up to the loss of the whole batch).
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 up, float64 kept
    per_token = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="none")
    mask = batch.loss_mask.flatten().to(per_token.dtype)
    if denominator is None:
        denominator = mask.sum()
    return (per_token * mask).sum() / denominator.clamp(min=1)


def model_loss(model, batch: Batch, n_sleep: int, plan=None, denominator: torch.Tensor | None = None) -> torch.Tensor:
    """Loss of ``model`` on ``batch`` with N = ``n_sleep`` sleep passes.

    N = 1 runs :func:`parallel_forward`, equal to Algorithm 1 at every scored position and much faster
    (windows need not run one after another); N > 1 runs :func:`sleep_forward`. ``plan`` (from
    ``window_plan`` on a CPU mask) spares the host sync of working out the window roles.
    ``denominator``: see :func:`masked_cross_entropy`.
    """
    if n_sleep == 1:
        logits = parallel_forward(model, batch.tokens)
    else:
        logits = sleep_forward(model, batch.tokens, batch.loss_mask, n_sleep=n_sleep, plan=plan)
    return masked_cross_entropy(logits, batch, denominator)
