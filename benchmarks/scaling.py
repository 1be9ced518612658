"""Scaling out: tokens/s of one training job on 1, 2 and 4 GPUs (Lightning DDP), and the wall time of a
sweep spread over a host's GPUs. Writes records to data/results/scaling.json.

    python benchmarks/scaling.py job --devices 1 2 4 --per-device-batch 512     # weak scaling
    python benchmarks/scaling.py job --devices 2 4 --global-batch 512           # strong scaling
    python benchmarks/scaling.py sweep --runs 4 --n-sleep 1                     # one run a GPU
    python benchmarks/scaling.py curve --devices 1 2 --stop-at 300              # one GPU vs DDP
    python benchmarks/scaling.py plot                                           # docs/figures/

A job is the real command, ``python -m sleeplab.train.cli train --devices D --fast ...``, on the paper's
Rule 110 model (4 blocks, d = 256, L = 24, T = 100) at N = ``--n-sleep``. Its speed is read from the
run's own records: tokens between the first and the last record over the wall time between them, so
compiling, the eager warm-up steps and the CUDA-graph capture are left out, while the evaluations
in between (``--eval-size`` examples, small) stay in. Jobs run one after another unless several
copies of this script are started on disjoint GPUs (``CUDA_VISIBLE_DEVICES``); ``--note`` records that.

``sweep`` times ``sleeplab sweep`` over the visible GPUs with short eager runs (no compile), so the
wall time shows how runs spread, beside the sum of the runs' own wall times (the serial cost).

``curve`` trains the same run (seed, global batch 512, Rule 110 t = 8, N = 2) on each of ``--devices``
GPU counts in turn; with ``--stop-at S`` a run is stopped by SIGTERM once it has recorded step S, then
resumed. The accuracy curves are stored; ``plot`` draws them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sleeplab import device as dev  # noqa: E402
from sleeplab.train.sweep import visible_gpus  # noqa: E402

PAPER = ["--task", "rule110", "--t", "8", "--d-model", "256", "--n-heads", "4", "--fast",
         "--muon-lr", "2e-3", "--adam-lr", "1e-3"]


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}; see {log}")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def job(devices: int, batch: int, args, work: Path) -> dict:
    out = work / f"job-d{devices}-b{batch}-n{args.n_sleep}"
    subprocess.call(["rm", "-rf", str(out)])
    cmd = [sys.executable, "-m", "sleeplab.train.cli", "train", *PAPER, "--n-sleep", str(args.n_sleep),
           "--devices", str(devices), "--batch-size", str(batch), "--steps", str(args.steps), "--warmup-steps", "0",
           "--eval-every", str(args.every), "--eval-size", str(args.eval_size), "--out", str(out)]
    _run(cmd, work / f"{out.name}.log")
    recs = [r for r in _records(out) if r["step"] >= args.skip]
    first, last = recs[0], recs[-1]
    return dict(kind="job", devices=devices, n_sleep=args.n_sleep, global_batch=batch,
                per_device_batch=batch // devices, tokens_per_s=(last["tokens"] - first["tokens"]) /
                (last["wall_s"] - first["wall_s"]), steps_timed=last["step"] - first["step"],
                final_loss=last["loss"], command=" ".join(cmd[1:]))


def curve(devices: int, args, work: Path) -> dict:
    """One run of the comparison on the first ``devices`` visible GPUs (1: the reference run); with
    ``--stop-at`` it is stopped by SIGTERM once it has recorded that step, then resumed."""
    gpus = visible_gpus()
    if len(gpus) < devices:
        raise SystemExit(f"curve --devices {devices} needs {devices} GPUs, {len(gpus)} visible")
    batch = args.global_batch or 512
    out = work / f"curve-d{devices}"
    subprocess.call(["rm", "-rf", str(out)])
    cmd = [sys.executable, "-m", "sleeplab.train.cli", "train", *PAPER, "--n-sleep", "2", "--batch-size", str(batch),
           "--steps", str(args.steps), "--warmup-steps", "100", "--eval-every", str(args.every),
           "--eval-size", str(args.eval_size), "--devices", str(devices), "--out", str(out), "--resume"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus[:devices])}
    log = open(work / f"curve-d{devices}.log", "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    stopped = None
    if args.stop_at:
        while proc.poll() is None and not any(r["step"] >= args.stop_at for r in _safe_records(out)):
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to the first process, as Ctrl-C or `kill PID` would
        proc.wait()
        stopped = _checkpoint_step(out)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if proc.wait():
        raise RuntimeError(f"curve run on {devices} GPUs failed; see {work}/curve-d{devices}.log")
    return dict(kind="curve", devices=devices, n_sleep=2, global_batch=batch, stopped_at_step=stopped,
                points=[{k: r[k] for k in ("step", "tokens", "loss", "exact", "per_label")} for r in _records(out)],
                command=" ".join(cmd[1:]))


def _safe_records(out: Path) -> list[dict]:
    try:
        return _records(out)
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or a line half written
        return []


def _checkpoint_step(out: Path) -> int:
    from sleeplab.checkpoint import load_checkpoint
    return load_checkpoint(out / "checkpoint.sleeplab").step


def plot(path: Path, png: Path) -> None:
    import plotly.graph_objects as go
    from sleeplab.repro.render import screenshot
    recs = [r for r in json.loads(path.read_text()) if r["kind"] == "curve"]
    fig = go.Figure()
    for r in sorted(recs, key=lambda r: r["devices"]):
        name = f"{r['devices']} GPU" + ("s, DDP" if r["devices"] > 1 else "")
        if r.get("stopped_at_step"):
            name += f" (stopped by SIGTERM at step {r['stopped_at_step']}, resumed)"
        fig.add_scatter(x=[p["tokens"] / 1e6 for p in r["points"]], y=[p["exact"] for p in r["points"]], name=name,
                        mode="lines+markers", line=dict(dash="dash" if r["devices"] > 1 else "solid"))
    fig.update_xaxes(title_text="training tokens (M)")
    fig.update_yaxes(title_text="held-out exact accuracy", range=[0, 1])
    card = recs[0]["card"] if recs else "?"
    fig.update_layout(title=f"Same seed and global batch (512): one GPU vs DDP (Rule 110 t = 8, N = 2, {card})")
    if not screenshot(fig, png, width=1000):
        raise SystemExit("plot needs Chromium (for the PNG)")
    print(png)


def sweep(runs: int, args, work: Path) -> dict:
    root = work / f"sweep-{runs}"
    subprocess.call(["rm", "-rf", str(root)])
    root.mkdir(parents=True)
    grid = root / "grid.toml"
    grid.write_text(f'out = "runs"\n[base]\ntask = "rule110"\ntask_args = {{ t = 8 }}\n'
                    f'model_args = {{ d_model = 256, n_heads = 4, n_sleep = {args.n_sleep} }}\n'
                    f'steps = {args.steps}\neval_every = {args.every}\neval_size = {args.eval_size}\n'
                    f'warmup_steps = 0\ndevice = "cuda"\n[grid]\nseed = {list(range(runs))}\n')
    cmd = [sys.executable, "-m", "sleeplab.train.cli", "sweep", str(grid)]
    start = time.perf_counter()
    _run(cmd, root / "sweep.log")
    wall = time.perf_counter() - start
    run_walls = [_records(d)[-1]["wall_s"] for d in sorted((root / "runs").iterdir())]
    return dict(kind="sweep", devices=len(visible_gpus()), runs=runs, n_sleep=args.n_sleep,
                steps_per_run=args.steps, wall_s=wall, runs_wall_s_sum=sum(run_walls),
                command=" ".join(cmd[1:]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("job", "sweep", "curve", "plot"))
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4], help="GPU counts, one job each")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--per-device-batch", type=int, default=512, help="weak scaling (default)")
    size.add_argument("--global-batch", type=int, help="strong scaling: the same global batch on every count")
    ap.add_argument("--n-sleep", type=int, default=4)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--every", type=int, default=20, help="steps between records (timing points)")
    ap.add_argument("--skip", type=int, default=20, help="time from this step on (after warm-up and capture)")
    ap.add_argument("--eval-size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=4, help="sweep: runs (seeds), spread over the visible GPUs")
    ap.add_argument("--stop-at", type=int, help="curve: stop each run by SIGTERM once it recorded this step, then resume it")
    ap.add_argument("--note", default="", help="e.g. which other jobs shared the host")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sleeplab-scaling"))
    ap.add_argument("--out", type=Path, default=ROOT / "data/results/scaling.json")
    args = ap.parse_args(argv)
    if args.what == "plot":
        return plot(args.out, ROOT / "docs/figures/ddp_vs_single.png")
    if not visible_gpus():
        raise SystemExit("scaling.py measures GPUs; none is visible")
    args.work.mkdir(parents=True, exist_ok=True)
    common = dict(card=dev.card_name(dev.pick_device("cuda")), gpus=",".join(visible_gpus()),
                  torch=torch.__version__, python=platform.python_version(), note=args.note)
    records = []
    if args.what == "sweep":
        records.append({**sweep(args.runs, args, args.work), **common})
    if args.what == "curve":
        records += [{**curve(d, args, args.work), **common} for d in args.devices]
    for devices in args.devices if args.what == "job" else []:
        batch = args.global_batch or args.per_device_batch * devices
        records.append({**job(devices, batch, args, args.work), **common})
    for r in records:
        print(json.dumps(r), flush=True)
    key = lambda r: (r["kind"], r["devices"], r["n_sleep"], r.get("global_batch"), r.get("runs"), r["card"])  # noqa: E731
    old = json.loads(args.out.read_text()) if args.out.exists() else []
    fresh = {key(r) for r in records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([r for r in old if key(r) not in fresh] + records, indent=1) + "\n")


if __name__ == "__main__":
    main()
