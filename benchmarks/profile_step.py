"""Where does a training step spend GPU time? Profiles eager steps of the paper's Rule 110 model.

    python benchmarks/profile_step.py --n-sleep 4 [--device cuda] [--rows 40]

Prints the operators with the most device time (self time, so nothing is counted twice). The graphed
step replays exactly these kernels, so this is the table to read before changing the model code.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from sleeplab import device as dev
from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.tasks import rule110
from sleeplab.train.optim import WarmupConstant, build_optimizers
from sleeplab.train.step import EagerStep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--n-sleep", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--rows", type=int, default=40)
    args = ap.parse_args(argv)
    device = dev.pick_device(args.device)
    dev.fast_matmul(device)
    task = rule110.Rule110Config(t=16)
    model = SleepLM(preset("hybrid", **PAPER_RULE110, vocab_size=len(rule110.vocab(task)))).to(device)
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


if __name__ == "__main__":
    main()
