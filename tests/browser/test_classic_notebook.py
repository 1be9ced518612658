"""In classic Notebook 6.5 with Colab's widget stack (ipywidgets 7.7, plotly 5.24), the frontend nearest
to Colab's: a notebook runs top to bottom, every plotly figure it shows is drawn, its widgets render once
the widget manager attaches, and moving its first slider changes the plotly chart beside it. The chart is
plotly's FigureWidget or, with ``SLEEPLAB_STATIC_WIDGETS=1`` (what Colab gets), the core-widget fallback:
an ``ipywidgets.HTML`` holding an iframe whose page draws a static figure (``widgets.figure_frame``).

Run by the Colab job of ``.ci/run`` (``SLEEPLAB_CLASSIC=1``); skipped where Notebook 6 is not installed.
"""
import time

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# notebook, whether its kernel gets the core-widget fallback, and how many plotly figures it shows (the
# slider's included). 04 runs with the fallback, the figures Colab gets; 03 covers the live FigureWidget
# on ipywidgets 7. 04 live as well would add ~90 s to the Colab job for the FigureWidget path 03 drives.
CASES = [("04_sleep.ipynb", True, 5), ("03_fast_weight_capacity.ipynb", False, 3)]

# what a cell's plotly chart draws, as the markup of its SVG layers (traces, axes, titles); "" while
# there is none yet, e.g. while the fallback's new iframe is still loading its page
CHART_STATE = """cell => {
  const frame = cell.querySelector('iframe.sleeplab-figure');
  const root = frame ? frame.contentDocument : cell;
  const plot = root && root.querySelector('.js-plotly-plot');
  return plot ? Array.from(plot.querySelectorAll('.main-svg')).map(s => s.innerHTML).join('') : '';
}"""

# every plotly chart on the page, in the page itself or inside a fallback's iframe: is it drawn (an
# SVG layer of non-zero size)?
CHARTS_DRAWN = """() => {
  const docs = [document, ...Array.from(document.querySelectorAll('iframe.sleeplab-figure'))
                                 .map(f => f.contentDocument).filter(d => d)];
  return docs.flatMap(d => Array.from(d.querySelectorAll('.js-plotly-plot'))).map(p => {
    const svg = p.querySelector('.main-svg');
    return svg !== null && svg.getBoundingClientRect().height > 0;
  });
}"""


def run_all(page: Page, url: str, name: str, timeout_s: float = 600) -> None:
    """Open notebooks/<name>, wait for its kernel and widget manager, run every cell, and wait until all
    have run without an error (classic Notebook's own JavaScript API, ``Jupyter.notebook``, says so directly)."""
    page.goto(f"{url}/notebooks/{name}")
    page.wait_for_function("() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
                           " && Jupyter.notebook.kernel.is_connected() && Jupyter.notebook.kernel.widget_manager",
                           timeout=120_000)
    # Measured here: widgets displayed in the first seconds after the kernel connects stay empty (the
    # session re-announces its kernel, "SessionAlreadyStarting", and the widget manager attaches to the
    # new one); 10 s later every view renders, FigureWidget included.
    time.sleep(10)
    page.evaluate("() => Jupyter.notebook.execute_all_cells()")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        error = page.locator(".output_error")
        if error.count():
            raise AssertionError(f"{name}: a cell failed:\n{error.first.inner_text()[:2000]}")
        done = page.evaluate("() => Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code')"
                             ".every(c => typeof c.input_prompt_number === 'number')")
        if done:
            return
        time.sleep(1)
    raise AssertionError(f"{name}: cells still running after {timeout_s} s")


def wait_until(condition, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.5)


@pytest.mark.parametrize("name, static, figures", CASES,
                         ids=[f"{c[0][:2]}-{'static' if c[1] else 'live'}" for c in CASES])
def test_figures_draw_and_first_slider_changes_its_chart(page: Page, classic_server, lab, tmp_path,
                                                         name, static, figures):
    url = classic_server(static)
    run_all(page, url, name)
    slider = page.locator(".widget-hslider, .widget-slider").first     # rendered: the widget manager attached
    expect(slider).to_be_visible(timeout=60_000)
    cell = page.locator(".cell.code_cell", has=slider).first
    if static:   # the fallback: no FigureWidget anywhere, the chart is drawn inside the HTML widget's iframe
        expect(cell.locator(".widget-html iframe.sleeplab-figure")).to_have_count(1, timeout=60_000)
        assert page.locator(".widget-vbox .js-plotly-plot").count() == 0
    wait_until(lambda: cell.evaluate(CHART_STATE), f"{name}: the chart beside the first slider was not drawn", 60)
    drawn = []
    wait_until(lambda: drawn.append(page.evaluate(CHARTS_DRAWN)) or (len(drawn[-1]) >= figures and all(drawn[-1])),
               f"{name}: expected {figures} drawn plotly figures, found {drawn[-1] if drawn else None}", 60)
    before = cell.evaluate(CHART_STATE)
    handle = slider.locator(".ui-slider-handle").first                # ipywidgets 7: a jQuery UI slider
    handle.focus()
    page.keyboard.press("End")                                        # to the far end: surely a new value
    wait_until(lambda: cell.evaluate(CHART_STATE) not in ("", before),
               f"{name}: the chart beside the first slider did not change after the slider moved")
    box = cell.locator(".widget-vbox").first                          # sliders and chart: fits the viewport
    box.scroll_into_view_if_needed()
    lab.screenshot(box, f"classic-{name.removesuffix('.ipynb')}{'-static' if static else ''}", tmp_path)
