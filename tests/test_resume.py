"""Resuming checks everything a run depends on and survives a run killed mid-write; where a copy
without git gets its commit from."""
import json

import pytest

from sleeplab.checkpoint import code_version, read, write
from sleeplab.train import TrainConfig, train
from sleeplab.train.checkpoint import CHECKPOINT, METRICS


def tiny(out, **kw):
    base = dict(task="rule110", task_args={"t": 1, "n_states": 2, "width": 8}, preset="sleep",
                model_args={"d_model": 16, "n_heads": 2}, batch_size=8, steps=2, warmup_steps=1,
                eval_every=1, eval_size=16, device="cpu", threads=1, precision="fp32", out=str(out))
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny(out))
    return out


def forged(finished, tmp_path, section, field, value):
    """A copy of the run whose checkpoint has one config field changed, under a valid checksum."""
    out = tmp_path / "run"
    out.mkdir()
    (out / METRICS).write_text((finished / METRICS).read_text())
    header, tensors = read(finished / CHECKPOINT)
    header["manifest"][section][field] = value
    write(out / CHECKPOINT, "checkpoint", header["manifest"], tensors)
    return out


@pytest.mark.parametrize("section, field, value", [("model_config", "eviction", "sliding"),
                                                   ("task_config", "boundary", "zero")])
def test_resume_refuses_a_changed_model_or_task_config(finished, tmp_path, section, field, value):
    out = forged(finished, tmp_path, section, field, value)
    with pytest.raises(ValueError, match=rf"cannot resume .*its {section} differs .*\['{field}'\]"):
        train(tiny(out, steps=3), resume=True)


def test_resume_drops_a_torn_last_metrics_line_with_a_warning(finished, tmp_path):
    out = forged(finished, tmp_path, "task_config", "t", 1)  # an unchanged copy
    lines = (out / METRICS).read_text().splitlines()
    (out / METRICS).write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # killed mid-write
    with pytest.warns(UserWarning, match=rf"{METRICS}: dropped its torn last line 3"):
        result = train(tiny(out, steps=3), resume=True)
    assert [r["step"] for r in result.metrics] == [0, 1, 3]  # the torn record of step 2 is not re-made
    assert all(json.loads(line) for line in (out / METRICS).read_text().splitlines())


def test_resume_refuses_a_damaged_metrics_line_before_the_last(finished, tmp_path):
    out = forged(finished, tmp_path, "task_config", "t", 1)
    lines = (out / METRICS).read_text().splitlines()
    (out / METRICS).write_text("\n".join([lines[0][:10]] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=rf"{METRICS} line 1 is not valid JSON"):
        train(tiny(out, steps=3), resume=True)


@pytest.mark.parametrize("git", [False, True], ids=["no-git", "git-answers"])
def test_the_commit_named_in_the_environment_wins(monkeypatch, git):
    """Also where git answers: a copy's git directory may be older than its files."""
    monkeypatch.setenv("SLEEPLAB_COMMIT", "6404e76")
    if not git:
        monkeypatch.setenv("PATH", "")
    code_version.cache_clear()
    try:
        assert code_version()["commit"] == "6404e76" and code_version()["dirty"] is None
    finally:
        code_version.cache_clear()


def test_the_manifest_fills_a_missing_commit_only_when_given_one(finished, tmp_path):
    from sleeplab.repro import cells
    header, tensors = read(finished / CHECKPOINT)
    header["manifest"]["code"] = {**header["manifest"]["code"], "commit": None, "dirty": None}
    write(tmp_path / "run.sleeplab", "checkpoint", header["manifest"], tensors)  # as a device machine writes it
    with pytest.raises(ValueError, match=r"run.sleeplab records no code commit; give the commit it trained at"):
        cells.manifest(str(tmp_path), eval_size=16)
    entry, = json.loads(cells.manifest(str(tmp_path), eval_size=16, commit="6404e76").read_text())
    assert entry["code"]["commit"] == "6404e76" and entry["code"]["commit_from"] == "manifest"
    entry, = json.loads(cells.manifest(str(tmp_path), eval_size=32, commit="6404e76").read_text())
    assert entry["heldout"]["examples"] == 16          # listed already: kept, not measured at another size
    entry, = json.loads(cells.manifest(str(tmp_path), eval_size=32, commit="6404e76", remeasure=True).read_text())
    assert entry["heldout"]["examples"] == 32
