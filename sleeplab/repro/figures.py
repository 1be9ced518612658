"""The figures of ``docs/results.md``, drawn from ``data/results/curves.json`` and the test-time-N
evaluations in ``data/results/test_time_n/`` alone (no training).

``build(curves, test_time)`` returns the plotly figures whose cells are shipped, leaving out any figure
with no data yet, so the files can be re-drawn while a GPU session is still filling them in;
``sleeplab.repro.render.draw`` writes them as PNG (``python -m sleeplab.repro figures``).
"""
from __future__ import annotations

from pathlib import Path

from ..lab.viz import COLORS
from . import by_depth, compute, results, tables

SEED_DASH = {0: "solid", 1: "dash", 2: "dot"}
_PALETTE = ["#000000", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
HEIGHT = 520     # of a figure with one row of panels
DEPTHS = (4, 8, 12, 16)


def _xy(curve: dict, key: str = "exact", upto: float | None = None):
    points = [p for p in curve["points"] if upto is None or p["tokens"] <= upto]
    return [p["tokens"] / 1e6 for p in points], [p.get(key) for p in points]


def depth_sleep(curves: dict, ts=DEPTHS):
    """One panel per depth t that has cells (two columns, so four depths stay readable), each N at
    equal tokens, the N = 1 control at 4x tokens where it ran, and t's best input-blind guess."""
    from plotly.subplots import make_subplots

    from ..tasks import get_task
    cells = {t: [results.cell_name(t, n) for n in (1, 2, 4)] + [results.cell_name(t, 1, "x4tokens")] for t in ts}
    shown = [t for t in ts if any(c in curves for c in cells[t])]
    if not shown:
        return None
    rows, cols = (len(shown) + 1) // 2, min(len(shown), 2)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"Rule 110, t = {t}" for t in shown],
                        vertical_spacing=0.12)
    task = get_task("rule110")
    first = {}     # a legend entry per kind of curve, not one per panel
    for i, t in enumerate(shown):
        at = dict(row=i // 2 + 1, col=i % 2 + 1)
        for n in (1, 2, 4):
            c = curves.get(results.cell_name(t, n))
            if c:
                x, y = _xy(c)
                fig.add_scatter(x=x, y=y, name=f"N = {n}", legendgroup=str(n),
                                showlegend=first.setdefault(n, t) == t, line=dict(color=COLORS[n]), **at)
        ctrl = curves.get(results.cell_name(t, 1, "x4tokens"))
        if ctrl:
            x, y = _xy(ctrl)
            fig.add_scatter(x=x, y=y, name="N = 1, 4x tokens", legendgroup="x4",
                            showlegend=first.setdefault("x4", t) == t, line=dict(color=COLORS[1], dash="dash"), **at)
        majority = task.baselines(task.Config(t=t))["majority"]
        fig.add_hline(y=majority, line_dash="dash", line_color="gray", annotation_text="best input-blind guess",
                      annotation_position="top left", **at)
    fig.update_xaxes(title_text="training tokens (M)", row=rows)
    fig.update_yaxes(range=[0, 1])
    fig.update_yaxes(title_text="held-out exact accuracy", col=1)
    fig.update_layout(height=HEIGHT * rows, title="Sleep passes N at an equal token budget "
                      f"(seed 0, {results.cards(curves, [c for t in shown for c in cells[t]])})")
    return fig


def seeds(curves: dict, t: int = 8, tokens=(41e6, 61e6, 100e6), cell=None, matched: int | None = 4,
          recipe: str = "first grid", ns=(1, 4)):
    """Left: every seed's curve up to the last compared budget. Right: each seed at equal tokens, and
    the N = 1 control at 4x those tokens (as much compute as N = 4) where one was trained with the
    same recipe. ``cell(n, seed)`` names the runs (``tables.seeds_table``); curves are drawn for ``ns``."""
    from plotly.subplots import make_subplots
    rows = tables.seeds_table(curves, t=t, tokens=tokens, matched=matched, cell=cell)
    if not rows:
        return None
    cell = cell or tables.first_grid_cell(t)
    right = "at equal tokens" + (f" (N = 1 control: {matched}x tokens)" if matched else "")
    count = len({r["seed"] for r in rows})
    fig = make_subplots(rows=1, cols=2, subplot_titles=[
        f"Rule 110, t = {t}: {count} seed{'s' * (count > 1)} ({recipe})", right])
    drawn = {cell(n, seed): (n, seed) for n in ns for seed in (0, 1, 2) if cell(n, seed) in curves}
    for name, (n, seed) in drawn.items():
        x, y = _xy(curves[name], upto=max(tokens) * 1.05)
        fig.add_scatter(x=x, y=y, name=f"N = {n}, seed {seed}", line=dict(color=COLORS[n], dash=SEED_DASH[seed]),
                        row=1, col=1)
    label = {x: f"{x / 1e6:.0f} M" for x in tokens}
    for n, budget, name, symbol in ((1, "equal", "N = 1", "circle"), (4, "equal", "N = 4", "diamond"),
                                    (1, f"x{matched}", f"N = 1, {matched}x tokens", "x")):
        sel = [r for r in rows if r["n_sleep"] == n and r["budget"] == budget]
        if sel:
            fig.add_scatter(x=[label[r["at"]] for r in sel], y=[r["exact"] for r in sel], mode="markers",
                            name=name, marker=dict(color=COLORS[n], symbol=symbol, size=10),
                            text=[f"{r['cell']} at {r['tokens'] / 1e6:.1f} M" for r in sel], row=1, col=2)
    for x in tokens[:-1]:
        fig.add_vline(x=x / 1e6, line_dash="dot", line_color="gray", row=1, col=1)
    fig.update_xaxes(title_text="training tokens (M)", row=1, col=1)
    fig.update_xaxes(title_text="tokens of the N = 4 run", row=1, col=2)
    fig.update_yaxes(title_text="held-out exact accuracy", range=[0, 1])
    fig.update_layout(title=f"Is N = 4 > N = 1 at t = {t} for every seed? ({results.cards(curves, [*drawn, *(r['cell'] for r in rows)])})")
    return fig


def t12_study_seeds(curves: dict):
    return seeds(curves, t=12, tokens=tables.STUDY_BUDGETS, matched=None, recipe="paper's recipe",
                 cell=tables.study_cell(12))


def t16_study_seeds(curves: dict):
    return seeds(curves, t=16, tokens=tables.DEEP_BUDGETS, matched=None, recipe="paper's recipe, 500 M tokens",
                 cell=tables.study_cell(16, run_tokens="500M"), ns=(1, 2, 4))


def t12_long_seeds(curves: dict):
    rows, _ = tables.long12_table(curves)
    if not rows:
        return None
    return seeds(curves, t=12, tokens=sorted({r["at"] for r in rows}), matched=None,
                 recipe="paper's recipe, 400 M-token runs", cell=tables.study_cell(12, run_tokens="400M"), ns=(1, 2, 4))


# the N = 1 control at 4x tokens, drawn where one ran with the recipe of a depth's runs
COMPUTE_CONTROLS = {8: results.cell_name(8, 1, "x4tokens"), 12: compute.T12_MATCHED}


def compute_matched(curves: dict):
    """Every seed of N = 1 and N = 4 against compute (passes x tokens, ``compute.passes_per_token``) at
    t = 8, 12 and 16: at equal tokens N = 4 leads at depth; this shows where it stands at equal compute."""
    from plotly.subplots import make_subplots
    panels = compute.COMPUTE_MATCHED
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[f"t = {t} ({recipe})" for t, (recipe, _) in panels.items()])
    drawn = []
    for col, (t, (_, cell)) in enumerate(panels.items(), start=1):
        runs = [(cell(n, seed), f"N = {n}, seed {seed}", COLORS[n], SEED_DASH[seed]) for n in (1, 4) for seed in (0, 1, 2)]
        if t in COMPUTE_CONTROLS:
            runs.append((COMPUTE_CONTROLS[t], "N = 1, seed 0, 4x tokens", COLORS[1], "dashdot"))
        for name, label, color, dash in runs:
            if name in curves:
                x, y = _xy(curves[name])
                fig.add_scatter(x=[v * compute.passes_per_token(curves[name]) for v in x], y=y, name=label,
                                legendgroup=label, showlegend=label not in {c[1] for c in drawn},
                                line=dict(color=color, dash=dash), row=1, col=col)
                drawn.append((name, label))
    if not drawn:
        return None
    fig.update_xaxes(title_text="compute: passes x tokens (M)")
    fig.update_yaxes(title_text="held-out exact accuracy", col=1)
    fig.update_layout(title=f"N = 1 and N = 4 at equal compute ({results.cards(curves, [c[0] for c in drawn])})")
    return fig


