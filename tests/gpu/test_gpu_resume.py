"""A `sleeplab train --fast` run on CUDA stopped by SIGTERM and resumed ends where an unbroken run ends.

On the CPU the same holds bit for bit (tests/test_checkpoint.py). On CUDA some backward kernels add with
atomics (the scatter of the scored positions' gradients, index_put with accumulate) in an order that
changes from run to run, so two unbroken runs already differ by float rounding, which training carries
forward. The test allows 1 % of the distance the steps after the stop moved the weights: a resume that
lost the optimiser state, replayed a batch or reset the schedule is off by that distance's order.
"""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from gpu_helpers import relative_gap
from sleeplab.checkpoint import load_checkpoint, read_manifest
from sleeplab.train.checkpoint import CHECKPOINT, METRICS
from test_checkpoint import tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU suite needs a CUDA device")

SAVE = 10  # both N (1 and 2) have their graphs captured by step 10: the stop falls among replays


def fast_config(path, out, steps):
    path.write_text(json.dumps(tiny(out, steps=steps, device="cuda", fast=True, precision="bf16",
                                    eval_every=SAVE, save_every=SAVE).to_dict()))
    return [sys.executable, "-m", "sleeplab.train.cli", "train", "--config", str(path)]


def test_fast_training_resumes_after_sigterm(tmp_path):
    run, unbroken = tmp_path / "run", tmp_path / "unbroken"
    proc = subprocess.Popen(fast_config(tmp_path / "long.json", run, 100_000),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600  # compiling the blocks takes about a minute
    while time.time() < deadline and proc.poll() is None:
        if (run / CHECKPOINT).exists() and read_manifest(run / CHECKPOINT)["step"] >= 3 * SAVE:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # the run saves the last finished step and exits with 143
    assert proc.wait() == 143, proc.stderr.read().decode()[-3000:]
    at_stop = load_checkpoint(run / CHECKPOINT)
    target = at_stop.step + 3 * SAVE
    subprocess.run(fast_config(tmp_path / "resume.json", run, target) + ["--resume"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(fast_config(tmp_path / "unbroken.json", unbroken, target), check=True, stdout=subprocess.DEVNULL)
    resumed, reference = load_checkpoint(run / CHECKPOINT), load_checkpoint(unbroken / CHECKPOINT)
    assert resumed.step == reference.step == target
    # measured against what the steps after the stop did to the weights
    floats = lambda ckpt: {k: v.float() for k, v in ckpt.model_state.items()}  # noqa: E731
    assert relative_gap(floats(resumed), floats(reference), floats(at_stop)) < 1e-2
    records = [[json.loads(line) for line in (out / METRICS).read_text().splitlines()] for out in (run, unbroken)]
    assert [r["step"] for r in records[0]] == [r["step"] for r in records[1]]
    for a, b in zip(*records):
        assert (a["loss"] is None) == (b["loss"] is None)
        if a["loss"] is not None:
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-2)
