"""What the training loop refuses without a per-step host sync: a non-finite loss (seen at the next
record) and, in the graphed step, a batch whose window layout differs from the captured plan."""
import json
import math
from types import SimpleNamespace

import pytest
import torch

import sleeplab.train.module as module
from sleeplab.tasks.base import Batch
from sleeplab.train import TrainConfig, train
from sleeplab.train.checkpoint import METRICS
from sleeplab.train.fast import GraphedStep


def tiny(out, **kw):
    return TrainConfig(task="rule110", task_args={"t": 1, "n_states": 2, "width": 8}, preset="hybrid",
                       model_args={"d_model": 16, "n_heads": 2}, batch_size=8, steps=4, warmup_steps=1,
                       eval_every=2, eval_size=16, device="cpu", threads=1, precision="fp32", out=str(out), **kw)


def test_a_non_finite_training_loss_stops_the_run_at_the_next_record(tmp_path, monkeypatch):
    real = module.make_step

    def diverging(*args, **kw):
        step = real(*args, **kw)
        return type("Diverging", (), {"__call__": lambda self, b, n, i: step(b, n, i) * math.nan,
                                      "check": lambda self: None, "release": lambda self: None})()
    monkeypatch.setattr(module, "make_step", diverging)
    with pytest.raises(ValueError, match=r"the training loss is nan over steps 0-1: training diverged"):
        train(tiny(tmp_path))
    records = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["step"] for r in records] == [0]  # the untrained record only; no NaN was written


def batch(scored):
    tokens = torch.zeros(2, 12, dtype=torch.long)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, scored] = True
    return Batch(tokens, mask, tokens.clone())


def loader():
    """A GraphedStep's batch loading alone, on the CPU (the step itself needs CUDA)."""
    step = GraphedStep.__new__(GraphedStep)
    step.model = SimpleNamespace(config=SimpleNamespace(window=4))
    step.device, step.static, step.plan, step.roles, step.layout_changed = torch.device("cpu"), None, None, None, None
    return step


def test_the_graphed_step_refuses_a_batch_with_another_window_layout():
    step = loader()
    step._load(batch([10, 11]))
    step._load(batch([9]))   # same windows scored: fine
    step.check()
    step._load(batch([5]))   # window 1 scored instead of window 2
    step._load(batch([10]))  # a good batch later does not hide the bad one
    with pytest.raises(ValueError, match=r"scored windows differ from the first batch's \(prediction windows starting at \[8\]\)"):
        step.check()


def test_compile_scratch_directory_is_made_once_per_process(monkeypatch):
    """Every fast step of a process compiles into one scratch directory of the process's own, so a
    benchmark or the GPU suite reuses the kernels its earlier steps compiled; the graph caches stay off."""
    import torch._inductor.config as inductor_config

    import sleeplab.train.fast as fast
    monkeypatch.setattr(fast, "_SCRATCH", [])
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    monkeypatch.setattr(inductor_config, "fx_graph_cache", True)
    fast._no_compile_caches()
    first = fast.os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert first != "/elsewhere" and "sleeplab-inductor-" in first and fast.os.path.isdir(first)
    fast.os.environ["TORCHINDUCTOR_CACHE_DIR"] = "/elsewhere"    # e.g. changed by other code in between
    fast._no_compile_caches()
    assert fast.os.environ["TORCHINDUCTOR_CACHE_DIR"] == first and inductor_config.fx_graph_cache is False
