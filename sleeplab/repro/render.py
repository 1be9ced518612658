"""Figures to PNG files: ``draw`` writes every figure of :func:`sleeplab.repro.figures.build` into
``docs/figures/`` (``python -m sleeplab.repro figures``), through headless Chromium (``screenshot``), so no
image-export package is needed."""
from __future__ import annotations

from pathlib import Path

from . import results, tables
from .figures import HEIGHT, build

WIDTHS = {"rule110_recipe_study": 1300, "rule110_depth_sleep": 1100, "rule110_t8_seeds": 1100,
          "rule110_t12_seeds": 1100, "rule110_t16_seeds": 1100, "rule110_t12_400M_seeds": 1100,
          "rule110_t8_study_seeds": 1100, "depo_per_k": 1100, "rule110_test_time_n": 1100,
          "rule110_compute_matched": 1300, "rule110_where_sleep_pays": 1000}


def screenshot(fig, png: Path, width=900, height=HEIGHT) -> bool:
    """plotly figure -> PNG through headless Chromium (no kaleido needed); False when Chromium is absent."""
    import shutil
    import subprocess
    import tempfile
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "fig.html"
        # a figure whose title sits above two-line panel titles asks for a taller top margin, and keeps it
        fig.update_layout(width=width, height=height, margin=dict(l=60, r=20, t=max(60, fig.layout.margin.t or 0), b=50))
        fig.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp}/u",
                        "--hide-scrollbars", f"--window-size={width + 20},{height + 20}",
                        f"--screenshot={png.resolve()}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    return png.exists()


def draw(curves_path: str = "data/results/curves.json", out_dir: str = "docs/figures",
         test_time_dir: str | None = None) -> list[Path]:
    """Re-draw the results figures of docs/results.md from the shipped curves and the test-time-N
    evaluations (``test_time_dir``, default ``test_time_n/`` beside the curves; absent: figure skipped)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test_time_dir = Path(curves_path).parent / tables.TEST_TIME_DIR if test_time_dir is None else test_time_dir
    paths = []
    for name, fig in build(results.load_curves(curves_path), tables.load_test_time_n(test_time_dir)).items():
        # a figure that sets its own height (one grown by rows of panels) keeps it
        if screenshot(fig, out / f"{name}.png", width=WIDTHS.get(name, 900), height=fig.layout.height or HEIGHT):
            paths.append(out / f"{name}.png")
    return paths
