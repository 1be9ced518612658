"""The GPU suite's log keeps what a killed run would lose: tests/gpu/conftest.py writes each test's
outcome, recorded margins and traceback as the test ends, before pytest's end-of-run summary."""
import shutil
import subprocess
import sys
from pathlib import Path

GPU_CONFTEST = Path(__file__).resolve().parent / "gpu" / "conftest.py"
TESTS = '''
def test_margin_recorded(record_property):
    record_property("weights_gap", 0.01234)

def test_fails():
    assert 1 == 2, "the reason"
'''


def test_gpu_suite_writes_outcomes_margins_and_tracebacks_as_each_test_ends(tmp_path):
    shutil.copy(GPU_CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(TESTS)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120).stdout
    summary = out.index("short test summary")
    passed = out.index("[gpu] test_probe.py::test_margin_recorded call: passed in 0 s (weights_gap 0.01234)")
    failed = out.index("[gpu] test_probe.py::test_fails call: failed")
    assert passed < failed < out.index("AssertionError: the reason") < summary
