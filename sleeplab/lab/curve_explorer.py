"""Notebook 05's explorer of the shipped Rule 110 training curves: one trace per run, one group of runs
shown at a time, on an axis of training tokens (the paper's comparison) or of compute (passes of the block
stack x tokens, ``repro.compute.passes_per_token``), with the input-blind level of each depth shown."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

from ..repro import compute, results, tables
from . import viz

X_AXES = ("training tokens", "compute (passes x tokens)")


def label(curve: dict) -> str:
    """A run as a legend names it: depth and N, with the 4x-tokens control and the recipe-study seed said."""
    info = results.cell_info(curve)
    if info["preset"].startswith("transformer"):
        return f"{info['preset']} (t = {info['t']})"
    extra = ", 4x tokens" if curve["cell"].endswith("x4tokens") else ""
    if curve["cell"].startswith("study-"):
        extra += f", seed {info['seed']}"
    return f"t = {info['t']}, N = {info['n_sleep']}{extra}"


def groups(curves: dict[str, dict]) -> dict[str, list[str]]:
    """The explorer's run groups, ``{name: [cell, ...]}``; every Rule 110 cell shipped is in the last."""
    study = lambda t, tokens="250M": [tables.study_cell(t, run_tokens=tokens)(n, s)  # noqa: E731
                                      for n in (1, 4) for s in (0, 1, 2)]
    return {
        "t = 8: N = 1, 2, 4": ["rule110-t8-n1", "rule110-t8-n2", "rule110-t8-n4"],
        "t = 12: N = 1, 2, 4": ["rule110-t12-n1", "rule110-t12-n2", "rule110-t12-n4"],
        "depth at N = 1 (the paper's Fig. 2a)": ["rule110-t8-n1", "rule110-t12-n1"],
        "t = 12: compute-matched control": ["rule110-t12-n1", "rule110-t12-n4", "rule110-t12-n1-x4tokens"],
        "one model for every N (N ~ U{1..4})": ["rule110-t8-nvar", "rule110-t12-nvar", "rule110-t8-n4", "rule110-t12-n4"],
        "t = 8: compute-matched control": ["rule110-t8-n1", "rule110-t8-n4", "rule110-t8-n1-x4tokens"],
        "t = 8: three seeds of N = 1 and N = 4": [results.cell_name(8, n, seed=s) for n in (1, 4) for s in (0, 1, 2)],
        "t = 8: update rule (N = 2)": [r["cell"] for r in tables.ablation_table(curves)],
        "t = 4 and t = 16: N = 1, 2, 4": [results.cell_name(t, n) for t in (4, 16) for n in (1, 2, 4)],
        "t = 12: recipe study (250 M tokens)": sorted(c for c in curves if c.startswith("study-t12-")
                                                     and results.cell_info(curves[c])["budget"] == "250M"),
        "t = 12: the paper's recipe, three seeds": study(12),
        "t = 16: the paper's recipe, 500 M tokens": study(16, "500M"),
        "attention-only controls (t = 8)": ["rule110-t8-transformer-evict", "rule110-t8-transformer-full", "rule110-t8-n1"],
        "all Rule 110 runs": rule110_cells(curves),
    }


def rule110_cells(curves: dict[str, dict]) -> list[str]:
    """Every Rule 110 cell of ``curves``, sorted (the file holds Depo runs too)."""
    return sorted(c for c in curves if results.cell_info(curves[c])["task"] == "rule110")


class CurveExplorer:
    """``figure()`` draws every run (hidden) and an input-blind line per depth of ``blind``;
    ``select(fig, group, x_axis)`` shows one group on one axis (the callback of ``viz.controls``).
    Groups' cells that are not shipped are skipped."""

    def __init__(self, curves: dict[str, dict], blind: dict[int, float]):
        self.curves, self.blind = curves, blind
        self.cells = rule110_cells(curves)
        self.groups = {name: shipped for name, cells in groups(curves).items()
                       if (shipped := [c for c in cells if c in curves])}
        palette = qualitative.D3
        self.color = {cell: palette[i % len(palette)] for i, cell in enumerate(self.cells)}

    def figure(self) -> go.Figure:
        fig = go.Figure()
        for cell in self.cells:
            pts = self.curves[cell]["points"]
            fig.add_trace(go.Scatter(x=[p["tokens"] / 1e6 for p in pts], y=[p["exact"] for p in pts],
                                     name=label(self.curves[cell]), mode="lines+markers", hovertext=cell,
                                     line=dict(color=self.color[cell], width=2.5,
                                               dash="dot" if "transformer" in cell else None)))
        for t, level in self.blind.items():   # one input-blind line per depth, shown with its runs
            fig.add_trace(go.Scatter(x=[0, 1], y=[level] * 2, mode="lines", name=f"input-blind level, t = {t} ({level:.1%})",
                                     line=dict(color=viz.COLORS["chance"], dash="dash", width=1)))
        fig.update_layout(template=viz.TEMPLATE, height=520, yaxis_title="exact accuracy (held-out, 2,048 examples)",
                          yaxis_range=[0, 1.02], legend=dict(orientation="h", y=-0.22))
        return fig

    def select(self, fig, group: str, x_axis: str) -> None:
        if group not in self.groups or x_axis not in X_AXES:
            raise ValueError(f"group {group!r} / x axis {x_axis!r}; allowed: {list(self.groups)} / {X_AXES}")
        chosen, by_compute, longest = self.groups[group], x_axis == X_AXES[1], 0.0
        for trace, cell in zip(fig.data, self.cells):
            scale = compute.passes_per_token(self.curves[cell]) if by_compute else 1.0
            trace.x = [p["tokens"] * scale / 1e6 for p in self.curves[cell]["points"]]
            trace.visible = cell in chosen
            if cell in chosen:
                longest = max(longest, trace.x[-1])
        depths = {results.cell_info(self.curves[c])["t"] for c in chosen}
        for trace, t in zip(fig.data[len(self.cells):], self.blind):
            trace.x, trace.visible = [0, longest], t in depths
        fig.layout.xaxis.title.text = ("compute: block-stack passes x tokens (millions)" if by_compute
                                       else "training tokens (millions)")
        fig.layout.xaxis.range = [0, longest * 1.03]
        finals = ", ".join(f"{label(self.curves[c])}: {results.final(self.curves[c])['exact']:.0%}" for c in chosen[:4])
        fig.layout.title.text = f"{group}<br><sup>final: {finals}{' ...' if len(chosen) > 4 else ''}</sup>"

    def shown(self, fig) -> list[str]:
        """The runs ``fig`` shows now."""
        return [cell for trace, cell in zip(fig.data, self.cells) if trace.visible]

    def depths_shown(self, fig) -> list[int]:
        """The depths whose input-blind line ``fig`` shows now."""
        return [t for trace, t in zip(fig.data[len(self.cells):], self.blind) if trace.visible]

    def ends(self, fig) -> dict[str, float]:
        """Each run's last x in ``fig`` (tokens or compute, in millions)."""
        return {cell: trace.x[-1] for trace, cell in zip(fig.data, self.cells)}
