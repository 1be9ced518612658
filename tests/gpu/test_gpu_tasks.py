"""Every task generator runs on a CUDA generator, and its labels pass the same checks as on the CPU:
the CPU suite's task tests (which recompute every answer with an independent reference) rerun with
SLEEPLAB_TEST_DEVICE=cuda, which makes them draw every batch on the GPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sleeplab.tasks import TASKS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU suite needs a CUDA device")

TESTS = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_generators_run_on_cuda(name):
    task = TASKS[name]
    cfg = task.Config()
    batch = task.make_batch(cfg, 64, torch.Generator("cuda").manual_seed(0), split="train")
    assert batch.tokens.is_cuda and batch.targets.is_cuda and batch.loss_mask.is_cuda
    assert task.exact_match(batch.targets, batch)["exact"] == 1.0  # the targets score as their own answer
    # -k NAME: the task's own test file and its cases of the contract every task keeps. The project's
    # addopts are dropped: they name nbval, which a bare CUDA image lacks and these files do not need
    checks = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                             "-p", "no:randomly", "-k", name,
                             str(TESTS / f"test_tasks_{name}.py"), str(TESTS / "test_tasks_common.py")],
                            env={**os.environ, "SLEEPLAB_TEST_DEVICE": "cuda"}, capture_output=True, text=True)
    assert checks.returncode == 0, checks.stdout[-3000:]
