"""Where sleep pays, by depth, in one table and one figure: for every seed with both an N = 1 and an
N = 4 run at a depth, N = 4's held-out exact accuracy minus N = 1's, at equal training tokens and at
equal compute. Each depth is read at one point fixed by the runs, not by their results: the last
evaluation every run of that depth reached (so unequal run lengths never favour one N), and at t = 8
also at 41 M tokens, the budget of the shipped per-N checkpoints. At equal compute N = 1 is read at
those tokens and N = 4 at 1 / 3.88 of them (:func:`compute.passes_per_token`): both have then run the
block stack over as many tokens.

``python -m sleeplab.repro tables`` prints :func:`leads`; ``python -m sleeplab.repro figures`` draws
:func:`figure` as ``docs/figures/rule110_where_sleep_pays.png``.
"""
from __future__ import annotations

from .compute import passes_per_token
from .results import cards, interpolate, last_common_evaluation
from .tables import first_grid_cell, seeds_verdict, study_cell

SEEDS = (0, 1, 2)
# (t, recipe, cell(n, seed), tokens: a number, or None for the last evaluation every run of t reached);
# 40.96 M is the first grid's evaluation nearest 41 M, the one the seeds table quotes (the study's
# runs evaluate every 12.8 M tokens and are interpolated there)
READS = ((8, "first grid", first_grid_cell(8), 40.96e6), (8, "first grid", first_grid_cell(8), None),
         (8, "paper's recipe", study_cell(8), 40.96e6), (8, "paper's recipe", study_cell(8), None),
         (12, "paper's recipe", study_cell(12, run_tokens="400M"), None),
         (16, "paper's recipe", study_cell(16, run_tokens="500M"), None),
         (24, "paper's recipe", study_cell(24, run_tokens="500M"), None),
         (32, "paper's recipe", study_cell(32, run_tokens="1B"), None))


def leads(curves: dict[str, dict]) -> list[dict]:
    """One row per read of :data:`READS` and seed with both runs: ``lead_tokens`` (N = 4 minus N = 1 at
    ``tokens``, points) and ``lead_compute`` (N = 4 at ``tokens`` / its passes a token, minus N = 1 at
    ``tokens``, points). Reads with no runs yet are left out."""
    rows = []
    for t, recipe, cell, tokens in READS:
        pairs = [(s, curves.get(cell(1, s)), curves.get(cell(4, s))) for s in SEEDS]
        pairs = [(s, n1, n4) for s, n1, n4 in pairs if n1 and n4]
        at = tokens or last_common_evaluation(curves, [c["cell"] for _, n1, n4 in pairs for c in (n1, n4)])
        for seed, n1, n4 in pairs:
            e1, e4 = interpolate(n1, at), interpolate(n4, at)
            e4_compute = interpolate(n4, at / passes_per_token(n4))
            if None in (e1, e4, e4_compute):
                continue
            rows.append({"t": t, "recipe": recipe, "seed": seed, "tokens": at, "n1": e1, "n4": e4,
                         "n4_equal_compute": e4_compute, "lead_tokens": 100 * (e4 - e1),
                         "lead_compute": 100 * (e4_compute - e1)})
    return rows


def _label(row: dict) -> str:
    tokens = f"{row['tokens'] / 1e9:.0f} B" if row["tokens"] >= 1e9 else f"{row['tokens'] / 1e6:.0f} M"
    return f"t = {row['t']}<br>{tokens}<br>{row['recipe']}"


