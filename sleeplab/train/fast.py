"""The fast training step: compiled blocks, and the whole step (forward, backward, clipping,
optimiser) replayed as one CUDA graph.

Why: the paper's Rule 110 model is tiny (3 M parameters, windows of 24 tokens), so a training step is
thousands of small kernels, and in eager PyTorch the CPU cannot launch them as fast as the GPU runs
them (we measured ~1-2 % of the card's peak). A CUDA graph records the kernels of one step once
and replays them with a single launch, so the GPU never waits for Python.

Measured on an H200 for the paper's model at batch 512 (``benchmarks/throughput.py``; each change,
its prediction and its outcome are in ``docs/speed_notes.md``): the graph removes the CPU launch
bottleneck, ``torch.compile`` of each block fuses the many small elementwise kernels that remain, and
the :class:`Prefetcher` overlaps data generation with the step. Compiling costs about a minute per
run, once; ``compile_blocks=False`` skips it.

What a graph needs, and how the step provides it:
* static shapes and addresses: every batch is copied into the same input buffers, and gradients are
  allocated once and zeroed inside the graph (never set to None);
* no host synchronisation: the window plan is computed once on the CPU, N is a Python int (one graph
  per N, so variable-N training replays the graph of the N drawn for that batch). Every later batch
  must have that plan's layout; checking it at once would cost a host sync a step, so each load
  compares the batch's window roles with the plan on the device and folds any difference into a
  flag, which :meth:`GraphedStep.check` reads at the next record, where the loop syncs anyway;
* constant hyper-parameters: the learning rate is baked in at capture, so steps inside the warm-up
  (where it changes) run eagerly; AdamW must be built with ``capturable=True``;
* autocast keeps its weight-cast cache: the context opens and closes inside the captured step, so
  each weight is cast to bf16 once per step (not once per pass) and nothing cached outlives it.
The first ``eager_calls`` steps for each N run eagerly on a side stream (CUDA requires warm-up before
capture); they are real training steps, so the sequence of updates is the same as the eager step's.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

from .. import device as dev
from ..sleep import scored_windows, window_plan


class GraphedStep:
    def __init__(self, model, optimizers, loss_fn, grad_clip: float | None, constant_lr_from: int = 0,
                 eager_calls: int = 2, precision: str = "bf16", compile_blocks: bool = True,
                 backward=torch.Tensor.backward):
        """loss_fn(model, batch, n_sleep, plan) -> scalar loss. Steps before ``constant_lr_from`` run eagerly.
        backward(loss): Lightning's ``manual_backward`` under DDP, whose all-reduces the graph records."""
        self.model, self.optimizers, self.loss_fn, self.backward = model, optimizers, loss_fn, backward
        self.grad_clip, self.constant_lr_from, self.eager_calls = grad_clip, constant_lr_from, eager_calls
        self.device = model.device
        if self.device.type != "cuda":
            raise ValueError(f"GraphedStep needs a CUDA model, got device {self.device}; use the eager step")
        self.autocast = precision == "bf16"
        self.static = None        # the input buffers every replay reads
        self.plan = None
        self.roles = None         # [windows] bool on the device: the plan's prediction windows
        self.layout_changed = None  # device flag: some batch since the start broke the plan
        self.graphs = {}          # n_sleep -> (graph, loss buffer)
        self.calls = {}           # n_sleep -> eager warm-up calls so far
        if compile_blocks:
            _no_compile_caches()
            # Every block instance compiles its own variants of Block.forward (window lengths 24 and 4,
            # the whole sequence at N = 1, training and evaluation): past dynamo's default limit of 8
            # variants per function the rest silently ran eagerly (seen on an H200, torch 2.11).
            import torch._dynamo.config as dynamo_config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            for block in model.blocks:  # in place: parameter names and checkpoints are unchanged
                block.compile(dynamic=False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        for p in self.params:     # gradients live at fixed addresses for the graph's whole life
            p.grad = torch.zeros_like(p)

    def release(self) -> None:
        """Drop the recorded graphs (and their memory). Needed before a DDP process exits: a graph
        holding NCCL work that outlives the process group made the process hang at exit."""
        self.graphs.clear()

    def _step_body(self, n_sleep):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=False)
        with dev.autocast(self.device, self.autocast):
            loss = self.loss_fn(self.model, self.static, n_sleep, self.plan)
        self.backward(loss)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        for opt in self.optimizers:
            opt.step()
        return loss.detach()

    def _load(self, batch):
        if self.static is None:
            self.static = batch.to(self.device)
            self.static.tokens = self.static.tokens.clone()  # own buffers, never the caller's
            self.static.targets = self.static.targets.clone()
            self.static.loss_mask = self.static.loss_mask.clone()
            self.plan = window_plan(batch.loss_mask, batch.seq_len, self.model.config.window)
            self.roles = torch.tensor([w.predict for w in self.plan], device=self.device)
            self.layout_changed = torch.zeros((), dtype=torch.bool, device=self.device)
            return
        if batch.tokens.shape != self.static.tokens.shape:
            raise ValueError(f"GraphedStep was built for batches of shape {tuple(self.static.tokens.shape)}, "
                             f"got {tuple(batch.tokens.shape)}")
        self.static.tokens.copy_(batch.tokens, non_blocking=True)
        self.static.targets.copy_(batch.targets, non_blocking=True)
        self.static.loss_mask.copy_(batch.loss_mask, non_blocking=True)
        roles = scored_windows(self.static.loss_mask, self.model.config.window)
        self.layout_changed |= (roles != self.roles).any()

    def check(self) -> None:
        """Refuse, at a point that syncs anyway, if a batch since the start had another window layout
        than the one the graphs were captured for (ValueError)."""
        if self.layout_changed is not None and bool(self.layout_changed):
            plan = [w.start for w in self.plan if w.predict]
            raise ValueError(f"a training batch's scored windows differ from the first batch's (prediction "
                             f"windows starting at {plan}); the fast step needs one layout for every batch")

    def __call__(self, batch, n_sleep: int, step: int) -> torch.Tensor:
        """One step; -> its loss. Once N's graph is captured that is the graph's output buffer, which the
        next replay of the graph overwrites: copy it to keep it."""
        self._load(batch)
        if step < self.constant_lr_from:
            return self._step_body(n_sleep)
        if n_sleep in self.graphs:
            graph, loss = self.graphs[n_sleep]
            graph.replay()
            return loss
        if self.calls.get(n_sleep, 0) < self.eager_calls:
            self.calls[n_sleep] = self.calls.get(n_sleep, 0) + 1
            ctx, stream = dev.side_stream_warmup(self.device)
            with ctx:
                loss = self._step_body(n_sleep)
            dev.wait_stream(self.device, stream)
            return loss
        graph = dev.cuda_graph(self.device)
        with dev.graph_capture(graph):
            loss = self._step_body(n_sleep)
        self.graphs[n_sleep] = (graph, loss)
        graph.replay()  # capture only records: run this step for real
        return loss


