"""In a real browser, each notebook runs top to bottom and its slider redraws its live chart.

Set SLEEPLAB_SCREENSHOTS=docs/screenshots to refresh the screenshots of each notebook's main figure.
"""
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# notebook; key pressed on its first slider; live-chart title before and after; which plot (in page
# order) is the notebook's main figure, for the screenshot; then keys that move to a telling state
CASES = [
    ("01_attention_cost.ipynb", "ArrowRight", r"^T = 128 tokens", r"^T = 256 tokens", 0, ["End"]),
    ("02_eviction_failure.ipynb", "ArrowLeft", r"^prediction at position 144", r"^prediction at position 143",
     0, []),
    ("03_fast_weight_capacity.ipynb", "ArrowRight", r"^pass 1 of 4, pair 0 written",
     r"^pass 1 of 4, pair 1 written", 0, ["PageUp"] * 3),
    # 06 trains two tiny models live (~80 s on CPU) before its last cells finish; its first slider is k (hops)
    ("06_depo_multihop.ipynb", "ArrowRight", r"^1 hop after", r"^2 hops after", 0, ["ArrowRight"]),
    # 07: the first slider is n_ops (4 by default); at 3 operations the statements keep their labels
    ("07_gsm_infinite.ipynb", "ArrowLeft", r"^4 operations, depth", r"^3 operations, depth", 0, []),
]


@pytest.mark.parametrize("name, key, before, after, main, more", CASES, ids=[c[0][:2] for c in CASES])
def test_slider_redraws_live_chart(page: Page, lab_url, lab, tmp_path, name, key, before, after, main, more):
    lab.run_notebook(page, lab_url, name)
    title = lab.live_plot(page).locator(".gtitle")
    expect(title).to_have_text(re.compile(before), timeout=30_000)
    lab.press_slider(page, 0, key)
    expect(title).to_have_text(re.compile(after), timeout=20_000)
    for extra in more:
        lab.press_slider(page, 0, extra)
    if more:  # the chart follows the slider wherever it goes
        expect(title).not_to_have_text(re.compile(after), timeout=20_000)
    figure = page.locator(".js-plotly-plot").nth(main)
    figure.scroll_into_view_if_needed()
    lab.screenshot(figure, name.removesuffix(".ipynb"), tmp_path)


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
