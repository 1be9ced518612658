"""Training throughput of the paper's Rule 110 model: sleeplab's fast step against a plain eager step.

    python benchmarks/throughput.py                      # GPU if present: the paper's model, batch 512
    python benchmarks/throughput.py --device cpu --d-model 64 --batch-size 64   # notebook-sized on CPU

Both implementations train the same model on the same task data (Rule 110, T = 100, L = 24, hard
eviction) in the same process, one after the other:
* ``eager``: Algorithm 1 as written (``sleep_forward``, one window after another, every N), eager
  PyTorch with bf16 autocast on GPU: the plain implementation a reader would write first;
* ``sleeplab``: the fast step (``sleeplab/train/fast.py``): the N = 1 path runs all windows at once
  (``parallel_forward``), the blocks are compiled, and the whole step is replayed as a CUDA graph.
  On CPU the fast step does not exist and ``sleeplab`` means the eager step with the N = 1 shortcut.
Records (tokens/s, model-FLOP utilisation, card, versions, command) are merged into
``data/results/throughput.json``: a record replaces an earlier one with the same impl, N, device,
card and model size.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from sleeplab import device as dev
from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.sleep import sleep_forward, window_plan
from sleeplab.tasks import rule110
from sleeplab.train.fast import GraphedStep, Prefetcher
from sleeplab.train.loss import masked_cross_entropy, model_loss
from sleeplab.train.optim import WarmupConstant, build_optimizers
from sleeplab.train.step import EagerStep

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 tensor-core peak, vendor datasheets (SXM)


def eager_loss(model, batch, n_sleep, plan=None):
    """The reference reader's loss: Algorithm 1 for every N, no parallel shortcut."""
    logits = sleep_forward(model, batch.tokens, batch.loss_mask, n_sleep=n_sleep, plan=plan)
    return masked_cross_entropy(logits, batch)


def flops_per_step(model, batch_size: int, plan, n_sleep: int) -> float:
    """Matmul FLOPs of forward + backward (3x forward): weights, plus attention scores per window."""
    c = model.config
    hidden = sum(p.numel() for b in model.blocks for p in b.parameters() if p.ndim == 2)
    head = model.head.weight.numel()
    n_attn = c.kinds.count("attn")
    total = 0.0
    for w in plan:
        n = w.end - w.start
        passes = 1 if w.predict else n_sleep
        per_pass = 2 * n * hidden + 4 * n * n * c.d_model * n_attn  # projections/MLP + QK^T and AV
        total += passes * per_pass + (2 * n * head if w.predict else 0)
    return 3 * batch_size * total


def measure(step, model, task_cfg, batch_size, n_sleep, steps, warmup, device, prefetch=False, seed=0):
    """Time ``steps`` training steps after ``warmup``; data made on the device every step (on a side
    stream, one step ahead, when ``prefetch``), as in training."""
    gen = torch.Generator(device).manual_seed(seed)
    make = lambda i: rule110.make_batch(task_cfg, batch_size, gen)  # noqa: E731
    source = Prefetcher(make, device) if prefetch else None
    batch = make(-1)
    for i in range(warmup + steps):
        if i == warmup:
            dev.synchronize(device)
            start = time.perf_counter()
        loss = step(source.get(i) if source else make(i), n_sleep, i)
        if source:
            source.prefetch(i + 1)
    dev.synchronize(device)
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"loss is {loss.item()} after {warmup + steps} steps at N={n_sleep}")
    return batch, seconds, float(loss)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    ap.add_argument("--n-sleep", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--impl", nargs="+", default=["sleeplab", "eager"], choices=["sleeplab", "eager"])
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--d-model", type=int, default=PAPER_RULE110["d_model"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--eager-steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--t", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true", help="graphs only: do not torch.compile the blocks")
    ap.add_argument("--out", default="data/results/throughput.json")
    args = ap.parse_args(argv)

    device = dev.pick_device(args.device)
    dev.fast_matmul(device)
    task_cfg = rule110.Rule110Config(t=args.t)
    card = dev.card_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in card), None)
    records = []
    for n_sleep in args.n_sleep:
        for impl in args.impl:
            torch.manual_seed(0)
            cfg = preset("hybrid", **{**PAPER_RULE110, "d_model": args.d_model},
                         vocab_size=len(rule110.vocab(task_cfg)), n_sleep=n_sleep)
            model = SleepLM(cfg).to(device)
            fast = impl == "sleeplab"
            opts = build_optimizers(model, capturable=fast and device.type == "cuda")
            schedule = WarmupConstant(0)
            if fast and device.type == "cuda":
                step = GraphedStep(model, opts, model_loss, grad_clip=1.0, compile_blocks=not args.no_compile)
            elif fast:
                step = EagerStep(model, opts, schedule)
            else:
                step = EagerStep(model, opts, schedule, loss_fn=eager_loss)
            steps = args.steps if fast else args.eager_steps
            batch, seconds, loss = measure(step, model, task_cfg, args.batch_size, n_sleep, steps,
                                           args.warmup, device, prefetch=fast and device.type == "cuda")
            tokens = args.batch_size * batch.seq_len * steps
            plan = window_plan(batch.loss_mask, batch.seq_len, cfg.window)
            flops = flops_per_step(model, args.batch_size, plan, n_sleep) * steps
            rec = dict(impl=impl, compiled=fast and device.type == "cuda" and not args.no_compile, n_sleep=n_sleep, device=device.type, card=card,
                       tokens_per_s=tokens / seconds, mfu=(flops / seconds / peak) if peak else None,
                       ms_per_step=1e3 * seconds / steps, batch_size=args.batch_size, seq_len=batch.seq_len,
                       d_model=args.d_model, params=model.num_params(), steps_timed=steps, final_loss=loss,
                       torch=torch.__version__, python=platform.python_version(),
                       command="python " + " ".join(sys.argv))
            records.append(rec)
            print(f"{impl:9s} N={n_sleep}  {rec['tokens_per_s'] / 1e6:7.3f} M tok/s  "
                  f"{rec['ms_per_step']:8.2f} ms/step  mfu={rec['mfu'] or 0:.3f}", flush=True)
            del model, opts, step
    for n_sleep in args.n_sleep:
        by = {r["impl"]: r for r in records if r["n_sleep"] == n_sleep}
        if len(by) == 2:
            print(f"N={n_sleep}: sleeplab / eager = {by['sleeplab']['tokens_per_s'] / by['eager']['tokens_per_s']:.1f}x")
    out = Path(args.out)
    key = lambda r: (r["impl"], r["n_sleep"], r["device"], r["card"], r["d_model"], r["batch_size"])
    old = json.loads(out.read_text()) if out.exists() else []
    fresh = {key(r) for r in records}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r for r in old if key(r) not in fresh] + records, indent=1) + "\n")


if __name__ == "__main__":
    main()
