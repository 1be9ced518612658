"""Notebook 04's measurements and figures: held-out accuracy per (checkpoint, N) with error bars, and
what each sleep pass changes in the fast weights S.

    acc = AccuracyCache(models, examples=256)
    acc("rule110-t8-n4-41M", 4)          # {"exact", "se", "n", "cached"}: computed once, then kept
    trace = pass_trace(model, tokens, 4)  # sleeplab.lab.probe: the one traced sleep loop
    fig = sleep_figure(points, traces, baseline)  # left: accuracy per N; right: ΔS of one pass
    show_pass(fig, points, traces, n, window, p)  # what the sliders call

ΔS is the change a pass makes, relative to the S that pass started from (``pass_trace``'s
``s_change``); for the first pass of a window that is the S that arrived from the previous window.
"""
from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..api import evaluate
from ..device import single_thread
from ..repro.results import standard_error
from ..tasks import held_out
from .viz import COLORS, TEMPLATE


class AccuracyCache:
    """Held-out exact accuracy of ``models[name]`` at N sleep passes, on the first ``examples`` of the
    fixed held-out set of the model's task config (the same examples for every model and N of one
    depth, so differences between N are paired). Each (checkpoint, N) is evaluated the first time it is
    asked for and kept; ``"cached"`` in the answer says whether this call reused an earlier result."""

    def __init__(self, models: dict, examples: int, chunk_size: int = 256):
        self.models, self.examples, self.chunk_size = models, examples, chunk_size
        self._sets, self._done = {}, {}

    def __call__(self, name: str, n: int) -> dict:
        if (name, n) in self._done:
            return {**self._done[name, n], "cached": True}
        model = self.models[name]
        key = tuple(sorted(vars(model.task_config).items()))
        if key not in self._sets:
            self._sets[key] = held_out(model.task, model.task_config, self.examples)
        with single_thread(model.device):
            exact = evaluate(model, self._sets[key], n, chunk_size=self.chunk_size)["exact"]
        self._done[name, n] = {"exact": exact, "se": standard_error(exact, self.examples), "n": self.examples}
        return {**self._done[name, n], "cached": False}


def delta_s(trace: dict, window: int, p: int, block: int = -1, head: int = 0, example: int = 0) -> torch.Tensor:
    """S after pass ``p`` (1-based) of sleep ``window`` minus the S that pass started from, for one head
    of one GDN block of one example: [K, V]. The first pass of a window starts from the previous
    window's last S (zero before window 0)."""
    S = trace["S"][:, :, block, example, head]                     # [W, N, K, V]
    after = S[window, p - 1]
    if p > 1:
        before = S[window, p - 2]
    else:
        before = S[window - 1, -1] if window > 0 else torch.zeros_like(after)
    return after - before


def sleep_figure(points: dict, traces: dict, blind: dict, gpu: dict | None = None) -> go.Figure:
    """Left: held-out exact accuracy against N, one model per N, ±1 binomial standard error;
    ``points = {t: {n: AccuracyCache answer}}``, ``blind = {t: input-blind exact accuracy}``,
    ``gpu = {t: {n: exact at the end of training on 2,048 examples}}``. Right: ΔS of one pass (set by
    :func:`show_pass`). The slider's N is ringed on the first depth of ``points``."""
    ts = list(points)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.16,
                        subplot_titles=("held-out exact accuracy, one model per N", "ΔS"))
    colors = [COLORS["fast_weights"], COLORS["attention"]]
    for t, color in zip(ts, colors):                                   # traces 0 .. len(ts)-1
        ns = list(points[t])
        fig.add_trace(go.Scatter(
            x=ns, y=[points[t][n]["exact"] for n in ns], mode="lines+markers", name=f"t = {t}, on this machine",
            line=dict(color=color, width=2.5), marker=dict(size=9),
            error_y=dict(array=[points[t][n]["se"] for n in ns], width=4)), 1, 1)
    for t, color in zip(ts, colors):
        fig.add_trace(go.Scatter(x=[0.6, 4.4], y=[blind[t]] * 2, mode="lines", hoverinfo="name",
                                 name=f"t = {t}: input-blind level ({blind[t]:.1%})",
                                 line=dict(color=color, dash="dash", width=1.5)), 1, 1)
    for t, color in zip(ts, colors):
        if gpu and gpu.get(t):
            fig.add_trace(go.Scatter(x=list(gpu[t]), y=list(gpu[t].values()), mode="markers",
                                     name=f"t = {t}, end of training on the GPU (2,048 examples)",
                                     marker=dict(symbol="diamond-open", size=12, color=color)), 1, 1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",  # ring
                             marker=dict(size=22, color="rgba(0,0,0,0)", line=dict(color="black", width=2))), 1, 1)
    first = traces[next(iter(traces))]
    fig.add_trace(go.Heatmap(z=delta_s(first, 0, 1).tolist(), colorscale="RdBu", reversescale=True, zmid=0,
                             colorbar=dict(title=dict(text="ΔS entry", side="right"), len=0.85, thickness=14)),
                  1, 2)
    fig.update_xaxes(title_text="N (sleep passes, trained and tested)", tickvals=[1, 2, 4], range=[0.6, 4.4],
                     row=1, col=1)
    fig.update_yaxes(title_text="exact accuracy (all 4 answers right)", range=[0, 1.02], tickformat=".0%",
                     row=1, col=1)
    fig.update_xaxes(title_text="value dimension v", row=1, col=2)
    fig.update_yaxes(title_text="key dimension k", autorange="reversed", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=620, margin=dict(t=120, b=40),
                      legend=dict(orientation="h", y=-0.22, x=0))
    fig.update_annotations(font_size=13)        # the two subplot titles: the ΔS one is long and changes
    return fig


