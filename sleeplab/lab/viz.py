"""Plotly figures shared by the notebooks, and the slider -> figure wiring.

Every function returns a plain ``go.Figure``: show it with ``fig.show()`` (a static, cheap output), or
wrap the ONE interactive figure of a notebook with :func:`live` and wire sliders to it with
:func:`controls` / :func:`link`. Those, the renderer choice (:func:`setup_figures`) and the static
fallback for frontends without plotly's widget live in :mod:`sleeplab.lab.widgets`; they are imported
here so a notebook needs ``viz`` alone.
"""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .widgets import (choice_slider, controls, int_slider, link, live, setup_figures,  # noqa: F401
                      static_widgets)

# One colour per idea, kept the same across notebooks so a reader learns them once.
COLORS = {
    "attention": "#d62728",      # full attention / KV cache: grows
    "window": "#ff7f0e",         # windowed attention (hard eviction): capped
    "fast_weights": "#1f77b4",   # GDN fast-weight state S: constant
    "hebbian": "#9467bd",
    "delta": "#1f77b4",
    "sleep": "#2ca02c",          # extra passes ("sleep")
    "chance": "#7f7f7f",
    "gated_delta": "#ef553b",
    # the reproduction's figures: one colour per N
    1: "#636efa", 2: "#ef553b", 4: "#00cc96",
}
TEMPLATE = "plotly_white"
_SEQUENCE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _colors(names) -> list[str]:
    """Named ideas keep their colour (COLORS); other series take the first palette colour not yet used."""
    fixed = [COLORS.get(n) for n in names]
    free = [c for c in _SEQUENCE if c not in fixed]
    out = []
    for i, color in enumerate(fixed):
        if color is None:
            color = free.pop(0) if free else _SEQUENCE[i % len(_SEQUENCE)]
        out.append(color)
    return out


def _as_list(matrix):
    """Tensors and arrays -> nested lists, so plotly never sees a torch type."""
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().float().cpu().numpy()
    return matrix.tolist() if hasattr(matrix, "tolist") else matrix


def heatmap(matrix, title: str = "", zmax: float | None = None, x_title: str = "value dim v",
            y_title: str = "key dim k", height: int = 380) -> go.Figure:
    """A fast-weight matrix (or any 2-D tensor) with a diverging colour scale centred at 0:
    red = positive, blue = negative, white = nothing stored there."""
    z = _as_list(matrix)
    fig = go.Figure(go.Heatmap(z=z, colorscale="RdBu", reversescale=True, zmid=0,
                               zmin=-zmax if zmax else None, zmax=zmax))
    fig.update_layout(title=title, template=TEMPLATE, height=height, xaxis_title=x_title,
                      yaxis_title=y_title, yaxis_autorange="reversed", margin=dict(t=60, b=40))
    return fig


