"""A record's training loss is the mean of the losses of the steps since the last record, also when
the step returns one buffer that each later call overwrites, as a CUDA-graph step returns its graph's
output (which the CPU cannot capture, so a wrapper stands in for it here)."""
import json

import sleeplab.train.module as module
from sleeplab.train import train
from sleeplab.train.checkpoint import METRICS
from test_checkpoint import tiny


class OneBuffer:
    """The wrapped step, returning its loss in one tensor that every call overwrites."""

    def __init__(self, step):
        self.step, self.buffer = step, None

    def __call__(self, *args):
        loss = self.step(*args).detach()
        self.buffer = loss.clone() if self.buffer is None else self.buffer.copy_(loss)
        return self.buffer

    def __getattr__(self, name):  # check(), release(): the wrapped step's
        return getattr(self.step, name)


def losses(out):
    return [json.loads(line)["loss"] for line in (out / METRICS).read_text().splitlines()]


def test_recorded_loss_survives_a_step_that_reuses_its_output_buffer(tmp_path, monkeypatch):
    train(tiny(tmp_path / "plain"))
    make_step = module.make_step
    monkeypatch.setattr(module, "make_step", lambda *args, **kw: OneBuffer(make_step(*args, **kw)))
    train(tiny(tmp_path / "buffer"))
    plain = losses(tmp_path / "plain")
    assert sum(x is not None for x in plain) >= 2   # records with steps behind them, to compare
    assert losses(tmp_path / "buffer") == plain
