"""Many runs from one TOML grid: every combination of the grid's values, each in its own directory.

    out = "runs/rule110_t16"          # run directories go under here (relative to the TOML file)
    parallel = 2                      # runs at once, e.g. several small runs sharing one GPU

    [base]                            # TrainConfig fields every run shares
    task = "rule110"
    tokens = "40M"
    task_args = { t = 16 }

    [grid]                            # lists to combine; "task_args.x" / "model_args.x" reach inside
    "model_args.n_sleep" = [1, 2, 4]
    seed = [0, 1]

gives six runs named like ``n_sleep-2_seed-1`` (axes with one value are left out of names). Each run is
a ``sleeplab train --resume`` subprocess with its own log, so the sweep is resumable: a finished run
(checkpoint plus ``done.json`` at the budget) is skipped, an unfinished one continues from its
checkpoint, a new one starts. Stopping the sweep (Ctrl-C, ``kill``) stops every run at a step
boundary with a checkpoint of its last finished step.

On a host with several GPUs (``devices``, default: every visible GPU) each run gets one GPU, the least
busy one (``CUDA_VISIBLE_DEVICES``), and ``parallel`` (default: one per GPU) runs share them.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..device import device_count
from .checkpoint import CHECKPOINT, CONFIG, DONE
from .config import TrainConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None


def read_grid(path) -> dict:
    path = Path(path)
    if tomllib is None:
        raise RuntimeError("reading TOML needs Python >= 3.11 (tomllib)")
    if not path.is_file():
        raise FileNotFoundError(f"grid {str(path)!r} is not a file; give a .toml grid")
    try:
        with open(path, "rb") as f:
            grid = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    unknown = sorted(set(grid) - {"out", "parallel", "base", "grid"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown}; allowed: out, parallel, base, grid")
    for key in ("base", "grid"):
        if not isinstance(grid.get(key, {}), dict):
            raise ValueError(f"{path}: {key} must be a table ([{key}] of fields), got {grid[key]!r}")
    if not isinstance(grid.get("out", ""), str):
        raise ValueError(f"{path}: out must be a directory name (a string), got {grid['out']!r}")
    return grid


def expand(grid: dict, root: Path) -> list[tuple[str, TrainConfig]]:
    """[(name, config)] for every combination of the grid's lists, each config's ``out`` set."""
    axes = grid.get("grid", {})
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid entry {key!r} must be a non-empty list, got {values!r}")
    runs = []
    for combo in itertools.product(*axes.values()):
        cfg = json.loads(json.dumps(grid.get("base", {})))  # a deep copy
        parts = []
        for key, value in zip(axes, combo):
            head, _, leaf = key.rpartition(".")
            if head not in ("", "task_args", "model_args"):
                raise ValueError(f"grid key {key!r}: only 'task_args.' and 'model_args.' may prefix a field")
            (cfg.setdefault(head, {}) if head else cfg)[leaf] = value
            if len(axes[key]) > 1:  # a one-value axis names nothing
                parts.append(f"{leaf}-{value}".replace("/", "_").replace(" ", ""))
        name = "_".join(parts) or "run"
        cfg["out"] = str(root / name)
        runs.append((name, TrainConfig.from_dict(cfg)))
    names = [name for name, _ in runs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # e.g. values that differ only in spacing, which names drop: the runs would share a directory
        raise ValueError(f"grid entries give runs of one name {twice}, which would share a run directory; "
                         "make the values differ by more than spacing, or drop the repeated ones")
    return runs


def state(cfg: TrainConfig) -> str:
    """'done', 'partial' (has a checkpoint) or 'new'."""
    out = Path(cfg.out)
    if (out / DONE).exists() and (out / CHECKPOINT).exists():
        if json.loads((out / DONE).read_text())["step"] == cfg.total_steps():
            return "done"
    return "partial" if (out / CHECKPOINT).exists() else "new"


def least_busy(gpus: int, busy: list[int | None]) -> int | None:
    """The GPU (0..gpus-1) running the fewest of ``busy`` (the GPUs of running runs), lowest first."""
    if gpus == 0:
        return None
    return min(range(gpus), key=lambda g: (busy.count(g), g))


def _launch(name: str, cfg: TrainConfig, threads: int, gpu: str | None) -> subprocess.Popen:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    cmd = [sys.executable, "-m", "sleeplab.train.cli", "train", "--config", str(out / CONFIG), "--resume"]
    with open(out / "log.txt", "a") as log:  # the child keeps its own copy of the handle
        # a session of its own: Ctrl-C reaches only the sweep, which stops each run with SIGTERM, the
        # signal on which a run saves its last finished step (an interrupt mid-step could not)
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES names them (all, when it is unset)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(device_count())]


def run_sweep(path, parallel: int | None = None, dry_run: bool = False, devices: int | None = None) -> int:
    """Run the grid; returns 0 when every run finished, 1 otherwise (see each run's log.txt)."""
    grid = read_grid(path)
    root = Path(path).parent / grid.get("out", Path(path).stem)
    runs = expand(grid, root)
    shown = visible_gpus()
    gpus = len(shown) if devices is None else devices
    if not isinstance(gpus, int) or not 0 <= gpus <= len(shown):
        raise ValueError(f"devices={gpus!r}: this machine shows {len(shown)} GPUs; "
                         f"allowed: 0 (CPU or one shared default GPU) to {len(shown)}")
    parallel = parallel if parallel is not None else grid.get("parallel", max(gpus, 1))
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise ValueError(f"parallel must be a positive integer, got {parallel!r}")
    several = [name for name, cfg in runs if cfg.devices != 1]
    if several:
        raise ValueError(f"runs {several} ask for devices != 1; a sweep gives each run one GPU "
                         "(train a multi-GPU run with sleeplab train --devices N)")
    todo = []
    for name, cfg in runs:
        status = state(cfg)
        print(json.dumps({"run": name, "state": status, "out": cfg.out}), flush=True)
        if status != "done":
            todo.append((name, cfg))
    if dry_run or not todo:
        return 0
    threads = max(1, (os.cpu_count() or 1) // parallel)  # CPU runs share the cores instead of fighting
    running, failed = {}, []  # name -> (process, gpu)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a plain `kill` stops children too
    try:
        while todo or running:
            while todo and len(running) < parallel:
                name, cfg = todo.pop(0)
                gpu = least_busy(gpus, [g for _, g in running.values()])
                running[name] = (_launch(name, cfg, threads, None if gpu is None else shown[gpu]), gpu)
                print(json.dumps({"run": name, "started": True, "gpu": gpu}), flush=True)
            time.sleep(0.2)
            for name, (proc, _) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    print(json.dumps({"run": name, "exit": proc.returncode}), flush=True)
                    if proc.returncode:
                        failed.append(name)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc, _ in running.values():  # interrupted: each run stops after its current step and saves it
            proc.terminate()
        for proc, _ in running.values():
            proc.wait()
    return 1 if failed else 0
