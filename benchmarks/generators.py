"""How fast the task generators make batches, so data never starves training.

    python benchmarks/generators.py [--device cpu|cuda] [--out data/results/generators.json]

Makes batches of 512 for every task's default config (plus Rule 110 at t = 32, the paper's hardest
setting) on one device, for at least ``--seconds`` each after a warm-up batch, and writes one record per
case: examples/s, tokens/s (examples/s x sequence length), batches/s, and what produced it. Records
already in the output file for another device, card, thread count or split are kept, so CPU and GPU
numbers can live side by side. A trainer streaming ~3M tokens/s of Rule 110 (T = 100) consumes about
60 batches of 512 per second; the generator should stay well above that.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

from sleeplab.device import card_name, pick_device, synchronize
from sleeplab.tasks import get_task

CASES = [("rule110", {}), ("rule110", {"t": 32}), ("depo", {}), ("gsm", {}), ("mqar", {})]


def measure(name: str, dials: dict, device: torch.device, batch_size: int, seconds: float, split: str) -> dict:
    task = get_task(name)
    cfg = task.Config(**dials)
    g = torch.Generator(device).manual_seed(0)
    seq_len = task.make_batch(cfg, batch_size, g, split).seq_len      # warm-up (caches, kernels)
    synchronize(device)
    batches, start = 0, time.perf_counter()
    while True:
        task.make_batch(cfg, batch_size, g, split)
        batches += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and batches >= 3:
            break
    per_s = batches / elapsed
    return {"task": name, "config": dataclasses.asdict(cfg), "batch_size": batch_size, "split": split,
            "device": str(device), "card": card_name(device), "threads": torch.get_num_threads(),
            "seq_len": seq_len, "batches_per_s": round(per_s, 2),
            "examples_per_s": round(per_s * batch_size, 1), "tokens_per_s": round(per_s * batch_size * seq_len),
            "torch": torch.__version__, "command": " ".join(["python"] + sys.argv)}


def key(r: dict) -> tuple:
    return (r["task"], json.dumps(r["config"], sort_keys=True), r["device"], r["card"], r.get("threads"),
            r.get("split"), r["batch_size"])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: $SLEEPLAB_DEVICE, else cuda if present)")
    ap.add_argument("--out", default="data/results/generators.json")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=2.0, help="time spent per case after warm-up")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--split", default="train", choices=["train", "eval"])
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    records = []
    for name, dials in CASES:
        r = measure(name, dials, device, args.batch_size, args.seconds, args.split)
        records.append(r)
        label = name + "".join(f" {k}={v}" for k, v in dials.items())
        print(f"{label:16s} T={r['seq_len']:5d}  {r['batches_per_s']:8.1f} batches/s  "
              f"{r['examples_per_s']:10.0f} examples/s  {r['tokens_per_s'] / 1e6:8.2f} M tokens/s  ({r['card']})")
    old = []
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
    mine = {key(r) for r in records}
    merged = [r for r in old if key(r) not in mine] + records
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(merged, f, indent=1)
    print(f"wrote {len(records)} records to {args.out} ({len(merged)} in file)")
    return records


if __name__ == "__main__":
    main()