def recipe_study(curves: dict, t: int = 12, run_tokens: str | None = None):
    """Left: held-out exact against tokens for each recipe at N = 4 and the paper's N = 1, for the
    study's runs of depth ``t`` and one run length (``run_tokens``: "500M"; None: the 250 M runs).
    Middle and right: after the last evaluation, the features' RMS and the mean cosine between
    different tokens after each sleep pass: what each recipe does to the stream that passes feed back."""
    from plotly.subplots import make_subplots

    from ..tasks import get_task
    from .recipes import _NAME
    cells = sorted(c for c in curves if c.startswith(f"study-t{t}-") and _NAME.fullmatch(c).group(5) == run_tokens)
    if not cells:
        return None
    fig = make_subplots(rows=1, cols=3, column_widths=[0.5, 0.25, 0.25],
                        subplot_titles=[f"Rule 110, t = {t}: exact vs tokens", "h RMS after pass n",
                                        "token cosine after pass n"])
    recipes = sorted({_NAME.fullmatch(c).group(3) for c in cells} - {"paper"})
    palette = {"paper": _PALETTE[0], **dict(zip(recipes, _PALETTE[1:]))}  # the paper's recipe in black
    for cell in cells:
        _, n, recipe, seed, _ = _NAME.fullmatch(cell).groups()
        name = f"{recipe}, N = {n}" + ("" if curves[cell].get("done") else " (stopped)")
        style = dict(color=palette[recipe], dash={"1": "dash", "2": "dot"}.get(n, "solid"), width=3 if recipe == "paper" else 2)
        fig.add_scatter(x=_xy(curves[cell])[0], y=_xy(curves[cell])[1], name=name, line=style, legendgroup=cell,
                        row=1, col=1)
        passes = curves[cell]["points"][-1].get("passes", {})
        for col, key in ((2, "h_rms"), (3, "token_cos")):
            values = passes.get(key, [])
            fig.add_scatter(x=list(range(1, len(values) + 1)), y=values, line=style, legendgroup=cell,
                            showlegend=False, mode="lines+markers", row=1, col=col)
    task = get_task("rule110")
    blind = task.baselines(task.Config(t=t))["majority"]
    fig.add_hline(y=blind, line_dash="dot", line_color=COLORS["chance"], annotation_text="input-blind",
                  row=1, col=1)
    fig.update_xaxes(title_text="training tokens (M)", row=1, col=1)
    fig.update_xaxes(title_text="sleep pass n", dtick=1, row=1, col=2)
    fig.update_xaxes(title_text="sleep pass n", dtick=1, row=1, col=3)
    fig.update_yaxes(title_text="held-out exact accuracy", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="RMS of h", row=1, col=2)
    fig.update_yaxes(title_text="mean cosine", range=[0, 1], row=1, col=3)
    fig.update_layout(title=f"Recipe-study runs at t = {t} ({results.cards(curves, cells)})")
    return fig


