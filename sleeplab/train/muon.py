"""Muon with the Newton-Schulz iteration batched over matrices of the same shape.

Muon (the paper's optimiser, §2.5) replaces each hidden matrix's momentum-smoothed gradient G by an
approximately orthogonal matrix with the same singular vectors, found by a few Newton-Schulz steps
    X <- X / ||X||_F;   repeat: A = X X^T;  X <- a X + (b A + c A A) X
then steps along it. ``torch.optim.Muon`` runs this matrix by matrix; the paper's model has two dozen
small matrices in only five shapes, so here every shape is one stacked [G, m, n] problem and the
iteration runs as batched matmuls: the same arithmetic in a fifth of the kernels, which is what a
CUDA-graph-replayed step of a small model is limited by. ``tests/test_muon.py`` checks it against
``torch.optim.Muon``.
"""
from __future__ import annotations

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic iteration of Keller Jordan's Muon


def _bf16(op, *xs, **kw) -> torch.Tensor:
    """``op`` (a matmul) of bf16 tensors. A bf16 matmul accumulates in fp32 and rounds its output once,
    so the fp32 op rounded to bf16 gives the same result up to the order of the fp32 sums (which can
    flip a rare bf16 rounding, as GPU kernels of other tile sizes do). On a CPU without bf16 matrix
    units (AVX2 only) the fp32 op is about 20x faster, and without it CPU training and the tests spend
    most of their time in this iteration."""
    if xs[0].device.type == "cpu":
        return op(*(x.float() for x in xs), **kw).bfloat16()
    return op(*xs, **kw)


def orthogonalize(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """[..., m, n] -> approximately orthogonal factor of each matrix (bf16, as Muon does)."""
    a, b, c = NS_COEFFICIENTS
    X = G.bfloat16()
    wide = G.shape[-2] <= G.shape[-1]
    if not wide:
        X = X.mT  # iterate on the smaller Gram matrix
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    addmm = torch.baddbmm if X.dim() == 3 else torch.addmm
    for _ in range(steps):
        A = _bf16(torch.matmul, X, X.mT)
        B = _bf16(addmm, A, A, A, beta=b, alpha=c)
        X = _bf16(addmm, X, B, X, beta=a)
    return X if wide else X.mT


class BatchedMuon(torch.optim.Optimizer):
    """Same update as ``torch.optim.Muon`` (nesterov momentum, decoupled weight decay, lr scaled by
    sqrt(max(1, rows/cols))), computed for all same-shape matrices of a param group at once."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, eps: float = 1e-7):
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr >= 0, weight_decay >= 0, 0 <= momentum < 1; got lr={lr}, "
                             f"weight_decay={weight_decay}, momentum={momentum}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      nesterov=nesterov, ns_steps=ns_steps, eps=eps))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon updates 2-D matrices only, got a parameter of shape {tuple(p.shape)}")
        self._stacks: dict[tuple, torch.Tensor] = {}

    def _momentum_stack(self, key, params) -> torch.Tensor:
        """One [G, m, n] buffer per shape; each param's state holds a view of it, so state_dict stays
        per parameter. After load_state_dict the views are separate tensors again: re-stack them."""
        stack = self._stacks.get(key)
        states = [self.state[p].get("momentum_buffer") for p in params]
        if stack is not None and all(s is not None and s.data_ptr() == stack[i].data_ptr()
                                     for i, s in enumerate(states)):
            return stack
        stack = torch.stack([torch.zeros_like(p) if s is None else s.to(p) for p, s in zip(params, states)])
        for i, p in enumerate(params):
            self.state[p]["momentum_buffer"] = stack[i]
        self._stacks[key] = stack
        return stack

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            by_shape: dict[tuple, list] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
            for shape, params in by_shape.items():
                buf = self._momentum_stack((gi, shape), params)
                grads = torch.stack([p.grad for p in params])                 # [G, m, n]
                buf.lerp_(grads, 1 - group["momentum"])
                update = grads.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                update = orthogonalize(update, group["ns_steps"], group["eps"])
                lr = group["lr"]
                scaled_lr = lr * math.sqrt(max(1.0, shape[0] / shape[1]))
                if group["weight_decay"]:
                    torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
                torch._foreach_add_(params, list(update.unbind(0)), alpha=-scaled_lr)
        return loss
