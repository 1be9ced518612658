"""Steady-state training throughput of the paper's Rule 110 model: sleeplab's fast step against a plain
eager step, and optionally a real ``sleeplab train --fast`` run beside them.

    python benchmarks/throughput.py                      # GPU if present: the paper's model, batch 512
    python benchmarks/throughput.py --end-to-end         # also a real training run, its rate from metrics.jsonl
    python benchmarks/throughput.py --device cpu --tiny --window-s 0.5 --windows 2   # a smoke test in seconds

Both implementations train the same model on the same task data (Rule 110, T = 100, L = 24, hard
eviction) in the same process, one after the other:
* ``eager``: Algorithm 1 as written (``sleep_forward``, one window after another, every N), eager
  PyTorch with bf16 autocast on GPU: the plain implementation a reader would write first;
* ``sleeplab``: the fast step (``sleeplab/train/fast.py``): the N = 1 path runs all windows at once
  (``parallel_forward``), the blocks are compiled, and the whole step is replayed as a CUDA graph.
  On CPU the fast step does not exist and ``sleeplab`` means the eager step with the N = 1 shortcut.

Timing: each configuration first warms up (compilation, graph capture, then at least ``--warm-steps``
steps and ``--warm-s`` seconds, so the card's clocks are up), then runs ``--windows`` windows of at
least ``--window-s`` seconds each. A window ends at a host synchronisation after whole chunks of steps;
a chunk is a tenth of a window at the rate measured after warm-up, so the syncs cost a negligible bubble.
A record's tokens_per_s and ms_per_step are the median window's; ``windows`` holds every window and
``timed_s`` their total. Timing 30 steps straight after compilation (the earlier version) measured
about a second of GPU work, short of what a run sees.

``--end-to-end`` adds, per N, a ``train --fast`` record: a ``sleeplab train --fast`` subprocess of the
same model and batch for ``--e2e-steps`` steps, its rate from the wall_s of its metrics.jsonl records:
``tokens_per_s`` between the second and the last evaluation (compilation and capture excluded,
evaluations included), ``tokens_per_s_from_step_0`` between the first and the last (everything the
run did after setup, the measure that gave 1.85 M tok/s at N = 4 on an H200).

``--op-mode chunk triton`` times the ``sleeplab`` step and the end-to-end run once per op_mode
(``SleepLMConfig.op_mode``: the GDN rule as the PyTorch chunk path or the fused Triton kernels); the
eager baseline always runs the chunk path. At N = 1 the fast step hands the GDN blocks the whole
sequence (T = 100 > 64), so "triton" runs the chunk path there: only N >= 2 can differ.

Records (tokens/s, model-FLOP utilisation, card, versions, command) are merged into
``data/results/throughput.json``: a record replaces an earlier one with the same impl, op_mode, N,
device, card, model size and batch size (records from before op_mode existed count as "chunk").
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sleeplab import device as dev
from sleeplab.checkpoint import code_version
from sleeplab.model import OP_MODES, SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.sleep import sleep_forward, window_plan
from sleeplab.tasks import rule110
from sleeplab.train.fast import GraphedStep, Prefetcher
from sleeplab.train.loss import masked_cross_entropy, model_loss
from sleeplab.train.optim import WarmupConstant, build_optimizers
from sleeplab.train.step import EagerStep

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 tensor-core peak, vendor datasheets (SXM)
TINY = dict(d_model=32, n_heads=2, batch_size=8, threads=1)  # --tiny: a model a CPU steps through quickly


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


def measure(step, task_cfg, batch_size, n_sleep, device, args, prefetch=False, seed=0):
    """Warm up, then time ``args.windows`` windows of >= ``args.window_s`` s; -> (batch, windows, loss),
    windows as [(steps, seconds)]. Data is made on the device every step (on a side stream, one step
    ahead, when ``prefetch``), as in training."""
    gen = torch.Generator(device).manual_seed(seed)
    make = lambda i: rule110.make_batch(task_cfg, batch_size, gen)  # noqa: E731
    source = Prefetcher(make, device) if prefetch else None
    index = 0
    loss = None

    def run(steps):
        nonlocal index, loss
        for _ in range(steps):
            loss = step(source.get(index) if source else make(index), n_sleep, index)
            if source:
                source.prefetch(index + 1)
            index += 1
        dev.synchronize(device)

    start = time.perf_counter()
    run(args.warm_steps)  # compilation and capture happen in here
    while time.perf_counter() - start < args.warm_s:
        run(1)
    probe = time.perf_counter()
    run(max(1, args.warm_steps // 4))
    per_step = (time.perf_counter() - probe) / max(1, args.warm_steps // 4)
    chunk = max(1, int(args.window_s / 10 / per_step))
    windows = []
    for _ in range(args.windows):
        begin, steps = time.perf_counter(), 0
        while time.perf_counter() - begin < args.window_s:
            run(chunk)
            steps += chunk
        windows.append((steps, time.perf_counter() - begin))
    if not torch.isfinite(loss):
        raise RuntimeError(f"loss is {loss.item()} after {index} steps at N={n_sleep}")
    return make(index), windows, float(loss)


def bare_step_record(impl, n_sleep, device, task_cfg, args, card, peak, op_mode="chunk"):
    torch.manual_seed(0)
    cfg = preset("hybrid", **{**PAPER_RULE110, "d_model": args.d_model, "n_heads": args.n_heads},
                 vocab_size=len(rule110.vocab(task_cfg)), n_sleep=n_sleep, op_mode=op_mode)
    model = SleepLM(cfg).to(device)
    fast, cuda = impl == "sleeplab", device.type == "cuda"
    opts = build_optimizers(model, capturable=fast and cuda)
    if fast and cuda:
        step = GraphedStep(model, opts, model_loss, grad_clip=1.0, compile_blocks=not args.no_compile)
    elif fast:
        step = EagerStep(model, opts, WarmupConstant(0))
    else:
        step = EagerStep(model, opts, WarmupConstant(0), loss_fn=eager_loss)
    batch, windows, loss = measure(step, task_cfg, args.batch_size, n_sleep, device, args, prefetch=fast and cuda)
    tokens_per_step = args.batch_size * batch.seq_len
    rates = [steps * tokens_per_step / seconds for steps, seconds in windows]
    median = statistics.median(rates)
    plan = window_plan(batch.loss_mask, batch.seq_len, cfg.window)
    flops = flops_per_step(model, args.batch_size, plan, n_sleep)
    return dict(impl=impl, op_mode=op_mode, compiled=fast and cuda and not args.no_compile, n_sleep=n_sleep,
                device=device.type,
                card=card, tokens_per_s=median, mfu=(median / tokens_per_step * flops / peak) if peak else None,
                ms_per_step=1e3 * tokens_per_step / median, batch_size=args.batch_size, seq_len=batch.seq_len,
                d_model=args.d_model, params=model.num_params(), steps_timed=sum(s for s, _ in windows),
                timed_s=sum(t for _, t in windows),
                windows=[dict(steps=s, seconds=t, tokens_per_s=r) for (s, t), r in zip(windows, rates)],
                final_loss=loss)


def end_to_end_record(n_sleep, device, args, card, op_mode="chunk"):
    """A real ``sleeplab train --fast`` run of the benchmark's model and batch; its rate from metrics.jsonl."""
    with tempfile.TemporaryDirectory(prefix="sleeplab-e2e-") as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "sleeplab.train.cli", "train", "--fast", "--task", "rule110",
                   "--t", str(args.t), "--preset", "sleep", "--n-sleep", str(n_sleep),
                   "--d-model", str(args.d_model), "--n-heads", str(args.n_heads),
                   "--batch-size", str(args.batch_size), "--steps", str(args.e2e_steps),
                   "--eval-every", str(args.e2e_eval_every), "--eval-size", str(args.e2e_eval_size),
                   "--warmup-steps", "100", "--device", str(device), "--devices", "1", "--out", str(out),
                   "--model-arg", f"op_mode={op_mode}"]
        if device.type == "cpu":
            command += ["--precision", "fp32"] + (["--threads", str(args.threads)] if args.threads else [])
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        config = json.loads((out / "config.json").read_text())
    if len(records) < 3:
        raise ValueError(f"--e2e-steps {args.e2e_steps} / --e2e-eval-every {args.e2e_eval_every} gave "
                         f"{len(records)} evaluations; the rate needs at least 3")
    rate = lambda a, b: (b["tokens"] - a["tokens"]) / (b["wall_s"] - a["wall_s"])  # noqa: E731
    first, second, last = records[0], records[1], records[-1]
    tokens_per_step = last["tokens"] // last["step"]
    return dict(impl="train --fast", op_mode=op_mode, compiled=device.type == "cuda", n_sleep=n_sleep,
                device=device.type,
                card=card, tokens_per_s=rate(second, last), tokens_per_s_from_step_0=rate(first, last),
                ms_per_step=1e3 * tokens_per_step / rate(second, last), batch_size=args.batch_size,
                seq_len=tokens_per_step // args.batch_size, d_model=args.d_model,
                steps_timed=last["step"] - second["step"], timed_s=last["wall_s"] - second["wall_s"],
                evaluations=[dict(step=r["step"], wall_s=r["wall_s"]) for r in records],
                eval_every=args.e2e_eval_every, eval_size=args.e2e_eval_size,
                train_command=" ".join(["sleeplab"] + command[3:]), train_config=config)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    ap.add_argument("--n-sleep", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--impl", nargs="+", default=["sleeplab", "eager"], choices=["sleeplab", "eager"])
    ap.add_argument("--op-mode", nargs="+", default=["chunk"], choices=OP_MODES,
                    help="GDN rule implementations for the sleeplab step and --end-to-end (eager: always chunk)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--d-model", type=int, default=PAPER_RULE110["d_model"])
    ap.add_argument("--n-heads", type=int, default=PAPER_RULE110["n_heads"])
    ap.add_argument("--threads", type=int, help="CPU threads (default: torch's; tiny models run fastest on 1)")
    ap.add_argument("--tiny", action="store_true", help=f"a tiny model and batch ({TINY}) for smoke tests")
    ap.add_argument("--warm-steps", type=int, default=20, help="steps before timing, capture included")
    ap.add_argument("--warm-s", type=float, default=5.0, help="and at least this long (clocks up)")
    ap.add_argument("--window-s", type=float, default=10.0, help="shortest timed window")
    ap.add_argument("--windows", type=int, default=3, help="timed windows; the record is their median")
    ap.add_argument("--t", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true", help="graphs only: do not torch.compile the blocks")
    ap.add_argument("--end-to-end", action="store_true", help="also time a real `sleeplab train --fast` run per N")
    ap.add_argument("--e2e-steps", type=int, default=3000)
    ap.add_argument("--e2e-eval-every", type=int, default=250)
    ap.add_argument("--e2e-eval-size", type=int, default=2048)
    ap.add_argument("--out", default="data/results/throughput.json")
    args = ap.parse_args(argv)
    if args.tiny:
        for name, value in TINY.items():
            setattr(args, name, value)
    if args.windows < 1 or args.window_s <= 0 or args.warm_steps < 1:
        ap.error("--windows, --window-s and --warm-steps must be positive")
    return args


def run_n_sleep(n_sleep, device, task_cfg, args, card, peak, common):
    """Yields each record of one N as it is measured."""
    for impl in args.impl:
        for op_mode in args.op_mode if impl == "sleeplab" else ["chunk"]:
            rec = {**bare_step_record(impl, n_sleep, device, task_cfg, args, card, peak, op_mode), **common}
            print(f"{impl:8s} {op_mode:7s} N={n_sleep}  {rec['tokens_per_s'] / 1e6:7.3f} M tok/s  "
                  f"{rec['ms_per_step']:8.2f} ms/step  mfu={rec['mfu'] or 0:.3f}  "
                  f"windows {[round(w['tokens_per_s'] / 1e6, 3) for w in rec['windows']]} M", flush=True)
            yield rec
    for op_mode in args.op_mode if args.end_to_end else []:
        rec = {**end_to_end_record(n_sleep, device, args, card, op_mode), **common}
        print(f"{'train --fast':13s} {op_mode:7s} N={n_sleep}  {rec['tokens_per_s'] / 1e6:7.3f} M tok/s  "
              f"{rec['ms_per_step']:8.2f} ms/step  ({rec['tokens_per_s_from_step_0'] / 1e6:.3f} M from step 0)",
              flush=True)
        yield rec


def save(records, out: Path):
    """Merge ``records`` into the JSON list at ``out``, replacing the records they re-measure."""
    key = lambda r: (r["impl"], r.get("op_mode", "chunk"), r["n_sleep"], r["device"], r["card"],  # noqa: E731
                     r["d_model"], r["batch_size"])
    old = json.loads(out.read_text()) if out.exists() else []
    fresh = {key(r) for r in records}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r for r in old if key(r) not in fresh] + records, indent=1) + "\n")


