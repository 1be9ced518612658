"""The GPU suite's log keeps what a killed run would lose: tests/gpu/conftest.py writes each test's
outcome, recorded margins and traceback as the test ends, before pytest's end-of-run summary."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GPU_CONFTEST = Path(__file__).resolve().parent / "gpu" / "conftest.py"
TESTS = '''
import logging

def test_margin_recorded(record_property):
    record_property("weights_gap", 0.01234)

def test_fails():
    trace = logging.getLogger("torch.__trace")
    trace.propagate, trace.level = True, logging.DEBUG   # as a torch that sets its logs up again leaves it
    trace.debug("%s-%s", "dropped", "record")   # formatted, so the traceback's source does not match
    logging.getLogger("sleeplab").warning("%s-%s", "kept", "record")
    assert 1 == 2, "the reason"
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])  # the README runs it under xdist
def test_gpu_suite_writes_outcomes_margins_and_tracebacks_as_each_test_ends(tmp_path, workers):
    shutil.copy(GPU_CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(TESTS)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *workers, str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120).stdout
    summary = out.index("short test summary")
    passed = out.index("[gpu] test_probe.py::test_margin_recorded call: passed in 0 s (weights_gap 0.01234)")
    failed = out.index("[gpu] test_probe.py::test_fails call: failed")
    assert passed < summary and failed < out.index("AssertionError: the reason") < summary  # workers: any order
    assert "kept-record" in out and "dropped-record" not in out   # torch's trace records are dropped
