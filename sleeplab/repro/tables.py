"""The reproduction's tables, computed from the shipped curves alone: seeds at equal
tokens against a compute-matched control (equal compute: ``sleeplab.repro.compute``), the update-rule ablation, the depth x sleep grid, the evicting
transformer against input-blind guesses, Depo per hop count, the variable-N models evaluated at test-time
N, and the shipped checkpoints against a fresh held-out set.
``python -m sleeplab.repro tables`` prints them;
``sleeplab.repro.figures`` draws them."""
from __future__ import annotations

import json
from pathlib import Path

from .recipes import T12_VERDICT, study_name
from .results import (cell_name, data_dir, final, interpolate, last_common_evaluation, load_curves, runs_of,
                      standard_error, tokens_to_reach)

STUDY_BUDGETS = (50e6, 100e6, 150e6, 200e6, 250e6)  # evaluations of the 250 M-token study runs compared
DEEP_BUDGETS = (100e6, 200e6, 300e6, 400e6, 500e6)   # and of the 500 M-token runs at t = 16
LONG12_BUDGETS = (100e6, 200e6, 250e6, 300e6, 350e6, 400e6)  # and of the 400 M-token runs at t = 12


def nearest(curve: dict, tokens: float, tol: float = 0.05) -> dict | None:
    """The evaluation nearest to ``tokens`` training tokens, or None when none lies within ``tol``
    (relative): evaluations fall every 10.24 M tokens, so "61 M" is the one at 61.44 M, and a run that
    stopped short has no point there at all."""
    best = min(curve["points"], key=lambda p: abs(p["tokens"] - tokens))
    return best if abs(best["tokens"] - tokens) <= tol * tokens else None


def first_grid_cell(t: int):
    """``cell(n, seed)`` naming the first grid's runs of depth t (``rule110-t8-n4-seed1``)."""
    return lambda n, seed: cell_name(t, n, seed=seed)


def seeds_table(curves: dict[str, dict] | None = None, t: int = 8, ns=(1, 4), seeds=(0, 1, 2),
                tokens=(41e6, 61e6, 100e6), matched: int | None = 4, cell=None) -> list[dict]:
    """Exact accuracy of every seed of each N at equal tokens, and of the compute-matched control
    ``rule110-t<t>-n1-x<matched>tokens`` at ``matched`` times those tokens (budget "x4"; ``matched=None``:
    no control, e.g. where none was trained with the same recipe). ``cell(n, seed)`` names a run
    (default: the first grid's ``rule110-t<t>-n<N>[-seed<s>]``). Cells or evaluations not shipped are
    left out."""
    curves = load_curves() if curves is None else curves
    cell = cell or first_grid_cell(t)
    rows = []
    for x in tokens:
        for n in ns:
            for seed in seeds:
                c = curves.get(cell(n, seed))
                p = nearest(c, x) if c else None
                if p:
                    rows.append({"cell": cell(n, seed), "n_sleep": n, "seed": seed, "budget": "equal",
                                 "at": x, "tokens": p["tokens"], "exact": p["exact"]})
        control = curves.get(cell_name(t, 1, f"x{matched}tokens")) if matched else None
        p = nearest(control, matched * x) if control else None
        if p:
            rows.append({"cell": control["cell"], "n_sleep": 1, "seed": 0, "budget": f"x{matched}", "at": x,
                         "tokens": p["tokens"], "exact": p["exact"]})
    return rows


def study_cell(t: int, recipe: str = "paper", run_tokens: str = "250M"):
    """``cell(n, seed)`` naming the recipe study's runs of one depth, recipe and run length, for
    :func:`seeds_table`."""
    return lambda n, seed: study_name(t, n, recipe, seed, run_tokens)


def study_seeds_table(curves: dict[str, dict] | None = None, t: int = 12, recipe: str = "paper",
                      tokens=STUDY_BUDGETS, run_tokens: str = "250M", ns=(1, 4)) -> list[dict]:
    """:func:`seeds_table` of the recipe study's cells: no compute-matched control, since none was
    trained with the study's recipes."""
    return seeds_table(curves, t=t, ns=ns, tokens=tokens, matched=None, cell=study_cell(t, recipe, run_tokens))