def rule_ablation(curves: dict, t: int = 8, n: int = 2):
    import plotly.graph_objects as go
    rows = tables.ablation_table(curves, t=t, n=n)
    if not rows:
        return None
    fig = go.Figure()
    for r in rows:
        x, y = _xy(curves[r["cell"]])
        fig.add_scatter(x=x, y=y, name=r["rule"].replace("_", " "), line=dict(color=COLORS[r["rule"]]))
    fig.update_xaxes(title_text="training tokens (M)")
    fig.update_yaxes(title_text="held-out exact accuracy", range=[0, 1])
    fig.update_layout(title=f"Update rule, Rule 110 t = {t}, N = {n} ({results.cards(curves, [r['cell'] for r in rows])})")
    return fig


def depo_per_k(curves: dict):
    """Left: final query accuracy per hop count k for each N. Right: query accuracy while training."""
    from plotly.subplots import make_subplots

    from ..tasks import get_task
    shipped = [c for c in (curves.get(f"depo-n{n}") for n in (1, 2, 4)) if c]
    if not shipped:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=["final accuracy per hop count k", "while training"])
    for c in shipped:
        n = results.cell_info(c)["n_sleep"]
        by_k = tables.per_k(results.final(c))
        fig.add_scatter(x=list(by_k), y=list(by_k.values()), mode="lines+markers", name=f"N = {n}",
                        legendgroup=str(n), line=dict(color=COLORS.get(n)), row=1, col=1)
        x, y = _xy(c, key="per_query")
        fig.add_scatter(x=x, y=y, name=f"N = {n}", legendgroup=str(n), showlegend=False,
                        line=dict(color=COLORS.get(n)), row=1, col=2)
    task_args = shipped[0]["config"].get("task_args")
    chance = get_task("depo").baselines(get_task("depo").Config(**task_args), samples=256)["per_query"]["chance"]
    for col in (1, 2):
        fig.add_hline(y=chance, line_dash="dot", line_color="gray", row=1, col=col,
                      annotation_text="chance", annotation_position="top left")
    fig.update_xaxes(title_text="hop count k", type="log", tickvals=list(tables.DEPO_K), row=1, col=1)
    fig.update_xaxes(title_text="training tokens (M)", row=1, col=2)
    fig.update_yaxes(title_text="held-out query accuracy", range=[0, 1])
    fig.update_layout(title=f"Depo (scaled down): which hop counts each N learns "
                            f"({results.cards(curves, [c['cell'] for c in shipped])})")
    return fig


