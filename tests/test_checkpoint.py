"""Checkpoints: resuming is bit-identical, damaged or foreign files are refused by name, exports are small."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import sleeplab
from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.tasks import rule110
from sleeplab.checkpoint import export, load_checkpoint, read, read_manifest, write
from sleeplab.train import TrainConfig, build_optimizers, save_checkpoint
from sleeplab.train import train
from sleeplab.train.checkpoint import CHECKPOINT, METRICS, load_run


def tiny(out, **kw):
    """A run of a few seconds that still takes both paths: N is drawn from {1, 2} every step."""
    base = dict(task="rule110", task_args={"t": 1, "n_states": 2, "width": 8}, preset="sleep",
                model_args={"d_model": 16, "n_heads": 2, "n_sleep_range": (1, 2)}, batch_size=8, steps=6,
                warmup_steps=2, muon_lr=2e-2, adam_lr=1e-2, eval_every=3, eval_size=16, save_every=2,
                device="cpu", threads=1, precision="fp32", out=str(out))
    return TrainConfig(**{**base, **kw})


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def evals(out, skip=("wall_s",)):
    return [{k: v for k, v in json.loads(line).items() if k not in skip}
            for line in (out / METRICS).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, the yardstick for every resumed one."""
    out = tmp_path_factory.mktemp("reference")
    return train(tiny(out)), out


def test_stopped_and_resumed_run_is_bit_identical(reference, tmp_path):
    full, full_out = reference
    train(tiny(tmp_path, steps=4))  # stops after step 4, as a run killed there would
    resumed = train(tiny(tmp_path), resume=True)
    assert_same_weights(full.model.state_dict(), resumed.model.state_dict())
    a, b = load_checkpoint(full_out / CHECKPOINT), load_checkpoint(tmp_path / CHECKPOINT)
    assert a.step == b.step == 6
    assert repr(a.optimizer_states) == repr(b.optimizer_states)  # momentum buffers and step counts too
    # the stopped run also recorded its last step (4), so its next loss averages fewer steps
    skip = ("wall_s", "loss")
    assert evals(full_out, skip) == [r for r in evals(tmp_path, skip) if r["step"] != 4]