def long12_table(curves: dict[str, dict] | None = None) -> tuple[list[dict], float | None]:
    """:func:`study_seeds_table` of the 400 M-token t = 12 runs, and their verdict point
    (:func:`last_common_evaluation` of ``recipes.T12_VERDICT``, the six N = 1 and N = 4 seeds; None
    until all six have a curve). With a verdict point the budgets stop there and include it; without
    one, they are :data:`LONG12_BUDGETS`, for the runs that reached them. N = 2's run (one seed) is
    listed beside them; the verdict (:func:`seeds_verdict`) reads N = 1 and N = 4 only."""
    curves = load_curves() if curves is None else curves
    at = last_common_evaluation(curves, T12_VERDICT)
    budgets = LONG12_BUDGETS if at is None else sorted({x for x in LONG12_BUDGETS if x < 0.95 * at} | {at})
    return study_seeds_table(curves, t=12, tokens=budgets, run_tokens="400M", ns=(1, 2, 4)), at


def rerun_table(curves: dict[str, dict] | None = None, t: int = 12, at: float = 250e6, ns=(1, 4),
                seeds=(0, 1, 2), level: float = 0.5) -> list[dict]:
    """Each 250 M-token study run of depth ``t`` (the paper's recipe) beside every rerun of it in a
    400 M-token cell (``rerun`` 1, 2, ...: the runs of that cell, oldest first): the same seed, so the
    same initialisation and data order, in another session, on another card or commit; both read at
    ``at`` tokens (linear between evaluations), with the tokens each took to first reach ``level``
    exact (None if it never did). Seeds without a rerun are left out."""
    curves = load_curves() if curves is None else curves
    rows = []
    for n in ns:
        for seed in seeds:
            first, long = (curves.get(study_name(t, n, "paper", seed, run)) for run in ("250M", "400M"))
            a = interpolate(first, at) if first else None
            for k, rerun in enumerate(runs_of(long) if long and a is not None else [], start=1):
                b = interpolate(rerun, at)
                if b is not None:
                    rows.append({"n_sleep": n, "seed": seed, "rerun": k, "first_card": first["card"], "first_exact": a,
                                 "rerun_card": rerun["card"], "rerun_exact": b, "difference_points": 100 * (b - a),
                                 "first_reached": tokens_to_reach(first, level),
                                 "rerun_reached": tokens_to_reach(rerun, level)})
    return rows


def pooled_runs(curves: dict[str, dict] | None = None, t: int = 12, at: float = 250e6) -> list[dict]:
    """Every run of depth ``t`` with the paper's recipe, first runs and reruns alike (:func:`runs_of`),
    at ``at`` tokens (linear between evaluations), as :func:`seeds_table` rows for
    :func:`seeds_verdict`: a comparison made after the reruns showed how far two runs of one seed can
    differ, not the plan's."""
    curves = load_curves() if curves is None else curves
    rows = []
    for run in ("250M", "400M"):
        for n in (1, 4):
            for seed in (0, 1, 2):
                c = curves.get(study_name(t, n, "paper", seed, run))
                for r in runs_of(c) if c else []:
                    exact = interpolate(r, at)
                    if exact is not None:
                        rows.append({"cell": c["cell"], "n_sleep": n, "seed": seed, "budget": "equal", "at": at,
                                     "tokens": at, "exact": exact})
    return rows


