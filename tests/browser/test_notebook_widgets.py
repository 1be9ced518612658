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
