"""Where does a training step spend GPU time? Profiles steps of the paper's Rule 110 model.

    python benchmarks/profile_step.py --n-sleep 4 [--device cuda] [--rows 40] [--compiled]
    python benchmarks/profile_step.py --n-sleep 4 --compiled --op-mode chunk triton --out profile.json

Prints the operators with the most device time (self time, so nothing is counted twice). With
``--compiled`` (CUDA) the steps are those of the fast path with its blocks compiled, run without the
CUDA graph: the graph replays exactly these kernels, so this is the table to read before changing
the model code. It ends with the number of kernels a step and their total time, by family; with
``--out`` those land in a JSON list too, one record per op mode (``--op-mode chunk triton`` profiles
the fast-weight mixer's two implementations in one run, so their kernel counts compare directly).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from sleeplab import device as dev
from sleeplab.checkpoint import code_version
from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.tasks import rule110
from sleeplab.train.fast import GraphedStep
from sleeplab.train.loss import model_loss
from sleeplab.train.optim import WarmupConstant, build_optimizers
from sleeplab.train.step import EagerStep

STEPS = 3  # profiled steps, after as many unprofiled ones (compilation, allocator growth)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--n-sleep", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--compiled", action="store_true", help="the fast step's compiled blocks (CUDA only)")
    ap.add_argument("--op-mode", nargs="+", default=["chunk"], choices=["chunk", "triton"],
                    help="the fast-weight mixer's implementation(s), profiled one after the other")
    ap.add_argument("--out", type=Path, default=None, help="write the per-family summaries here (JSON)")
    args = ap.parse_args(argv)
    device = dev.pick_device(args.device)
    if args.compiled and device.type != "cuda":
        raise SystemExit(f"--compiled profiles the CUDA fast step; the device is {device}")
    dev.fast_matmul(device)
    common = {"card": dev.card_name(device), "torch": torch.__version__, "code": code_version(),
              "command": "python benchmarks/profile_step.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    records = []
    for op_mode in args.op_mode:
        prof = profile_steps(device, args.n_sleep, args.batch_size, args.compiled, op_mode)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\nop_mode={op_mode}\n" + prof.key_averages().table(sort_by=key, row_limit=args.rows,
                                                                max_name_column_width=60))
        if device.type == "cuda":
            summary = summarize(prof.events(), STEPS)
            print(f"a step: {summary['kernels']:.0f} kernels, {summary['kernel_ms']:.2f} ms of kernel time")
            for fam, f in summary["families"].items():
                print(f"  {fam:24s} {f['kernels']:7.0f} kernels  {f['ms']:7.2f} ms  {f['us_each']:6.1f} us each")
            records.append({"op_mode": op_mode, "n_sleep": args.n_sleep, "batch_size": args.batch_size,
                            "compiled": args.compiled, **common, **summary})
    if args.out:
        args.out.write_text(json.dumps(records, indent=1) + "\n")


def profile_steps(device, n_sleep: int, batch_size: int, compiled: bool, op_mode: str):
    task = rule110.Rule110Config(t=16)
    model = SleepLM(preset("hybrid", **PAPER_RULE110, vocab_size=len(rule110.vocab(task)), op_mode=op_mode)).to(device)
    if compiled:
        # eager_calls never runs out: every step runs the compiled blocks, none is captured
        step = GraphedStep(model, build_optimizers(model, capturable=True), model_loss, grad_clip=1.0,
                           eager_calls=10**9)
    else:
        step = EagerStep(model, build_optimizers(model), WarmupConstant(0))
    gen = torch.Generator(device).manual_seed(0)
    for i in range(STEPS):
        step(rule110.make_batch(task, batch_size, gen), n_sleep, i)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(STEPS):
            step(rule110.make_batch(task, batch_size, gen), n_sleep, STEPS + i)
        dev.synchronize(device)
    return prof


def summarize(events, steps: int) -> dict:
    """Kernels a step and their time, in all and by :func:`family`, from a profile's events.
    GPU-side ranges of annotations (e.g. "Optimizer.step#AdamW.step") span kernels and the gaps between
    them; counting them would count those kernels twice, so they are left out."""
    kernels = [e for e in events if e.device_type.name == "CUDA"
               and not getattr(e, "is_user_annotation", False) and "#" not in e.name]
    families = {}
    for e in kernels:
        n, us = families.get(family(e.name), (0, 0.0))
        families[family(e.name)] = (n + 1, us + e.device_time_total)
    ranked = sorted(families.items(), key=lambda kv: -kv[1][1])
    return {"kernels": len(kernels) / steps, "kernel_ms": sum(us for _, us in families.values()) / steps / 1e3,
            "families": {fam: {"kernels": n / steps, "ms": us / steps / 1e3, "us_each": us / n}
                         for fam, (n, us) in ranked}}


def family(name: str) -> str:
    """Coarse kernel families, by the names CUDA libraries, inductor and sleeplab give their kernels."""
    low = name.lower()
    for fam, marks in (("gdn (sleeplab triton)", ("_gdn_fwd", "_gdn_bwd")), ("triangular solve", ("trsm",)),
                       ("attention", ("fmha", "flash", "attention")),
                       ("matmul", ("gemm", "nvjet", "cutlass", "sm90", "xmma", "cublas")),
                       ("fused (inductor)", ("triton",)), ("copy / fill", ("copy", "fill", "memset", "memcpy")),
                       ("reduction", ("reduce",))):
        if any(m in low for m in marks):
            return fam
    return "other"


if __name__ == "__main__":
    main()
