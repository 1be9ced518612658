"""In a real browser, the two notebooks whose live charts follow something other than a plain slider:
04's N slider moves between models, 05's dropdown between groups of training curves. A file of its own
so that CI's two workers (pytest-xdist, one file per worker) can run these and the slider notebooks
at the same time: each half runs its notebooks for about 7 minutes on a 2-core machine.
"""
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_sleep_notebook_n_slider_moves_accuracy_and_delta_s(page: Page, lab_url, lab, tmp_path):
    """The centre piece: moving N (the first slider, over the models N = 1, 2, 4) rings another model's
    accuracy (the title names N and its accuracy) and redraws ΔS for that model (its subplot title says
    which pass of how many it shows)."""
    lab.run_notebook(page, lab_url, "04_sleep.ipynb")
    plot = lab.live_plot(page)
    title = plot.locator(".gtitle")
    heatmap_title = plot.locator(".annotation-text", has_text="ΔS in pass")
    expect(title).to_have_text(re.compile(r"^N = 1 sleep passes, t = 8"), timeout=60_000)
    expect(heatmap_title).to_have_text(re.compile(r"^ΔS in pass 1 of 1, sleep 2"))
    lab.press_slider(page, 0, "ArrowRight", times=2)
    expect(title).to_have_text(re.compile(r"^N = 4 sleep passes, t = 8"), timeout=30_000)
    expect(heatmap_title).to_have_text(re.compile(r"^ΔS in pass 1 of 4, sleep 2"), timeout=30_000)
    plot.scroll_into_view_if_needed()
    lab.screenshot(plot, "04_sleep", tmp_path)


def test_05_reasoning_depth_dropdown_redraws_live_chart(page: Page, lab_url, lab, tmp_path):
    """05 has no slider: its live chart of training curves follows the run-group dropdown (the title
    names the group). The screenshot is the notebook's headline, the depth x sleep grid (plot 0)."""
    lab.run_notebook(page, lab_url, "05_reasoning_depth.ipynb")
    title = lab.live_plot(page).locator(".gtitle")
    expect(title).to_have_text(re.compile(r"^t = 8: N = 1, 2, 4"), timeout=30_000)
    page.locator(".widget-dropdown select").first.select_option(label="t = 12: compute-matched control")
    expect(title).to_have_text(re.compile(r"^t = 12: compute-matched control"), timeout=20_000)
    figure = page.locator(".js-plotly-plot").nth(0)
    figure.scroll_into_view_if_needed()
    lab.screenshot(figure, "05_reasoning_depth", tmp_path)
