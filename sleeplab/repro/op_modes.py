"""Does training with the fused Triton kernels learn as training with the chunk path does? The speed
work's before/after cell, read by the rule written before its runs (docs/speed_notes.md, session 18).

One configuration (the paper's recipe, Rule 110 at t = 8, seed s) trains twice: with the chunk path
(``op_mode="chunk"``, the shipped ``study-t8-n4-paper-s{s}`` runs) and with the Triton kernels
(``study-t8-n4-triton-s{s}-100M``). Initialisation and batches are the same; only the kernels and
their rounding differ, and a difference in rounding grows over thousands of steps as a rerun's does.
At N = 1 the fast step hands the GDN blocks the whole 100-token sequence, past the kernel's 64
tokens, so "triton" runs the chunk path: its cell is a rerun of the paper's
(``study-t8-n1-paper-s0-100M``), which measures what running again alone changes.
"""
from __future__ import annotations

from .recipes import study_name
from .results import interpolate

READ_AT = (76.8e6, 89.6e6)  # steps 1,500 and 1,750 at 51,200 tokens a step: every run evaluates there
BAND_POINTS = 2.0           # the three chunk seeds of N = 4 span about a point at both; a broken kernel moves tens
SEEDS = {4: (0, 1, 2), 1: (0,)}
LABELS = tuple(f"{x / 1e6:.1f}M" for x in READ_AT)  # the read points as the rows' keys name them


def pairs(curves: dict[str, dict]) -> list[dict]:
    """One row per seed whose chunk run and Triton run (N = 1: rerun) are both in ``curves``: exact of
    each at :data:`READ_AT`, and the Triton run's minus the chunk run's, in points."""
    rows = []
    for n, seeds in SEEDS.items():
        for seed in seeds:
            before = curves.get(study_name(8, n, "paper", seed))
            after = curves.get(study_name(8, n, "triton", seed, "100M"))
            if before is None or after is None:
                continue
            row = {"cell": after["cell"], "n_sleep": n, "seed": seed}
            for x, k in zip(READ_AT, LABELS):
                a, b = interpolate(after, x), interpolate(before, x)
                row[f"chunk_{k}"], row[f"triton_{k}"] = b, a
                row[f"diff_{k}"] = None if a is None or b is None else 100 * (a - b)
            rows.append(row)
    return rows


def call(curves: dict[str, dict]) -> dict[int, dict]:
    """Per N with every planned seed read at both points: the mean Triton-minus-chunk difference at
    each, and the call: *unchanged within noise* if every mean is within :data:`BAND_POINTS` of zero,
    else *changed*. ``chunk_span``: how far apart the chunk runs of that N's seeds are at each point
    (the noise the band is set against; None with one seed)."""
    rows = pairs(curves)
    verdict = {}
    for n, seeds in SEEDS.items():
        mine = [r for r in rows if r["n_sleep"] == n]
        if len(mine) < len(seeds) or any(r[f"diff_{k}"] is None for r in mine for k in LABELS):
            continue
        mean = {k: sum(r[f"diff_{k}"] for r in mine) / len(mine) for k in LABELS}
        span = {k: 100 * (max(r[f"chunk_{k}"] for r in mine) - min(r[f"chunk_{k}"] for r in mine))
                if len(mine) > 1 else None for k in LABELS}
        unchanged = all(abs(m) <= BAND_POINTS for m in mean.values())
        verdict[n] = {"seeds": [r["seed"] for r in mine], "diffs": {k: [r[f"diff_{k}"] for r in mine] for k in LABELS},
                      "mean": mean, "chunk_span": span,
                      "call": "unchanged within noise" if unchanged else "changed"}
    return verdict
