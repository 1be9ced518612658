"""How the notebooks show figures: the renderer for static figures, and sliders wired to a live figure.

Two ways to make a figure follow a slider, chosen by :func:`static_widgets`:

* live (default): the figure is a plotly ``FigureWidget`` updated in place. It needs plotly's custom
  widget in the frontend; JupyterLab and classic Notebook have it.
* static fallback (on Colab, or with ``SLEEPLAB_STATIC_WIDGETS=1``): the figure stays a plain
  ``go.Figure``; a move of the slider updates it and redraws it with ``fig.show()`` into an
  ``ipywidgets.Output``. Only core widgets are involved, so no custom widget manager is needed (Colab's
  cannot render ``FigureWidget``).

Both ways call the same ``update(fig, *values)``, so a notebook's logic does not know which runs.
Widget API: only what ipywidgets 7.6 already had (``IntSlider``, ``SelectionSlider``, ``VBox``,
``Output``, ``observe``), so the same code runs on ipywidgets 7.7 (Colab) and 8.
"""
from __future__ import annotations

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
    """Redraw ``fig`` whenever one of ``sliders`` moves: ``update(fig, *values)`` with the sliders'
    values in order. A ``FigureWidget`` is updated in place inside ``batch_update()`` (one redraw per
    move); a plain ``go.Figure`` (the static fallback) is updated, then shown afresh in an ``Output``.
    Runs once now so figure and sliders agree from the start. Returns a ``VBox`` to display; its last
    child is the figure (or the ``Output`` showing it). Setting ``slider.value`` from Python triggers
    the same update, which is how the notebooks check the wiring without a browser."""
    import ipywidgets as widgets
    sliders = list(sliders)
    shown = fig if isinstance(fig, go.FigureWidget) else widgets.Output()

    def redraw(_=None):
        with fig.batch_update():
            update(fig, *[s.value for s in sliders])
        if shown is not fig:
            with shown:
                shown.clear_output(wait=True)
                fig.show()

    redraw()
    for s in sliders:
        s.observe(redraw, names="value")
    return widgets.VBox([*sliders, shown])


def link(slider, fig, update: Callable[[object, object], None]):
    """:func:`controls` for one slider: ``update(fig, value)``."""
    return controls([slider], fig, update)