def heatmaps(matrices: Sequence, titles: Sequence[str], zmax=None, title: str = "", height: int = 400,
             bars: dict | None = None, x_title: str = "value dim v", y_title: str = "key dim k",
             scale_title: str = "entry") -> go.Figure:
    """Heatmaps side by side (red = positive, blue = negative, white = 0; ``zmax`` one number shared by
    all panels, or one per panel, each with its own colour bar titled ``scale_title``), optionally
    followed by a grouped-bar panel ``bars = {"title", "x", "series": {name: ys}, "x_title", "range"}``."""
    cols = len(matrices) + (bars is not None)
    zmaxes = zmax if isinstance(zmax, (list, tuple)) else [zmax] * len(matrices)
    fig = make_subplots(rows=1, cols=cols, subplot_titles=list(titles) + ([bars["title"]] if bars else []),
                        horizontal_spacing=0.12)
    for i, (m, zm) in enumerate(zip(matrices, zmaxes)):
        right = fig.layout[f"xaxis{i + 1 if i else ''}"].domain[1]      # each bar just right of its panel
        fig.add_trace(go.Heatmap(z=_as_list(m), colorscale="RdBu", reversescale=True, zmid=0,
                                 zmin=-zm if zm else None, zmax=zm,
                                 colorbar=dict(x=right + 0.005, len=0.8, thickness=10,
                                               title=dict(text=scale_title, side="right"))), 1, i + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
        fig.update_xaxes(title_text=x_title, row=1, col=i + 1)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    if bars is not None:
        for (name, ys), color in zip(bars["series"].items(), _colors(bars["series"])):
            fig.add_trace(go.Bar(x=list(bars["x"]), y=list(ys), name=name, marker_color=color), 1, cols)
        fig.update_yaxes(range=bars.get("range"), row=1, col=cols)
        fig.update_xaxes(title_text=bars.get("x_title", ""), row=1, col=cols)
    fig.update_layout(title=title, template=TEMPLATE, height=height, margin=dict(t=90, b=40),
                      barmode="group", legend=dict(orientation="h", y=-0.2))
    return fig


def log_ticks(low: float, high: float) -> list:
    """1, 2, 5, 10, 20, ... from the decade at or below ``low`` to the one at or above ``high`` (> 0)."""
    if not 0 < low <= high:
        raise ValueError(f"log_ticks needs 0 < low <= high, got low={low!r}, high={high!r}")
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [m * 10.0 ** e for e in range(first, last + 1) for m in (1, 2, 5) if m * 10.0 ** e <= 10.0 ** last]


def lines(x, series: dict, title: str = "", x_title: str = "", y_title: str = "accuracy",
          chance: float | None = None, chance_label: str = "chance", log_x: bool = False,
          log_y: bool = False, y_range=None, height: int = 400, markers: bool = True) -> go.Figure:
    """Accuracy-vs-X (or anything-vs-X): one line per entry of ``series`` ({name: ys}, or
    {name: (xs, ys)} when series have their own x), plus a dashed chance line when given."""
    fig = go.Figure()
    for (name, ys), color in zip(series.items(), _colors(series)):
        xs = x
        if isinstance(ys, tuple):
            xs, ys = ys
        fig.add_trace(go.Scatter(x=list(xs), y=list(ys), name=name, mode="lines+markers" if markers else "lines",
                                 line=dict(color=color, width=2.5)))
    if isinstance(chance, (list, tuple)):  # chance that changes with x, e.g. 1/n for n candidates
        fig.add_trace(go.Scatter(x=list(x), y=list(chance), name=chance_label, mode="lines",
                                 line=dict(color=COLORS["chance"], dash="dash")))
    elif chance is not None:
        fig.add_hline(y=chance, line=dict(color=COLORS["chance"], dash="dash"),
                      annotation_text=chance_label, annotation_position="bottom right")
    fig.update_layout(title=title, template=TEMPLATE, height=height, xaxis_title=x_title,
                      yaxis_title=y_title, legend=dict(orientation="h", y=-0.2))
    if log_x:  # ticks at the measured x values: a log axis over one decade otherwise labels 2, 3, 4 ...
        fig.update_xaxes(type="log", tickvals=list(x) if x is not None else None)
    if log_y:  # ticks 1, 2, 5 per decade: plotly's own label 20 and 50 as a bare "2" and "5"
        ys = [v for trace in fig.data for v in trace.y if v is not None and v > 0]
        fig.update_yaxes(type="log", tickvals=log_ticks(min(ys), max(ys)) if ys else None)
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def timing_figure(rows: Sequence[dict], device_name: str = "", height: int = 430) -> go.Figure:
    """Two panels from :func:`sleeplab.measure.attention_cost` rows: time to read a context of T tokens
    (log-log, so a straight line's slope is the exponent) and the memory carried to the next token."""
    T = [r["T"] for r in rows]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "time to read T tokens (ms)", "memory carried to the next token"))
    timing = [("full attention", "attn_s", "attention"), ("attention, window L", "window_s", "window"),
              ("fast weights (GDN)", "gdn_s", "fast_weights")]
    memory = [("KV cache, full attention", "kv_bytes", "attention"),
              ("KV cache, window L", "window_kv_bytes", "window"),
              ("fast-weight state S", "state_bytes", "fast_weights")]
    for name, key, color in timing:
        fig.add_trace(go.Scatter(x=T, y=[r[key] * 1e3 for r in rows], name=name, legendgroup=color,
                                 mode="lines+markers", line=dict(color=COLORS[color], width=2.5)), 1, 1)
    for name, key, color in memory:
        fig.add_trace(go.Scatter(x=T, y=[r[key] for r in rows], name=name, legendgroup=color,
                                 mode="lines+markers", line=dict(color=COLORS[color], width=2.5, dash="dot"),
                                 hovertext=[_human_bytes(r[key]) for r in rows]), 1, 2)
    # the "you are here" markers the context-length slider moves (last two traces)
    for col in (1, 2):
        fig.add_trace(go.Scatter(x=[T[0]], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="black", width=2))),
                      1, col)
    fig.update_xaxes(type="log", title_text="context length T (tokens)")
    fig.update_yaxes(type="log", title_text="milliseconds", row=1, col=1)
    fig.update_yaxes(type="log", title_text="bytes", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=height, legend=dict(orientation="h", y=-0.25),
                      title=f"Attention cost vs context length{' on ' + device_name if device_name else ''}")
    return fig


