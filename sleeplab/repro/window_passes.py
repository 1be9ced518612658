"""Whose sleep needs the passes: the per-window-N evaluations of ``data/results/window_passes/``, one
file per fixed-N checkpoint, written by

    python -m sleeplab.train.cli eval CHECKPOINT --eval-size 2048 \\
        --n-sleep N 1 1,N,N,N N,1,N,N N,N,1,N N,N,N,1 N,1,1,1 1,N,1,1 1,1,N,1 1,1,1,N --out ...

and read here as the two tests written before they ran: taking window j's passes away must lower
label j by >= 10 points and by >= 3x the mean drop of the other labels ("own"); giving window j alone
its passes must bring label j at least half-way from one pass to N ("suffice")."""
from __future__ import annotations

from pathlib import Path

import torch

from . import tables

DIR = "window_passes"
OWN_POINTS, OWN_RATIO, SUFFICE_SHARE = 10.0, 3.0, 0.5


def load(folder: str | Path | None = None) -> dict[str, dict]:
    """``{cell: report}`` of the folder (default ``data/results/window_passes``), checked as the
    test-time-N reports are; no folder gives ``{}``."""
    return tables.load_test_time_n(folder, DIR)


def schedule(n: int, window: int, windows: int, only: bool) -> str:
    """The ``--n-sleep`` key: N at ``window`` and 1 elsewhere (``only``), or 1 there and N elsewhere."""
    return ",".join(str((n if only else 1) if i == window else (1 if only else n)) for i in range(windows))


def table(reports: dict[str, dict]) -> list[dict]:
    """One row per checkpoint and window j, accuracies in points: label j with N passes everywhere,
    with 1, without window j's passes, with only window j's; how far that moved the other labels at
    most; the share of the way label j came back; and the two tests."""
    rows = []
    for cell, report in reports.items():
        results = report["results"]
        whole = [int(k) for k in results if "," not in k]
        n = max(whole)
        if sorted(whole) != sorted({1, n}) or n == 1:
            raise ValueError(f"{cell}: needs the keys '1' and one N > 1 for every window; got {sorted(results)}")
        full, one = (100 * _per_state(results, str(k), cell) for k in (n, 1))
        windows = len(full)
        for j in range(windows):
            drop, only = (100 * _per_state(results, schedule(n, j, windows, o), cell) for o in (False, True))
            others = [i for i in range(windows) if i != j]
            own_drop, other_drops = full[j] - drop[j], full[others] - drop[others]
            recovered = (only[j] - one[j]) / (full[j] - one[j])
            rows.append({"cell": cell, "n_sleep": n, "window": j, "full": round(float(full[j]), 1),
                         "one": round(float(one[j]), 1), "without_j": round(float(drop[j]), 1),
                         "only_j": round(float(only[j]), 1),
                         "others_moved": round(float(other_drops.abs().max()), 1),
                         "recovered": round(float(recovered), 3),
                         "own": bool(own_drop >= OWN_POINTS and own_drop >= OWN_RATIO * other_drops.mean()),
                         "suffice": bool(recovered >= SUFFICE_SHARE)})
    return rows


def _per_state(results: dict, key: str, cell: str) -> torch.Tensor:
    if key not in results or "per_state" not in results[key]:
        raise ValueError(f"{cell}: no per-label record for --n-sleep {key}; the evaluation above writes it")
    return torch.tensor(results[key]["per_state"], dtype=torch.float64)
