"""Data-parallel training on Lightning's DDP: one run over several GPUs (or CPU processes).

    sleeplab train ... --devices 2          # two GPUs, global batch = --batch-size, same data stream

Lightning starts one process per device and wraps the module in torch's DistributedDataParallel,
which averages gradients over processes during backward. What sleeplab adds is small:

* **The data stream does not change.** Every process makes the whole global batch i from (seed, i),
  exactly the batch a one-device run makes, and trains on its own contiguous slice. So a run may be
  resumed on a different number of devices, and 1-device and N-device runs see the same examples.
* **The loss adds up.** Each slice's loss is divided by (scored positions in the *global* batch) / N,
  so DDP's average of the N gradients is the gradient of the global batch's mean loss, also when
  examples score different numbers of positions (Depo answers have 2 or 3 letters).
* **The fast step still replays one CUDA graph.** NCCL (>= 2.9.6) can record DDP's all-reduces
  inside a graph, as the PyTorch CUDA-graph notes describe, given three things: async error handling
  off (set below), DDP built on a side stream (Lightning's DDPStrategy does this), and at least 11
  eager DDP steps before capture (``EAGER_CALLS``).
"""
from __future__ import annotations

import os

import torch

from ..device import device_count
from ..tasks.base import Batch

EAGER_CALLS = 11     # DDP gathers runtime statistics in its first 10 iterations: never inside a capture


class ShardLoss:
    """``loss_fn`` of one process: the loss of its slice of the global batch, scaled so that the
    average over processes (what DDP does to gradients) is the global batch's mean loss."""

    def __init__(self, loss_fn, rank: int, world: int):
        self.loss_fn, self.rank, self.world = loss_fn, rank, world

    def __call__(self, model, batch: Batch, n_sleep: int, plan=None):
        local = shard(batch, self.rank, self.world)
        denominator = batch.loss_mask.sum() / self.world
        return self.loss_fn(model, local, n_sleep, plan, denominator=denominator)


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rows [rank * B / world, (rank + 1) * B / world) of ``batch`` (views: a CUDA graph can record them)."""
    if batch.batch_size % world:
        raise ValueError(f"batch of {batch.batch_size} examples does not split over {world} devices")
    size = batch.batch_size // world
    rows = slice(rank * size, (rank + 1) * size)
    return Batch(batch.tokens[rows], batch.loss_mask[rows], batch.targets[rows])


def resolve_devices(devices: int | str, device: torch.device, batch_size: int) -> int:
    """How many processes a run uses. "auto": every visible GPU on CUDA, one process on a CPU."""
    if devices == "auto":
        count = device_count() if device.type == "cuda" and device.index is None else 1
    else:
        count = devices
    if count > 1 and device.index is not None:
        raise ValueError(f"device {str(device)!r} names one GPU, but devices={count}: use device='cuda' "
                         "and CUDA_VISIBLE_DEVICES to choose the GPUs")
    if device.type == "cuda" and count > max(device_count(), 1):
        raise ValueError(f"devices={count} asked for, but {device_count()} GPUs are visible")
    if batch_size % count:
        raise ValueError(f"batch_size {batch_size} does not split evenly over devices={count}; "
                         "use a batch size divisible by the device count")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu" and count > cores:
        raise ValueError(f"devices={count} CPU processes asked for, but this machine gives {cores} cores; "
                         f"allowed: 1 to {cores}")
    return count


def is_first_process() -> bool:
    """False in the processes Lightning's DDP launches besides the first (they re-run the command)."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def trainer_args(device: torch.device, devices: int, fast: bool) -> dict:
    """Lightning Trainer arguments for ``devices`` processes on ``device``'s kind of hardware."""
    if devices == 1:
        if device.type == "cuda":
            return dict(accelerator="gpu", devices=[device.index or 0])
        return dict(accelerator="cpu", devices=1)
    from lightning.pytorch.strategies import DDPStrategy
    if fast and device.type == "cuda":
        # NCCL's watchdog must not poll work recorded in a graph (PyTorch CUDA-graph notes, DDP section);
        # set before Lightning starts the process group, and inherited by the processes it launches
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")
    # gradients keep their own storage: the graph holds their addresses
    strategy = DDPStrategy(find_unused_parameters=False, gradient_as_bucket_view=False)
    return dict(accelerator="gpu" if device.type == "cuda" else "cpu", devices=devices, strategy=strategy)