def main(argv=None):
    args = parse_args(argv)
    device = dev.pick_device(args.device)
    dev.fast_matmul(device)
    task_cfg = rule110.Rule110Config(t=args.t)
    card = dev.card_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in card), None)
    common = dict(torch=torch.__version__, python=platform.python_version(), code=code_version(),
                  command="python " + " ".join(sys.argv))
    records = []
    with dev.cpu_threads(args.threads):
        for n_sleep in args.n_sleep:
            for rec in run_n_sleep(n_sleep, device, task_cfg, args, card, peak, common):
                records.append(rec)
                save(records, Path(args.out))  # after each record: a run cut by a time limit keeps what it measured
    for n_sleep in args.n_sleep:
        by = {(r["impl"], r["op_mode"]): r["tokens_per_s"] for r in records if r["n_sleep"] == n_sleep}
        eager = by.get(("eager", "chunk"))
        for op_mode in args.op_mode:
            fast, e2e = by.get(("sleeplab", op_mode)), by.get(("train --fast", op_mode))
            if fast and eager:
                print(f"N={n_sleep}: sleeplab {op_mode} / eager = {fast / eager:.1f}x")
            if fast and e2e:
                print(f"N={n_sleep}: train --fast / sleeplab ({op_mode}) = {e2e / fast:.2f}")
            if fast and op_mode != "chunk" and ("sleeplab", "chunk") in by:
                print(f"N={n_sleep}: sleeplab {op_mode} / chunk = {fast / by[('sleeplab', 'chunk')]:.2f}")


if __name__ == "__main__":
    main()
