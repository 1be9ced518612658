"""How much of a run's outcome does its seed fix? Runs of one seed that differ only by rounding
(``TrainConfig.nudge``: the initial weights times 1 + 1e-6 noise, the same batches) beside runs of
other seeds, for N = 1 and N = 4, on the CPU recipe (``TINY_RULE110``: Rule 110 at t = 2 with two
12-cell states, a d = 32 hybrid, 800 steps).

    python -m sleeplab.repro.rerun_spread        # ~21 min on 2 cores -> data/results/rerun_spread.json

Why: on the GPU, two runs of one t = 12 seed (same initialisation, same batches, another card) ended
up to 18 points apart at 250 M tokens with N = 4, and 0.1 points apart with N = 1 (docs/results.md,
the sixth GPU session). Here the same question costs minutes. If a nudge spreads the outcomes about as
far as a new seed does, a seed pins a run's data and start but not where it ends, and a comparison of
N needs more runs per N rather than the same seeds on both sides.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ..seeds import NUDGE
from ..train.config import TINY_RULE110, recipe
from .results import data_dir

RUNS = 5          # seeds 0..4 un-nudged, and seed 0 with nudges 1..4 (its nudge 0 is the seeds' seed 0)
SLEEPS = (1, 4)


def plan(runs: int = RUNS) -> list[tuple[int, int, int]]:
    """(N, seed, nudge) of every run: per N, ``runs`` seeds and ``runs`` - 1 nudges of seed 0."""
    return [(n, s, 0) for n in SLEEPS for s in range(runs)] + [(n, 0, k) for n in SLEEPS for k in range(1, runs)]


def one_run(n: int, seed: int, nudge: int, steps: int) -> dict:
    from ..train import train  # Lightning: imported in the worker that trains
    cfg = recipe(TINY_RULE110, seed=seed, nudge=nudge, steps=steps,
                 model_args={**TINY_RULE110.model_args, "n_sleep": n})
    result = train(cfg)
    return {"n_sleep": n, "seed": seed, "nudge": nudge,
            "points": [{"step": m["step"], "exact": m["exact"]} for m in result.metrics]}


def summary(record: dict) -> list[dict]:
    """Per N and group, the final held-out exact of its runs: "seeds" (seed 0..R-1, no nudge) and
    "nudges of seed 0" (nudge 0..R-1); mean, standard deviation and range, in points."""
    rows = []
    for n in sorted({r["n_sleep"] for r in record["runs"]}):
        mine = [r for r in record["runs"] if r["n_sleep"] == n]
        groups = {"seeds": [r for r in mine if r["nudge"] == 0],
                  "nudges of seed 0": [r for r in mine if r["seed"] == 0]}
        for group, runs in groups.items():
            finals = [100 * r["points"][-1]["exact"] for r in sorted(runs, key=lambda r: (r["seed"], r["nudge"]))]
            rows.append({"n_sleep": n, "group": group, "runs": len(finals), "finals": [round(f, 1) for f in finals],
                         "mean": statistics.fmean(finals),
                         "sd": statistics.stdev(finals) if len(finals) > 1 else None,
                         "range": max(finals) - min(finals)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sleeplab.repro.rerun_spread", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=RUNS, help="seeds per N, and runs of seed 0 (default %(default)s)")
    ap.add_argument("--steps", type=int, default=TINY_RULE110.steps)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="processes, one CPU thread each")
    ap.add_argument("--out", type=Path, default=None, help="default: rerun_spread.json in the shipped results")
    args = ap.parse_args(argv)
    for name, least in (("runs", 2), ("steps", 1), ("workers", 1)):
        if getattr(args, name) < least:
            raise SystemExit(f"--{name} must be >= {least}, got {getattr(args, name)}")
    todo = plan(args.runs)
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(one_run, *zip(*[(n, s, k, args.steps) for n, s, k in todo])))
    record = {"command": "python -m sleeplab.repro.rerun_spread" + (" " + " ".join(argv) if argv else ""),
              "recipe": recipe(TINY_RULE110, steps=args.steps).to_dict(), "nudge_size": NUDGE, "device": "cpu",
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__, "runs": runs}
    out = args.out or data_dir() / "results" / "rerun_spread.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    for r in summary(record):
        sd = "-" if r["sd"] is None else f"{r['sd']:.1f}"
        print(f"N = {r['n_sleep']}, {r['group']:16s}: final exact {r['finals']} %, mean {r['mean']:.1f}, "
              f"sd {sd}, range {r['range']:.1f} points")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