def _sample_var(xs: list[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def seeds_verdict(rows: list[dict], low: int = 1, high: int = 4, win_points: float = 10.0) -> dict[float, dict]:
    """Per token budget of ``seeds_table``: does every seed of N = ``high`` beat every seed of N = ``low``
    (and the compute-matched control), and by how much on average? ``win``: the study's criterion, a
    mean lead of at least ``win_points`` with every high seed above every low seed; ``low_above_high``:
    the reverse ordering, every low seed above every high seed; ``se_gap_points``: the standard error
    of the mean lead from the runs' spread (None with fewer than two runs a side). None where a side
    is missing."""
    verdict = {}
    for x in sorted({r["at"] for r in rows}):
        at = [r for r in rows if r["at"] == x]
        hi = [r["exact"] for r in at if r["n_sleep"] == high]
        lo = [r["exact"] for r in at if r["n_sleep"] == low and r["budget"] == "equal"]
        ctrl = [r["exact"] for r in at if r["budget"] != "equal"]
        both = bool(hi and lo)
        gap = 100 * (sum(hi) / len(hi) - sum(lo) / len(lo)) if both else None
        spread = len(hi) > 1 and len(lo) > 1
        se = 100 * (_sample_var(hi) / len(hi) + _sample_var(lo) / len(lo)) ** 0.5 if spread else None
        verdict[x] = {"seeds": (len(hi), len(lo)), "min_high": min(hi, default=None), "max_low": max(lo, default=None),
                      "max_high": max(hi, default=None), "min_low": min(lo, default=None),
                      "low_above_high": min(lo) > max(hi) if both else None, "control": ctrl[0] if ctrl else None, "mean_gap_points": gap,
                      "se_gap_points": se,
                      "high_above_low": min(hi) > max(lo) if both else None,
                      "high_above_control": min(hi) > ctrl[0] if hi and ctrl else None,
                      "win": (gap >= win_points and min(hi) > max(lo)) if both else None}
    return verdict


def ablation_table(curves: dict[str, dict] | None = None, t: int = 8, n: int = 2,
                   rules=("gated_delta", "hebbian", "delta"), tokens: float | None = None) -> list[dict]:
    """The update-rule ablation: final (or nearest-to-``tokens``) accuracy per rule at depth t and N;
    the gated delta rule is the plain ``rule110-t<t>-n<N>`` cell."""
    curves = load_curves() if curves is None else curves
    rows = []
    for rule in rules:
        cell = cell_name(t, n, "" if rule == "gated_delta" else rule)
        c = curves.get(cell)
        p = (final(c) if tokens is None else nearest(c, tokens)) if c else None
        if p:
            rows.append({"cell": cell, "rule": rule, "t": t, "n_sleep": n, "tokens": p["tokens"],
                         "exact": p["exact"], "per_label": p.get("per_label")})
    return rows


def depth_table(curves: dict[str, dict] | None = None, ts=(4, 8, 12, 16), ns=(1, 2, 4),
                tokens: float = 100e6) -> list[dict]:
    """The depth x sleep grid at an equal budget: each seed-0 cell ``rule110-t<t>-n<N>`` at the evaluation
    nearest ``tokens``, one row per (t, N). Cells not shipped, or stopped short of ``tokens``, are left out."""
    curves = load_curves() if curves is None else curves
    rows = []
    for t in ts:
        for n in ns:
            c = curves.get(cell_name(t, n))
            p = nearest(c, tokens) if c else None
            if p:
                rows.append({"cell": cell_name(t, n), "t": t, "n_sleep": n, "tokens": p["tokens"],
                             "exact": p["exact"], "per_label": p.get("per_label")})
    return rows


def eviction_table(curves: dict[str, dict] | None = None, ts=(4, 8, 12, 16)) -> list[dict]:
    """The evicting transformer ``rule110-t<t>-transformer-evict`` (final evaluation) against the
    input-blind baselines of its depth: how many points above a uniform guess (``vs_chance``) and above
    the best input-blind guess (``vs_majority``), and whether it is within 2 points of the latter, i.e. no
    better than ignoring the input. Cells not shipped are left out."""
    from ..tasks.rule110 import Rule110Config, baselines
    curves = load_curves() if curves is None else curves
    rows = []
    for t in ts:
        c = curves.get(cell_name(t, variant="transformer-evict"))
        if not c:
            continue
        last, base = final(c), baselines(Rule110Config(t=t))
        rows.append({"cell": c["cell"], "t": t, "tokens": last["tokens"], "exact": last["exact"],
                     "per_label": last.get("per_label"), "chance": base["chance"], "majority": base["majority"],
                     "vs_chance": round(100 * (last["exact"] - base["chance"]), 2),
                     "vs_majority": round(100 * (last["exact"] - base["majority"]), 2),
                     "within_2_points": abs(last["exact"] - base["majority"]) <= 0.02})
    return rows


DEPO_K = (1, 2, 4, 8, 16)   # the hop counts the paper reports (Fig. 3)


def per_k(record: dict) -> dict[int, float]:
    """An evaluation's per-hop-count query accuracy ``{k: accuracy}`` (JSON turned the keys to strings)."""
    return dict(sorted((int(k), v) for k, v in (record.get("per_k") or {}).items()))


def depo_table(curves: dict[str, dict] | None = None, ns=(1, 2, 4), ks=DEPO_K) -> list[dict]:
    """Depo cells ``depo-n<N>``: final per-query accuracy overall and per hop count k (a column "k=K")."""
    curves = load_curves() if curves is None else curves
    rows = []
    for n in ns:
        c = curves.get(f"depo-n{n}")
        if c:
            last, by_k = final(c), per_k(final(c))
            rows.append({"cell": c["cell"], "n_sleep": n, "tokens": last["tokens"], "per_query": last.get("per_query"),
                         **{f"k={k}": by_k.get(k) for k in ks}})
    return rows


TEST_TIME_DIR = "test_time_n"


def load_test_time_n(folder: str | Path | None = None, default: str = TEST_TIME_DIR) -> dict[str, dict]:
    """The shipped test-time-N evaluations, ``{cell: report}``, one per ``data/results/test_time_n/<cell>.json``
    as written by ``python -m sleeplab.train.cli eval CHECKPOINT --n-sleep 1 ... 8 --out ...``: ``report
    ["results"]`` maps each N (a string, as JSON keeps it) to ``sleeplab.evaluate``'s record. A missing
    folder gives ``{}`` (nothing evaluated yet); a malformed file raises ``ValueError`` naming it. With no
    ``folder``, ``data/results/<default>``: other sets of ``eval --out`` reports are read the same way."""
    if folder is None:
        try:
            folder = data_dir() / "results" / default
        except FileNotFoundError:
            return {}
    folder = Path(folder)
    reports = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        res = report.get("results") if isinstance(report, dict) else None
        if not isinstance(res, dict) or not res or any(
                not isinstance(r, dict) or "exact" not in r for r in res.values()):
            raise ValueError(f"{path}: 'results' must map each N to a record with 'exact'")
        reports[path.stem] = report
    return reports


def table_test_time_n(reports: dict[str, dict]) -> list[dict]:
    """One row per (cell, N) of ``load_test_time_n``: exact and per-label accuracy with the binomial
    standard error of exact over the report's examples; the same examples at every N of a cell."""
    rows = []
    for cell, report in reports.items():
        for n, r in sorted(report["results"].items(), key=lambda kv: int(kv[0])):
            examples = r.get("examples") or report["examples"]
            rows.append({"cell": cell, "n_sleep": int(n), "examples": examples, "exact": r["exact"],
                         "se": standard_error(r["exact"], examples), "per_label": r.get("per_label")})
    return rows


def shipped_table(manifest: str | Path) -> list[dict]:
    """Per shipped checkpoint (``MANIFEST.json`` of ``python -m sleeplab.repro manifest``): the
    stated exact accuracy, the one on a fresh held-out set, their difference and its standard error,
    all in points. A missing manifest gives no rows."""
    path = Path(manifest)
    rows = []
    for e in json.loads(path.read_text()) if path.exists() else []:
        held, fresh = e["heldout"], e["fresh"]
        se = (standard_error(held["exact"], held["examples"]) ** 2
              + standard_error(fresh["exact"], fresh["examples"]) ** 2) ** 0.5
        rows.append({"cell": e["cell"], "n_sleep": e["n_sleep"], "stated": round(100 * held["exact"], 2),
                     "fresh": round(100 * fresh["exact"], 2), "difference": e["fresh_minus_heldout_points"],
                     "se_points": round(100 * se, 2)})
    return rows
