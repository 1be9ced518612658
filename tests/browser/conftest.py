"""Real-browser tests: JupyterLab in headless Chromium, driven by pytest-playwright.

They prove what nbval cannot: that the widgets render in a real front end and a slider moved with the
keyboard redraws its plotly chart. Where Chromium or Playwright is missing they skip, except under
``CI=true``, where they fail: a CI that cannot run them must say so. ``apt-get install chromium`` and
``pip install playwright pytest-playwright`` (never `playwright install`: we use Debian's Chromium through
``executable_path``).

``test_classic_notebook.py`` drives classic Notebook 6.5 instead of Lab, the frontend nearest to Colab's;
it needs the Colab-pinned stack (``notebook<7``, ipywidgets 7), which the Colab job of ``.ci/run`` installs
in ``.venv-colab`` and runs with ``SLEEPLAB_CLASSIC=1`` (then a missing Notebook 6 fails instead of skipping).

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

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

try:
    import playwright  # noqa: F401
    import pytest_playwright  # noqa: F401
except ImportError:
    if IN_CI:  # aborts the session with this message instead of skipping the suite
        raise pytest.UsageError("CI is set but Playwright is missing, so the browser tests cannot run: "
                                "pip install playwright pytest-playwright") from None
    collect_ignore_glob = ["test_*.py"]  # they import playwright at the top


@pytest.fixture(scope="session", autouse=True)  # session: before pytest-playwright's browser launches
def _chromium():
    """Every test here needs Chromium: skip without it, or fail under CI."""
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("Chromium not found, and CI is set, so the browser tests must run: apt-get install chromium")
        pytest.skip("Chromium not found: apt-get install chromium")


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


def _copy_notebooks(root: Path) -> None:
    # a temp COPY: the frontends autosave executed notebooks, which must never reach the repository
    shutil.copytree(NOTEBOOKS, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def serve(cmd: list, root: Path, env: dict, url: str):
    """Start a Jupyter server, wait until ``url``/api/status answers, and return the process."""
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            return proc
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"{cmd[2]} did not start, see {root / 'jupyter.log'}")


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    proc.log.close()


@pytest.fixture(scope="session")
def lab_url(tmp_path_factory):
    """A JupyterLab server on a free loopback port, serving a temp copy of notebooks/."""
    root = tmp_path_factory.mktemp("lab")
    _copy_notebooks(root)
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
    url = f"http://127.0.0.1:{port}"
    proc = serve(cmd, root, env, url)
    yield url
    stop(proc)


@pytest.fixture(scope="session")
def classic_server(tmp_path_factory):
    """``classic_server(static)``: the URL of a classic Notebook 6 server on a copy of notebooks/, one
    per value of ``static`` (whether its kernels get ``SLEEPLAB_STATIC_WIDGETS=1``, the core-widget
    fallback of the live figures). Skips without Notebook 6, or fails under ``SLEEPLAB_CLASSIC=1``."""
    try:
        import notebook
        major = int(notebook.__version__.split(".")[0])
    except ImportError:
        major = None
    if major != 6:
        why = f"classic Notebook 6 is not installed (notebook {'absent' if major is None else major}.x)"
        if os.environ.get("SLEEPLAB_CLASSIC") == "1":
            pytest.fail(f"{why}, but SLEEPLAB_CLASSIC=1: the Colab job must run it (pip install notebook==6.5.7)")
        pytest.skip(f"{why}: the Colab job of .ci/run runs this test")
    servers = {}

    def start(static: bool) -> str:
        if static not in servers:
            root = tmp_path_factory.mktemp("classic-static" if static else "classic")
            _copy_notebooks(root)
            port = _free_port()
            env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jcfg"), "JUPYTER_RUNTIME_DIR": str(root / ".jrt"),
                   "SLEEPLAB_STATIC_WIDGETS": "1" if static else "0"}
            cmd = [sys.executable, "-m", "notebook", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                   f"--port={port}", "--NotebookApp.token=", "--NotebookApp.password=",
                   f"--NotebookApp.notebook_dir={root}", "--NotebookApp.open_browser=False"]
            url = f"http://127.0.0.1:{port}"
            servers[static] = (url, serve(cmd, root, env, url))
        return servers[static][0]

    yield start
    for _, proc in servers.values():
        stop(proc)


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