def test_killed_process_resumes_bit_identical(tmp_path):
    """SIGKILL a real `sleeplab train` between checkpoints, resume it, compare with an unbroken run."""
    run = tmp_path / "run"
    (tmp_path / "long.json").write_text(json.dumps(tiny(run, steps=10_000, save_every=1).to_dict()))
    proc = subprocess.Popen([sys.executable, "-m", "sleeplab.train.cli", "train", "--config",
                             str(tmp_path / "long.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run / CHECKPOINT).exists() and read_manifest(run / CHECKPOINT)["step"] >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: whatever was on disk is what we have
    proc.wait()
    killed_at = read_manifest(run / CHECKPOINT)["step"]
    assert killed_at >= 3, proc.stderr.read().decode()
    target = max(12, killed_at)  # the budget may grow on resume, never shrink below the checkpoint
    resumed = train(tiny(run, steps=target, save_every=1), resume=True)
    unbroken = train(tiny(tmp_path / "unbroken", steps=target))
    assert_same_weights(unbroken.model.state_dict(), resumed.model.state_dict())
    assert evals(run) == evals(tmp_path / "unbroken")  # the record of losses too, across the kill


def test_existing_run_is_not_overwritten_and_resume_checks_the_config(tmp_path):
    train(tiny(tmp_path, steps=2))
    with pytest.raises(ValueError, match="already holds a run: resume it"):
        train(tiny(tmp_path, steps=2))
    with pytest.raises(ValueError, match=r"cannot resume .*\['seed'\] differ"):
        train(tiny(tmp_path, steps=4, seed=1), resume=True)
    with pytest.raises(ValueError, match="past this budget of 1 steps"):
        train(tiny(tmp_path, steps=1), resume=True)
    assert len(train(tiny(tmp_path, steps=2), resume=True).metrics) == 2  # finished: nothing to do


@pytest.fixture
def saved(reference):
    return reference[1] / CHECKPOINT


def damaged(tmp_path, data: bytes):
    path = tmp_path / "damaged.sleeplab"
    path.write_bytes(data)
    return path


def test_flipped_byte_is_reported_as_corruption(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    data[-1000] ^= 0x01
    with pytest.raises(ValueError, match="is corrupted: its sha256 does not match"):
        load_checkpoint(damaged(tmp_path, bytes(data)))


def test_truncated_file_is_reported_as_truncated(saved, tmp_path):
    data = saved.read_bytes()
    with pytest.raises(ValueError, match="is truncated: its payload has"):
        load_checkpoint(damaged(tmp_path, data[:-500]))
    with pytest.raises(ValueError, match="truncated or damaged"):
        load_checkpoint(damaged(tmp_path, data[:200]))


def test_newer_format_is_refused(saved, tmp_path):
    header, tensors = read(saved)
    path = write(tmp_path / "future.sleeplab", "checkpoint", header["manifest"], tensors, format=2)
    with pytest.raises(ValueError, match="has format 2, newer than this sleeplab reads \\(format 1\\)"):
        load_checkpoint(path)


def test_foreign_file_is_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="is not a sleeplab checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


@pytest.mark.parametrize("section, field", [("model_config", "colour"), ("train_config", "colour"),
                                            ("task_config", "colour")])
def test_config_from_other_code_is_refused_naming_the_field(saved, tmp_path, section, field):
    header, tensors = read(saved)
    header["manifest"][section][field] = "red"
    path = write(tmp_path / "odd.sleeplab", "checkpoint", header["manifest"], tensors)  # valid checksum
    with pytest.raises(ValueError, match=f"does not match this version of sleeplab: .*'{field}'"):
        load_run(path)  # the core's load_checkpoint checks the model and task configs, load_run all three


def test_manifest_records_code_version_step_and_configs(saved):
    manifest = read_manifest(saved)
    assert manifest["code"]["version"] == sleeplab.__version__
    assert manifest["step"] == 6 and manifest["tokens"] == 6 * 8 * 18 and manifest["data_device"] == "cpu"
    assert manifest["task"] == "rule110" and manifest["task_config"]["t"] == 1


def test_checkpoints_record_the_commit_inside_a_git_checkout(saved):
    here = os.path.dirname(os.path.abspath(__file__))
    head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout: the commit comes from $SLEEPLAB_COMMIT (test_resume.py)")
    assert read_manifest(saved)["code"]["commit"] == head.stdout.strip()


def test_exports_load_like_the_checkpoint(saved, tmp_path):
    full = sleeplab.load(saved)
    exact = sleeplab.load(export(saved, tmp_path / "fp32.sleeplab", "fp32"))
    small = sleeplab.load(export(saved, tmp_path / "bf16.sleeplab"))
    assert_same_weights(full.state_dict(), exact.state_dict())
    for k, v in full.state_dict().items():
        assert torch.allclose(v, small.state_dict()[k], rtol=1e-2, atol=1e-3), k
    payload = {d: read(tmp_path / f"{d}.sleeplab", with_tensors=False)[0]["payload_bytes"] for d in ("bf16", "fp32")}
    assert payload["bf16"] < 0.6 * payload["fp32"]
    assert load_checkpoint(tmp_path / "bf16.sleeplab").optimizer_states is None
    assert small.manifest["weights_dtype"] == "bf16" and small.train_config == full.train_config
    with pytest.raises(ValueError, match="allowed: \\['bf16', 'fp32'\\]"):
        export(saved, tmp_path / "x", "fp16")


def test_paper_model_export_fits_in_data(tmp_path, capsys):
    """The paper's d = 256 Rule 110 model: a bf16 export is about 6.6 MB."""
    task = rule110.Config(t=32)
    cfg = TrainConfig(task_args={"t": 32}, device="cpu")
    model = SleepLM(preset("sleep", vocab_size=len(rule110.vocab(task)), **{**PAPER_RULE110, "max_positions": 100}))
    ckpt = save_checkpoint(tmp_path / "full.sleeplab", cfg, model, build_optimizers(model), task, 0,
                           tokens=0, wall_s=0.0, data_device="cpu", metrics=None)
    size = export(ckpt, tmp_path / "paper.sleeplab").stat().st_size
    with capsys.disabled():
        print(f"\n  paper model: {model.num_params():,} parameters, bf16 export {size / 1e6:.2f} MB")
    assert size < 2.1 * model.num_params() + 100_000
    assert os.path.getsize(ckpt) > 1.9 * size