def _trained_range(cell: str, report: dict):
    """(t, (lo, hi)) of the N a cell trained with: a variable-N cell's range, (N, N) for a fixed N; from
    its definition (``cells.CELLS`` or a study cell's name), else from the checkpoint's name (t only)."""
    import re

    from .cells import CELLS
    from .recipes import study_config
    cfg = CELLS.get(cell) or (study_config(cell) if cell.startswith("study-") else None)
    if cfg is not None:
        n = cfg.model_args.get("n_sleep", 1)
        return cfg.task_args.get("t"), tuple(cfg.model_args.get("n_sleep_range") or (n, n))
    m = re.search(r"-t(\d+)-", Path(report.get("checkpoint", cell)).stem + "-")
    return (int(m[1]) if m else None), None


def test_time_n(reports: dict):
    """Held-out exact accuracy of each checkpoint against the N it is run with at test time, one panel
    per checkpoint (their accuracies differ too much for one axis), ±1 binomial standard error, the N
    it was trained with (a variable-N model's range) shaded."""
    from plotly.subplots import make_subplots
    rows = tables.table_test_time_n(reports)
    if not rows:
        return None
    trained_with = {c: _trained_range(c, reports[c]) for c in reports}   # (t, (lo, hi)) per checkpoint
    cells = sorted(reports, key=lambda c: (trained_with[c][0] or 0, c))
    titles = [f"Rule 110, t = {trained_with[c][0]}<br>{c}, {reports[c]['examples']:,} examples"
              if trained_with[c][0] else c for c in cells]
    n_cols = min(len(cells), 3)
    n_rows = -(-len(cells) // n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles, vertical_spacing=0.2)
    for i, cell in enumerate(cells):
        row, col = divmod(i, n_cols)
        row, col = row + 1, col + 1
        sel = [r for r in rows if r["cell"] == cell]
        fig.add_scatter(x=[r["n_sleep"] for r in sel], y=[r["exact"] for r in sel], mode="lines+markers",
                        name=cell, showlegend=False, line=dict(color=COLORS[2]),
                        error_y=dict(type="data", array=[r["se"] for r in sel], visible=True), row=row, col=col)
        _, trained = trained_with[cell]
        if trained:
            fig.add_vrect(x0=trained[0] - 0.5, x1=trained[1] + 0.5, fillcolor="gray", opacity=0.15, line_width=0,
                          annotation_text=(f"trained: N = {trained[0]}" if trained[0] == trained[1]
                                           else f"trained: N ~ U{{{trained[0]}..{trained[1]}}}"),
                          annotation_position="bottom left", row=row, col=col)
        fig.update_xaxes(tickvals=[r["n_sleep"] for r in sel], row=row, col=col)
    fig.update_xaxes(title_text="sleep passes N at test time")
    fig.update_yaxes(title_text="held-out exact accuracy (±1 s.e.)", col=1)
    fig.update_layout(title="One checkpoint, N moved at test time: does accuracy keep rising past the N it trained with?",
                      height=380 * n_rows + 140, margin=dict(t=140))
    return fig


def build(curves: dict, test_time: dict | None = None) -> dict:
    """``{png name: figure}`` for every figure with at least one shipped cell (``test_time``: the
    reports of ``tables.load_test_time_n``; None or empty leaves that figure out)."""
    figs = {"rule110_depth_sleep": depth_sleep(curves), "rule110_t8_seeds": seeds(curves),
            "rule110_t12_seeds": t12_study_seeds(curves), "rule110_t16_seeds": t16_study_seeds(curves),
            "rule110_t12_400M_seeds": t12_long_seeds(curves),
            "rule110_t8_study_seeds": seeds(curves, tokens=tables.STUDY_BUDGETS, matched=None, recipe="paper's recipe",
                                            cell=tables.study_cell(8), ns=(1, 2, 4)),
            "rule110_t8_rule_ablation": rule_ablation(curves), "depo_per_k": depo_per_k(curves),
            "rule110_test_time_n": test_time_n(test_time or {}), "rule110_recipe_study": recipe_study(curves),
            "rule110_compute_matched": compute_matched(curves), "rule110_where_sleep_pays": by_depth.figure(curves),
            **{f"rule110_t{t}_study": recipe_study(curves, t, run) for t, run in ((24, "500M"), (32, "1B"))}}
    return {name: fig for name, fig in figs.items() if fig is not None}
