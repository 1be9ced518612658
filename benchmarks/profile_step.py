"""Where does a training step spend GPU time? Profiles steps of the paper's Rule 110 model.

    python benchmarks/profile_step.py --n-sleep 4 [--device cuda] [--rows 40] [--compiled]

Prints the operators with the most device time (self time, so nothing is counted twice). With
``--compiled`` (CUDA) the steps are those of the fast path with its blocks compiled, run without the
CUDA graph: the graph replays exactly these kernels, so this is the table to read before changing
the model code. It ends with the number of kernels a step and their total time, by family.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from sleeplab import device as dev
from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.tasks import rule110
from sleeplab.train.fast import GraphedStep
from sleeplab.train.loss import model_loss
from sleeplab.train.optim import WarmupConstant, build_optimizers
from sleeplab.train.step import EagerStep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--n-sleep", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--compiled", action="store_true", help="the fast step's compiled blocks (CUDA only)")
    args = ap.parse_args(argv)
    device = dev.pick_device(args.device)
    dev.fast_matmul(device)
    task = rule110.Rule110Config(t=16)
    model = SleepLM(preset("hybrid", **PAPER_RULE110, vocab_size=len(rule110.vocab(task)))).to(device)
    if args.compiled:
        # eager_calls never runs out: every step runs the compiled blocks, none is captured
        step = GraphedStep(model, build_optimizers(model, capturable=True), model_loss, grad_clip=1.0,
                           eager_calls=10**9)
    else:
        step = EagerStep(model, build_optimizers(model), WarmupConstant(0))
    gen = torch.Generator(device).manual_seed(0)
    for i in range(3):
        step(rule110.make_batch(task, args.batch_size, gen), args.n_sleep, i)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(3):
            step(rule110.make_batch(task, args.batch_size, gen), args.n_sleep, 3 + i)
        dev.synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    if device.type == "cuda":
        # GPU-side ranges of annotations (e.g. "Optimizer.step#AdamW.step") span kernels and the gaps
        # between them; counting them would count those kernels twice
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"
                   and not getattr(e, "is_user_annotation", False) and "#" not in e.name]
        families = {}
        for e in kernels:
            fam = family(e.name)
            n, us = families.get(fam, (0, 0.0))
            families[fam] = (n + 1, us + e.device_time_total)
        print(f"a step: {len(kernels) / 3:.0f} kernels, {sum(us for _, us in families.values()) / 3e3:.2f} ms of kernel time")
        for fam, (n, us) in sorted(families.items(), key=lambda kv: -kv[1][1]):
            print(f"  {fam:24s} {n / 3:7.0f} kernels  {us / 3e3:7.2f} ms  {us / n:6.1f} us each")


def family(name: str) -> str:
    """Coarse kernel families, by the names CUDA libraries and inductor give their kernels."""
    low = name.lower()
    for fam, marks in (("triangular solve", ("trsm",)), ("attention", ("fmha", "flash", "attention")),
                       ("matmul", ("gemm", "nvjet", "cutlass", "sm90", "xmma", "cublas")),
                       ("fused (inductor)", ("triton",)), ("copy / fill", ("copy", "fill", "memset", "memcpy")),
                       ("reduction", ("reduce",))):
        if any(m in low for m in marks):
            return fam
    return "other"


if __name__ == "__main__":
    main()