def timing_marker(fig, rows: Sequence[dict], T: int) -> None:
    """Move the markers of :func:`timing_figure` to the row of context length ``T`` and say what it
    costs there."""
    r = next((row for row in rows if row["T"] == T), None)
    if r is None:
        raise ValueError(f"T={T} was not measured; measured: {[row['T'] for row in rows]}")
    fig.data[-2].x, fig.data[-2].y = [r["T"], r["T"]], [r["attn_s"] * 1e3, r["gdn_s"] * 1e3]
    fig.data[-1].x, fig.data[-1].y = [r["T"], r["T"]], [r["kv_bytes"], r["state_bytes"]]
    fig.layout.title.text = (f"T = {r['T']} tokens: attention {r['attn_s'] * 1e3:.1f} ms, "
                             f"{_human_bytes(r['kv_bytes'])} of KV cache<br><sup>fast weights "
                             f"{r['gdn_s'] * 1e3:.1f} ms, {_human_bytes(r['state_bytes'])} of state S</sup>")


# ---- what can reach a prediction (measure.influence) ---------------------------------------------------

FLOOR = 1e-9  # where exact zeros are drawn on a log axis ("no path at all")


def _floored(column) -> list:
    return [max(float(x), FLOOR) for x in column]


def influence_maps(maps: dict, window: int, height: int = 360) -> go.Figure:
    """One panel per model: log10 of how much changing token p (y) moves the logits at position t (x).
    White = exactly zero: no path from p to t. Dotted lines mark the window boundaries."""
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(maps), horizontal_spacing=0.04,
                        shared_yaxes=True)
    for i, m in enumerate(maps.values()):
        z = m.clamp_min(1e-300).log10().masked_fill(m == 0, float("nan"))
        fig.add_trace(go.Heatmap(z=_as_list(z), colorscale="Viridis", zmin=-6, zmax=0, showscale=(i == 0),
                                 colorbar=dict(title="log10 |Δ logit|", len=0.9)), 1, i + 1)
        T = m.shape[0]
        for b in range(window, T, window):
            fig.add_vline(x=b - 0.5, line=dict(color="grey", dash="dot", width=1), row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed", title_text="changed token p", row=1, col=1)
    fig.update_xaxes(title_text="prediction at position t")
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(t=60, b=50),
                      title="Which tokens can change which predictions?")
    return fig


def influence_lines(maps: dict, window: int, height: int = 420) -> go.Figure:
    """For one prediction position (set with :func:`influence_at`): the influence of every earlier token,
    one line per model, on a log axis whose floor means 'exactly zero'."""
    fig = go.Figure()
    T = next(iter(maps.values())).shape[0]
    for i, name in enumerate(maps):
        fig.add_trace(go.Scatter(x=list(range(T)), y=[FLOOR] * T, name=name, mode="lines",
                                 line=dict(color=_SEQUENCE[i % len(_SEQUENCE)], width=2.5)))
    fig.add_trace(go.Scatter(x=[0, 0], y=[FLOOR, 10], mode="lines", showlegend=False, hoverinfo="skip",
                             line=dict(color="black", width=1)))           # "you are here"
    for b in range(window, T, window):
        fig.add_vline(x=b - 0.5, line=dict(color="grey", dash="dot", width=1))
    # annotations on a log axis take log10 coordinates
    fig.add_annotation(x=0, y=math.log10(FLOOR), text="exactly 0: no path", showarrow=False, yshift=10,
                       xanchor="left", font=dict(color=COLORS["chance"]))
    fig.update_yaxes(type="log", range=[-9.5, 1], title_text="|Δ logit| when this token changes")
    fig.update_xaxes(title_text="changed token p (dotted: window boundaries)", range=[-1, T])
    fig.update_layout(template=TEMPLATE, height=height, legend=dict(orientation="h", y=-0.2))
    return fig


def influence_at(fig, maps: dict, t: int) -> None:
    """Show, on :func:`influence_lines`, which tokens reach the prediction at position ``t``."""
    for i, m in enumerate(maps.values()):
        fig.data[i].y = _floored(m[:, t])
    fig.data[-1].x = [t, t]
    blind = [name for name, m in maps.items() if (m[:t + 1, t] == 0).any()]
    seen = f"blind to some earlier tokens: {', '.join(blind)}" if blind else "every model sees every earlier token"
    fig.layout.title.text = f"prediction at position {t}: {seen}"
