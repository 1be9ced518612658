"""Real-browser tests: JupyterLab in headless Chromium, driven by pytest-playwright.

They prove what nbval cannot: that the widgets render in a real front end and a slider moved with the
keyboard redraws its plotly chart. They skip (not fail) where Chromium or Playwright is missing:
``apt-get install chromium`` and ``pip install playwright pytest-playwright`` (never `playwright
install`: we use Debian's Chromium through ``executable_path``).

Fixtures: ``lab_url`` (a JupyterLab server on a copy of notebooks/) and ``lab``, the helpers below as
one namespace (a fixture, so tests need no imports from this file):
``lab.run_notebook(page, lab_url, name)`` opens notebooks/<name> and runs all cells, waiting until they
finish without error; ``lab.live_plot(page)`` is the notebook's FigureWidget;
``lab.press_slider(page, index, key, times)`` moves a slider from the keyboard;
``lab.screenshot(target, name, tmp_path)`` saves a PNG (into $SLEEPLAB_SCREENSHOTS when set, e.g.
docs/screenshots).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM = shutil.which("chromium")  # Debian's chromium package puts it on PATH
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
HERE = Path(__file__).resolve().parent

try:
    import playwright  # noqa: F401
    import pytest_playwright  # noqa: F401
    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False
    collect_ignore_glob = ["test_*.py"]  # they import playwright at the top


def pytest_collection_modifyitems(config, items):
    # a session-wide hook: touch only the items of this folder
    if CHROMIUM is None:
        for item in items:
            if HERE in Path(str(item.fspath)).resolve().parents:
                item.add_marker(pytest.mark.skip(reason="Chromium not found: apt-get install chromium"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):  # pytest-playwright hook
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--disable-gpu", "--disable-quic", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):  # wide enough for side-by-side panels
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab_url(tmp_path_factory):
    """A JupyterLab server on a free loopback port, serving a temp COPY of notebooks/ (Lab autosaves
    executed notebooks, which must never reach the repository)."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    settings = root / ".jsettings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # the news toast ignores --LabApp.news_url=None; only a settings file silences it
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # render every cell: Lab 4 otherwise virtualises off-screen cells (empty prompts, nothing to check)
    tracker = root / ".jsettings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jcfg"), "JUPYTER_RUNTIME_DIR": str(root / ".jrt")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           f"--LabApp.user_settings_dir={root / '.jsettings'}", f"--LabApp.workspaces_dir={root / '.jws'}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        raise RuntimeError(f"jupyter lab did not start, see {root / 'jupyter.log'}")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# ---- helpers the tests import ----------------------------------------------------------------------

def run_notebook(page, lab_url: str, name: str, timeout_s: float = 600) -> None:
    """Open notebooks/<name> in Lab, Run All Cells, and wait until every cell has run without error."""
    from playwright.sync_api import expect
    page.goto(f"{lab_url}/lab/tree/{name}?reset")
    expect(page.locator("#jp-main-statusbar").get_by_text("Idle")).to_be_visible(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # done when every code cell shows an execution count "[n]:"
        texts = prompts.all_inner_texts()
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                              ":text-matches('Traceback|Error', 'i')")
        if errors.count():
            raise AssertionError(f"{name}: a cell failed:\n{errors.first.inner_text()[:2000]}")
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            return
        time.sleep(1)
    raise AssertionError(f"{name}: cells still running after {timeout_s} s: {prompts.all_inner_texts()}")


def live_plot(page):
    """The notebook's FigureWidget: the plotly chart that lives inside an ipywidgets box."""
    return page.locator(".widget-vbox .js-plotly-plot").first


def press_slider(page, index: int, key: str = "ArrowRight", times: int = 1) -> None:
    """Move the index-th ipywidgets slider with the keyboard (ipywidgets 8 sliders are noUiSlider)."""
    handle = page.locator(".widget-slider .noUi-handle").nth(index)
    handle.focus()
    for _ in range(times):
        page.keyboard.press(key)


def screenshot(target, name: str, tmp_path: Path) -> Path:
    """Save a PNG of a page or locator to $SLEEPLAB_SCREENSHOTS/<name>.png (or tmp_path)."""
    folder = Path(os.environ.get("SLEEPLAB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    target.screenshot(path=str(path))
    return path


@pytest.fixture(scope="session")
def lab():
    return SimpleNamespace(run_notebook=run_notebook, live_plot=live_plot, press_slider=press_slider,
                           screenshot=screenshot)