def show_pass(fig, points: dict, traces: dict, n: int, window: int, p: int, names: dict | None = None) -> None:
    """Point :func:`sleep_figure` at the model with ``n`` passes (first depth of ``points``): ring its
    accuracy, and draw ΔS of pass ``p`` (clipped to 1..n) of sleep ``window`` (1-based). ``names``
    ({n: checkpoint}) names the model in the title."""
    t = next(iter(points))
    p = min(p, n)
    point, trace = points[t][n], traces[n]
    ring = fig.data[-2]
    ring.x, ring.y = [n], [point["exact"]]
    change = delta_s(trace, window - 1, p)
    fig.data[-1].z = change.tolist()
    top = float(change.abs().max())
    fig.data[-1].zmin, fig.data[-1].zmax = -top, top
    relative = float(trace["s_change"][window - 1, p - 1].mean())
    rel_text = "S arrived empty" if relative != relative else f"{relative:.0%} of ||S before||"
    fig.layout.annotations[1].text = f"ΔS in pass {p} of {n}, sleep {window}: {rel_text}"
    label = f" ({names[n]})" if names else ""
    fig.layout.title.text = (
        f"N = {n} sleep passes, t = {t}{label}: {point['exact']:.1%} ± {point['se']:.1%} exact on "
        f"{point['n']} held-out examples<br><sup>accuracies computed in this notebook and cached per (checkpoint, N); "
        f"heatmap: example 0, head 0 of the last GDN block</sup>")


def change_table_figure(traces: dict, title: str = "") -> go.Figure:
    """One heatmap per model (``traces = {label: pass_trace}``): sleep window (y) x pass (x), colour and
    text = ||ΔS|| / ||S before the pass|| in %, the mean over GDN blocks and examples. Window 1's first
    pass starts from an empty S and is left blank."""
    labels = list(traces)
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, horizontal_spacing=0.08)
    table = {k: 100 * tr["s_change"].mean(2) for k, tr in traces.items()}  # [W, N]
    top = max(float(v.nan_to_num(0).max()) for v in table.values())
    for i, k in enumerate(labels):
        z = table[k]
        W, N = z.shape
        fig.add_trace(go.Heatmap(
            z=z.tolist(), x=list(range(1, N + 1)), y=list(range(1, W + 1)), zmin=0, zmax=top,
            colorscale="Viridis", showscale=i == len(labels) - 1,
            colorbar=dict(title=dict(text="||ΔS|| / ||S before||, %", side="right")),
            text=[["" if v != v else f"{v:.0f}%" for v in row] for row in z.tolist()], texttemplate="%{text}",
            hovertemplate="sleep %{y}, pass %{x}: %{z:.0f} %<extra></extra>"), 1, i + 1)
        fig.update_xaxes(title_text="pass n", dtick=1, row=1, col=i + 1)
    fig.update_yaxes(title_text="sleep (window)", dtick=1, autorange="reversed", row=1, col=1)
    fig.update_yaxes(dtick=1, autorange="reversed")
    fig.update_layout(title=title, template=TEMPLATE, height=380, margin=dict(t=90, b=50))
    return fig


def longer_sleep_figure(points: dict, blind: float, trained: tuple, title: str = "") -> go.Figure:
    """Exact accuracy of one variable-N model against the N it is run with (``points = {n: AccuracyCache
    answer}``), ±1 standard error, the trained range shaded, and the input-blind level."""
    ns = list(points)
    fig = go.Figure(go.Scatter(x=ns, y=[points[n]["exact"] for n in ns], mode="lines+markers",
                               name="one model, N ~ U{%d..%d} in training" % trained,
                               line=dict(color=COLORS["sleep"], width=2.5),
                               error_y=dict(array=[points[n]["se"] for n in ns], width=4)))
    fig.add_hline(y=blind, line=dict(color=COLORS["chance"], dash="dash"),
                  annotation_text=f"input-blind level ({blind:.1%})", annotation_position="bottom right")
    fig.add_vrect(x0=trained[0] - 0.4, x1=trained[1] + 0.4, fillcolor=COLORS["sleep"], opacity=0.08,
                  line_width=0, annotation_text="N seen in training", annotation_position="bottom left")
    fig.update_layout(title=title, template=TEMPLATE, height=420, xaxis_title="N at test time (sleep passes)",
                      yaxis_title="exact accuracy (all 4 answers right)", yaxis_range=[0, 1.05],
                      yaxis_tickformat=".0%", xaxis_tickvals=ns, showlegend=True,
                      legend=dict(orientation="h", y=-0.2))
    return fig
