"""The GPU suite reuses the CPU suite's helpers (``from test_checkpoint import tiny``): pytest puts only
this folder on sys.path when it is run alone, so the folder above goes there too.

Each test's outcome, its measured margins (``record_property``) and, for a failure, its traceback are
written to the terminal as soon as the test ends, not in the summary at the end: a device command that
hits its time limit mid-suite kills pytest before the summary, and twice that lost the tracebacks of
the only failures."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# torch's structured-trace logger emits thousands of empty DEBUG records while inductor compiles; pytest
# captured them into every failing test's report, which pushed the tracebacks out of a device log's
# tail. Setting propagate = False did not stop them on the H100 (torch may set it again when it sets
# up its logs); a filter on the logger drops them before any handler. The suite never writes a trace.
logging.getLogger("torch.__trace").addFilter(lambda record: False)


_config = []   # pytest's config, once configured: its terminal reporter writes past the output capture


def pytest_configure(config):
    _config.append(config)


def pytest_runtest_logreport(report):
    """Runs in the controlling process (also under pytest-xdist, which sends it the workers' reports)."""
    terminal = _config[0].pluginmanager.get_plugin("terminalreporter") if _config else None
    if terminal is None or (report.when != "call" and not report.failed):
        return
    margins = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in report.user_properties)
    terminal.write_line(f"[gpu] {report.nodeid} {report.when}: {report.outcome} in {report.duration:.0f} s"
                        + (f" ({margins})" if margins else ""))
    if report.failed:
        terminal.write_line(report.longreprtext)
