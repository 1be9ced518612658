"""The paper's optimiser: Muon on the hidden matrices of the blocks, AdamW on everything else.

Paper §2.5/§4.3: "Muon for all experiments"; the Muon learning rate (2e-3) is tuned on N = 1 and the
AdamW learning rate is fixed (5e-5). Which parameters each optimiser gets is not stated; we follow the
usual Muon practice: Muon orthogonalises updates of 2-D weight matrices, which suits the hidden
projections of attention, GDN and MLP, while embeddings, the output head, norm gains and the GDN gate
parameters (A_log, dt_bias) are not matrices acting on hidden features and go to AdamW.

Weight decay applies to AdamW's matrices (embeddings, head) and Muon's; 1-D parameters (norm gains)
and parameters marked ``_no_weight_decay`` (the GDN gates) never decay. The paper reports no schedule:
we use a linear warm-up from 0 to the base rate over ``warmup_steps`` steps, then a constant rate.
Constant (no decay) keeps a run extendable: a run trained for k steps is exactly the first k steps of a
longer one, and it lets a graph-captured step bake the rate in after warm-up.
"""
from __future__ import annotations

import torch

from .muon import BatchedMuon


def split_parameters(model) -> dict[str, list[torch.nn.Parameter]]:
    """{"muon": hidden 2-D matrices (blocks, pass adapter), "decay": other matrices, "no_decay": the rest}."""
    groups = {"muon": [], "decay": [], "no_decay": []}
    hidden = [model.blocks] + ([model.adapter] if model.adapter is not None else [])
    in_blocks = {id(p) for m in hidden for p in m.parameters()}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if getattr(p, "_no_weight_decay", False) or p.ndim < 2:
            groups["no_decay"].append(p)
        elif id(p) in in_blocks:
            groups["muon"].append(p)
        else:
            groups["decay"].append(p)
    return groups


def build_optimizers(model, muon_lr: float = 2e-3, adam_lr: float = 5e-5, weight_decay: float = 0.0,
                     capturable: bool = False) -> list[torch.optim.Optimizer]:
    """[Muon, AdamW]. Muon is :class:`BatchedMuon` (the update of ``torch.optim.Muon``, batched over
    same-shape matrices; ``tests/test_muon.py`` compares the two), so it works on any torch.

    ``capturable=True`` builds AdamW so that its step can be recorded in a CUDA graph. Every param
    group remembers its ``base_lr``; :class:`WarmupConstant` scales it.
    """
    groups = split_parameters(model)
    adam_groups = [dict(params=groups["decay"], weight_decay=weight_decay, base_lr=adam_lr),
                   dict(params=groups["no_decay"], weight_decay=0.0, base_lr=adam_lr)]
    optimizers = [BatchedMuon([dict(params=groups["muon"], base_lr=muon_lr)], lr=muon_lr,
                              weight_decay=weight_decay)]
    adam_groups = [g for g in adam_groups if g["params"]]
    optimizers.append(torch.optim.AdamW(adam_groups, lr=adam_lr, capturable=capturable))
    return optimizers


class WarmupConstant:
    """lr(step) = base_lr * min(1, (step + 1) / warmup_steps); step counts from 0."""

    def __init__(self, warmup_steps: int = 100):
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps

    def factor(self, step: int) -> float:
        return 1.0 if step >= self.warmup_steps else (step + 1) / self.warmup_steps

    def constant_from(self) -> int:
        """The first step from which the rate no longer changes."""
        return self.warmup_steps

    def apply(self, optimizers, step: int) -> None:
        scale = self.factor(step)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
