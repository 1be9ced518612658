"""How the notebooks show figures: the renderer for static figures, and sliders wired to a live figure.

Two ways to make a figure follow a slider, chosen by :func:`static_widgets`:

* live (default): the figure is a plotly ``FigureWidget`` updated in place. It needs plotly's custom
  widget in the frontend; JupyterLab and classic Notebook have it.
* static fallback (on Colab, or with ``SLEEPLAB_STATIC_WIDGETS=1``): the figure stays a plain
  ``go.Figure``; a move of the slider updates it and redraws it as a self-contained page in an
  ``<iframe>`` held by an ``ipywidgets.HTML`` (:func:`figure_frame`). Only core widgets are involved,
  so no custom widget manager is needed (Colab's cannot render ``FigureWidget``).

  Not an ``ipywidgets.Output`` with ``fig.show()`` inside: in classic Notebook 6.5 with Colab's
  widgetsnbextension 3.6.10 no Output widget can be created at all (its ``OutputModel`` is a Backbone
  ``extend`` of an ES6 class, which loses the static ``_deserialize_state``: "Could not create a
  model"), so the box holding it, sliders included, never renders and the figure spills into the cell.
  An HTML widget sets ``innerHTML``, which runs no ``<script>``; an iframe's document does.

Both ways call the same ``update(fig, *values)``, so a notebook's logic does not know which runs.
Widget API: only what ipywidgets 7.6 already had (``IntSlider``, ``SelectionSlider``, ``VBox``,
``HTML``, ``observe``), so the same code runs on ipywidgets 7.7 (Colab) and 8.
"""
from __future__ import annotations

import html
import os
import sys
from typing import Callable, Sequence

import plotly.graph_objects as go

STATIC_ENV = "SLEEPLAB_STATIC_WIDGETS"


def in_colab() -> bool:
    return "google.colab" in sys.modules


def static_widgets() -> bool:
    """True where the live ``FigureWidget`` cannot render: on Colab, or when ``$SLEEPLAB_STATIC_WIDGETS``
    says so ("1"/"true"; "0"/"false" forces the live widget even on Colab)."""
    env = os.environ.get(STATIC_ENV, "").strip().lower()
    if env:
        return env not in ("0", "false", "no")
    return in_colab()


def setup_figures() -> str:
    """Choose the renderer of static figures (``fig.show()``) once per notebook, and return its name.

    Outside Colab: ``plotly_mimetype+notebook``. JupyterLab draws the plotly mime type with the
    extension that ships inside the plotly package; classic Notebook draws the HTML part, whose
    plotly.js is embedded in the notebook when the renderer activates (``connected=False``), so neither
    needs a network. (Inside a kernel plotly's own default is the mime type alone, which classic
    Notebook cannot draw.) On Colab, plotly's ``colab`` renderer, which Colab's frontend understands.
    """
    import plotly.io as pio
    pio.renderers.default = "colab" if in_colab() else "plotly_mimetype+notebook"
    return pio.renderers.default


def figure_frame(fig: go.Figure) -> str:
    """``fig`` as an ``<iframe>`` whose ``srcdoc`` is a whole page drawing it, for an ``ipywidgets.HTML``.

    Outside Colab plotly.js (~4.5 MB) is inlined, so the figure draws offline; that is resent on every
    redraw, cheap over a local kernel's websocket. On Colab, whose kernel is remote but whose browser is
    online, the page loads plotly.js from plotly's CDN instead (cached after the first redraw)."""
    if not isinstance(fig, go.Figure):
        raise TypeError(f"figure_frame draws a plotly go.Figure, got {type(fig).__name__}")
    height = fig.layout.height or 450                                  # plotly's own default height
    body = fig.to_html(full_html=False, include_plotlyjs="cdn" if in_colab() else True,
                       default_width="100%", default_height=f"{height}px", config={"responsive": True})
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>html, body {{ margin: 0; }}</style>"
            f"</head><body>{body}</body></html>")
    return (f'<iframe class="sleeplab-figure" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width: 100%; height: {height}px; border: 0; display: block"></iframe>')


def live(fig: go.Figure, width: int | None = 960):
    """The notebook's single ``FigureWidget`` (each ships plotly's 5 MB bundle over the websocket, so
    notebooks keep to one and update it in place); under :func:`static_widgets`, ``fig`` itself. A
    FigureWidget does not stretch to its cell the way a static figure does (it falls back to 700 px),
    so it gets a width that fits JupyterLab, Colab and a laptop screen."""
    if static_widgets():
        return fig
    widget = go.FigureWidget(fig)
    if width is not None and widget.layout.width is None:
        widget.layout.width = width
    return widget


def int_slider(description: str, minimum: int, maximum: int, value: int | None = None, step: int = 1):
    """An ``IntSlider`` that only fires on release of a drag (``continuous_update=False``) — each
    update recomputes or redraws a figure, and a kernel flooded with events feels broken."""
    import ipywidgets as widgets
    return widgets.IntSlider(value=minimum if value is None else value, min=minimum, max=maximum, step=step,
                             description=description, continuous_update=False,
                             style={"description_width": "initial"},
                             layout=widgets.Layout(width="60%"))


def choice_slider(description: str, options: Sequence, value=None):
    """A slider over a list of values (e.g. the measured context lengths 128, 256, ... 4096), showing
    the value itself rather than its index."""
    import ipywidgets as widgets
    return widgets.SelectionSlider(options=list(options), value=options[0] if value is None else value,
                                   description=description, continuous_update=False,
                                   style={"description_width": "initial"}, layout=widgets.Layout(width="60%"))


def controls(sliders: Sequence, fig, update: Callable):
    """Redraw ``fig`` whenever one of ``sliders`` (or any widget with a ``value``, e.g. ToggleButtons)
    moves: ``update(fig, *values)`` with their values in order. A ``FigureWidget`` is updated in place
    inside ``batch_update()`` (one redraw per move); a plain ``go.Figure`` (the static fallback) is
    updated, then drawn afresh into an ``ipywidgets.HTML`` (:func:`figure_frame`). Runs once now so
    figure and sliders agree from the start. Returns a ``VBox`` to display (or to nest in another box);
    its last child is the figure (or the ``HTML`` drawing it). Setting ``slider.value`` from Python
    triggers the same update, which is how the notebooks check the wiring without a browser."""
    import ipywidgets as widgets
    if not isinstance(fig, (go.Figure, go.FigureWidget)):
        raise TypeError(f"controls redraws a plotly go.Figure or FigureWidget, got {type(fig).__name__}")
    sliders = list(sliders)
    shown = fig if isinstance(fig, go.FigureWidget) else widgets.HTML(layout=widgets.Layout(width="100%"))

    def redraw(_=None):
        with fig.batch_update():
            update(fig, *[s.value for s in sliders])
        if shown is not fig:
            shown.value = figure_frame(fig)

    redraw()
    for s in sliders:
        s.observe(redraw, names="value")
    return widgets.VBox([*sliders, shown])


def link(slider, fig, update: Callable[[object, object], None]):
    """:func:`controls` for one slider: ``update(fig, value)``."""
    return controls([slider], fig, update)