_SCRATCH: list[str] = []  # this process's inductor cache directory, made by its first fast step


def _no_compile_caches() -> None:
    """Turn off inductor's on-disk graph caches. With torch 2.11 on an H200, a second run that loaded
    blocks compiled by an earlier run crashed with garbage view shapes ("invalid shape dimension
    -1424775581556458564"), in 5 of 5 runs; fresh compiles never did. Compiling costs ~1 minute a run.
    Each process also compiles in a scratch directory of its own, so runs sharing a host (a sweep, the
    processes of a DDP run) never read or write each other's kernels. It is made once per process:
    a process that builds several fast steps (a benchmark, the GPU suite) reuses the kernels its
    earlier ones compiled (keyed by their source, as in any kernel cache) instead of compiling them
    all again in a new directory each time."""
    import tempfile

    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    inductor_config.fx_graph_cache = False
    functorch_config.enable_autograd_cache = False
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="sleeplab-inductor-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _SCRATCH[0]


class Prefetcher:
    """Makes batch i+1 on a side CUDA stream while the GPU runs step i.

    The task generators draw candidates and keep those on the right side of the train/eval partition,
    which needs one look at the data on the host (``nonzero``). On the main stream that look waits for
    the whole queued training step; on a side stream it waits only for the generator's own kernels,
    so generation overlaps the replayed step instead of stalling between steps.
    """

    def __init__(self, make: Callable[[int], object], device: torch.device):
        self.make, self.device = make, device
        self.stream = dev.new_stream(device)
        self.pending = None  # (index, batch)

    def get(self, index: int):
        if self.pending is None or self.pending[0] != index:
            self.pending = None
            return self.make(index)
        batch, self.pending = self.pending[1], None
        dev.wait_stream(self.device, self.stream)
        dev.hand_over((batch.tokens, batch.loss_mask, batch.targets), self.device)
        return batch

    def prefetch(self, index: int) -> None:
        with dev.use_stream(self.stream):
            self.pending = (index, self.make(index))