def figure(curves: dict[str, dict]):
    """Every row of :func:`leads` as a point (one per seed), equal tokens and equal compute side by side
    at each read; None with no rows."""
    import plotly.graph_objects as go

    rows = leads(curves)
    if not rows:
        return None
    labels = list(dict.fromkeys(_label(r) for r in rows))
    fig = go.Figure()
    for key, name, shift, symbol, color in (("lead_tokens", "at equal tokens", -0.15, "circle", "#1f77b4"),
                                            ("lead_compute", "at equal compute (passes x tokens)", 0.15, "x",
                                             "#d62728")):
        fig.add_trace(go.Scatter(
            x=[labels.index(_label(r)) + shift + 0.05 * (r["seed"] - 1) for r in rows], y=[r[key] for r in rows],
            mode="markers", name=name, marker=dict(symbol=symbol, size=10, color=color),
            text=[f"seed {r['seed']}: N = 4 {100 * (r['n4'] if key == 'lead_tokens' else r['n4_equal_compute']):.1f} %,"
                  f" N = 1 {100 * r['n1']:.1f} %" for r in rows], hoverinfo="text+y"))
    fig.add_hline(y=0, line_color="gray", line_dash="dot")
    cells = [c(n, s) for _, _, c, _ in READS for n in (1, 4) for s in SEEDS]
    fig.update_xaxes(tickvals=list(range(len(labels))), ticktext=labels, title_text="depth t, tokens read, recipe")
    fig.update_yaxes(title_text="N = 4 minus N = 1, exact (points; one point per seed)")
    fig.update_layout(title=f"Where sleep pays: Rule 110, N = 4 against N = 1 by depth ({cards(curves, cells)})",
                      height=520, legend=dict(orientation="h", y=-0.3))
    return fig


# the paper's-recipe grid, seed 0: each depth's run length (N = 1, 2 and 4 ran alike at a depth)
GRID = ((8, "250M"), (12, "400M"), (16, "500M"), (24, "500M"))


def n2_place(n1: float, n2: float, n4: float, near: float = 2.0, apart: float = 1.0) -> str:
    """Where N = 2 sits (all in points), by the rule written before its runs: *between* if at least
    ``apart`` from each and between them, *with N = 1* / *with N = 4* if within ``near`` of that one's;
    every label that applies (a narrow pair can be both), else *unresolved*."""
    labels = []
    if min(n1, n4) + apart <= n2 <= max(n1, n4) - apart:
        labels.append("between")
    labels += [f"with N = {n}" for n, other in ((1, n1), (4, n4)) if abs(n2 - other) <= near]
    return " and ".join(labels) or "unresolved"


def grid(curves: dict[str, dict]) -> list[dict]:
    """The paper's-recipe depth grid, seed 0: N = 1, 2 and 4 at the last evaluation all three runs of a
    depth reached (in %), and :func:`n2_place`. Depths still missing a run are left out."""
    rows = []
    for t, run_tokens in GRID:
        cell = study_cell(t, run_tokens=run_tokens)
        names = [cell(n, 0) for n in (1, 2, 4)]
        at = last_common_evaluation(curves, names)
        if at is None:
            continue
        n1, n2, n4 = (100 * interpolate(curves[c], at) for c in names)
        rows.append({"t": t, "tokens": at, "n1": n1, "n2": n2, "n4": n4, "n2_place": n2_place(n1, n2, n4)})
    return rows


def early_t8_call(curves: dict[str, dict], at: float = 40.96e6) -> dict | None:
    """The t = 8 early lead under the paper's recipe, by the rule written before its seeds ran: N = 4
    minus N = 1 per seed at ``at`` tokens; *holds* if :func:`tables.seeds_verdict` calls it a win (a mean
    lead >= 10 points with every N = 4 seed above every N = 1 seed), *no early lead* if the mean is within
    5 points of zero, else *a smaller lead*. None until all three seeds have both runs there."""
    rows = [r for r in leads(curves) if r["t"] == 8 and r["recipe"] == "paper's recipe" and r["tokens"] == at]
    if len(rows) < len(SEEDS):
        return None
    verdict = seeds_verdict([{"n_sleep": n, "at": at, "budget": "equal", "exact": r[f"n{n}"]}
                             for r in rows for n in (1, 4)])[at]
    mean = verdict["mean_gap_points"]
    call = "holds" if verdict["win"] else "no early lead" if abs(mean) <= 5 else "a smaller lead"
    return {"tokens": at, "leads": [r["lead_tokens"] for r in rows], "mean": mean, "se": verdict["se_gap_points"],
            "n4_above_n1": verdict["high_above_low"], "call": call}
