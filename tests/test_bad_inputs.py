"""Every bad input gets one line naming the value (or file) and what is allowed: exit code 2 from the
command, ValueError from the API, no traceback, no hang, and nothing left behind."""
import re

import pytest
import torch

import sleeplab
from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.sleep import sleep_forward
from sleeplab.streaming import StreamingRunner
from sleeplab.tasks import rule110
from sleeplab.train import TrainConfig
from sleeplab.train.cli import main

CKPT = "data/checkpoints/rule110-t8-n1-41M.sleeplab"
RECIPE = ["train", "--recipe", "tiny-rule110", "--steps", "1"]


def one_line_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, message", [
    (RECIPE + ["--t", "100000000"], r"t must be <= 1024 .*got 100000000"),
    (RECIPE + ["--muon-lr", "nan"], "muon_lr must be a finite number >= 0, got nan"),
    (RECIPE + ["--adam-lr", "inf"], "adam_lr must be a finite number >= 0, got inf"),
    (RECIPE + ["--weight-decay", "nan"], "weight_decay must be a finite number"),
    (RECIPE + ["--grad-clip", "inf"], "grad_clip must be None .* finite number > 0, got inf"),
    (RECIPE + ["--batch-size", "64", "--devices", "64"], "devices=64 CPU processes asked for, but this machine gives"),
    (["eval", CKPT, "--eval-size", "0"], "--eval-size must be at least 1, got 0"),
    (["eval", CKPT, "--device", "tpu"], "device 'tpu' is not known; allowed"),
])
def test_bad_values_are_one_line_errors(argv, message, capsys):
    assert re.search(message, one_line_error(argv, capsys))


def test_bad_files_are_one_line_errors_that_leave_nothing_behind(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "taken").write_text("")
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert "holds a JSON list; it must be an object" in one_line_error(RECIPE[:1] + ["--config", "list.json"], capsys)
    assert "--config 'gone.json' is not a file" in one_line_error(["train", "--config", "gone.json"], capsys)
    assert "out 'taken' is an existing file" in one_line_error(RECIPE + ["--out", "taken"], capsys)
    ckpt = str(sleeplab.__file__).rsplit("/sleeplab/", 1)[0] + "/" + CKPT
    assert "folder is a directory; give the path of the file" in one_line_error(["export", ckpt, "folder"], capsys)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary file, no run directory


@pytest.mark.parametrize("text, message", [
    ("grid = 5", r"grid must be a table \(\[grid\] of fields\), got 5"),
    ('base = "x"', r"base must be a table \(\[base\] of fields\), got 'x'"),
    ('out = 3', "out must be a directory name"),
    ("[grid\n", "is not valid TOML"),
    ('[base]\nsteps = 1\n[grid]\n"model_args.pattern" = ["attn,gdn", "attn, gdn"]',
     r"runs of one name \['pattern-attn,gdn'\], which would share a run directory"),
])
def test_bad_grids_are_one_line_errors(tmp_path, text, message, capsys):
    (tmp_path / "g.toml").write_text(text)
    assert re.search(message, one_line_error(["sweep", str(tmp_path / "g.toml"), "--dry-run"], capsys))


def test_a_grid_that_is_a_directory_and_parallel_zero_are_refused(tmp_path, capsys):
    assert "is not a file; give a .toml grid" in one_line_error(["sweep", str(tmp_path)], capsys)
    (tmp_path / "g.toml").write_text("[base]\nsteps = 1\n")
    assert "parallel must be a positive integer, got 0" in one_line_error(
        ["sweep", str(tmp_path / "g.toml"), "--parallel", "0", "--dry-run"], capsys)


def model(eviction="hard"):
    torch.manual_seed(0)
    return SleepLM(preset("sleep", vocab_size=7, d_model=16, n_heads=2, window=4, max_positions=32,
                          eviction=eviction)).eval()


@pytest.mark.parametrize("tokens, message", [
    (torch.tensor([[1, 2, 7, 0]]), r"token id 7 is outside the vocabulary: allowed 0\.\.6"),
    (torch.tensor([[1, -1, 2, 0]]), r"token id -1 is outside the vocabulary"),
    (torch.zeros(1, 4), "must be an integer tensor of token ids, got torch.float32"),
    (torch.zeros(4, dtype=torch.long), r"must be \[batch, seq_len\], got shape \(4,\)"),
])
def test_bad_tokens_are_refused_by_the_sleep_loop(tokens, message):
    with pytest.raises(ValueError, match=message):
        sleep_forward(model(), tokens)


@pytest.mark.parametrize("tokens, message", [
    (torch.tensor([3, 9]), r"token id 9 is outside the vocabulary: allowed 0\.\.6"),
    (torch.tensor([0.5]), "must be an integer tensor"),
    (torch.zeros(1, 1, 2, dtype=torch.long), r"must be \[batch, seq_len\], got shape \(1, 1, 2\)"),
])
def test_bad_tokens_are_refused_by_the_streaming_runner(tokens, message):
    runner = StreamingRunner(model())
    with pytest.raises(ValueError, match=message):
        runner.feed(tokens)
    assert runner.position == 0  # nothing was read


def test_a_loss_mask_of_another_shape_is_refused():
    tokens = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"loss_mask must have the shape of tokens \(2, 8\), got \(2, 7\)"):
        sleep_forward(model(), tokens, torch.ones(2, 7, dtype=torch.bool))


def test_load_refuses_an_unknown_device_by_name():
    with pytest.raises(ValueError, match="device 'tpu' is not known; allowed: 'cpu', 'cuda', 'cuda:N'"):
        sleeplab.load("no/such/file.sleeplab", device="tpu")


def test_a_rule110_depth_past_the_limit_is_refused_at_once():
    with pytest.raises(ValueError, match=r"t must be <= 1024 .*got 1000000000"):
        rule110.Config(t=10**9)
    with pytest.raises(ValueError, match="t must be <= 1024"):
        TrainConfig(task_args={"t": 10**8})
