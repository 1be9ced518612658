"""The sleeplab command: help, argparse errors that name allowed values, train/eval/export, sweeps."""
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sleeplab.train import TINY_RULE110
from sleeplab.checkpoint import load_checkpoint
from sleeplab.train.checkpoint import CHECKPOINT, DONE
from sleeplab.train.cli import build_parser, config_from_args, main
from sleeplab.train.sweep import expand, read_grid, run_sweep

TINY_FLAGS = ["--t", "1", "--n-states", "2", "--width", "8", "--preset", "hybrid", "--d-model", "16",
              "--n-heads", "2", "--batch-size", "8", "--steps", "2", "--eval-size", "8", "--device", "cpu",
              "--threads", "1", "--precision", "fp32"]


def fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    ([], "{train,eval,export,sweep}"), (["train"], "--t INT"), (["train", "--task", "depo"], "--task-preset"),
    (["eval"], "--n-sleep"), (["export"], "--dtype"), (["sweep"], "--parallel")])
def test_every_command_has_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--help"])
    assert info.value.code == 0 and expected in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "gpt"], "invalid choice: 'gpt' (choose from"),
    (["train", "--task", "chess"], "invalid choice: 'chess' (choose from"),
    (["train", "--precision", "fp16"], "choose from 'bf16', 'fp32'"),
    (["train", "--t", "-2"], "t must be an integer >= 0"),
    (["train", "--tokens", "lots"], "e.g. '40k', '500M', '2.5B'"),
    (["train", "--task-arg", "depth=3"], "has no dials ['depth']; allowed: ['boundary', 'n_states', 't',"),
    (["train", "--steps", "5", "--tokens", "1M"], "not both"),
    (["eval", "x.sleeplab", "--split", "test"], "choose from 'eval', 'train'"),
    (["export", "a", "b", "--dtype", "fp8"], "choose from 'bf16', 'fp32'"),
    (["eval", "missing.sleeplab"], "sleeplab eval: error: no checkpoint at missing.sleeplab"),
    (["train", "--config", "missing.json"], "sleeplab train: error: --config 'missing.json' is not a file"),
])
def test_bad_flags_are_argparse_errors_naming_what_is_allowed(argv, message, capsys):
    assert message in fails(argv, capsys)


def test_flags_override_recipe_and_config_file(tmp_path):
    args = build_parser().parse_args(["train", "--recipe", "tiny-rule110", "--t", "3", "--n-sleep", "2",
                                      "--task-arg", "boundary=zero", "--model-arg", "pattern=attn,gdn",
                                      "--steps", "5", "--grad-clip", "0", "--fast"])
    cfg = config_from_args(args)
    assert cfg.task_args == {**TINY_RULE110.task_args, "t": 3, "boundary": "zero"}
    assert cfg.model_args == {**TINY_RULE110.model_args, "n_sleep": 2, "pattern": "attn,gdn"}
    assert (cfg.steps, cfg.grad_clip, cfg.fast, cfg.batch_size) == (5, None, True, TINY_RULE110.batch_size)
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    again = config_from_args(build_parser().parse_args(["train", "--config", str(tmp_path / "c.json"),
                                                        "--seed", "7"]))
    assert again.seed == 7 and again.task_args == cfg.task_args and again.steps == 5


def test_train_eval_export_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["step"] for r in lines[:-1]] == [0, 2] and lines[-1]["done"] is True
    assert main(["eval", str(out / CHECKPOINT), "--n-sleep", "1", "3", "--eval-size", "8",
                 "--out", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["results"]) == {"1", "3"} and report["examples"] == 8 and report["step"] == 2
    # provenance: the command (defaults spelled out), the device, torch and the code that made the file
    assert report["command"] == (f"python -m sleeplab.train.cli eval {out / CHECKPOINT} --n-sleep 1 3 --eval-size 8"
                                 " --split eval --device cpu")
    assert report["card"].startswith("cpu") and report["torch"] and "commit" in report["code"]
    assert report["feed"] == "features"
    assert json.loads(capsys.readouterr().out) == report
    # the feature-recurrence ablation: the same checkpoint, later passes fed the window's embedding
    assert main(["eval", str(out / CHECKPOINT), "--n-sleep", "3", "--eval-size", "8", "--feed", "embedding",
                 "--out", str(tmp_path / "f.json")]) == 0
    ablated = json.loads((tmp_path / "f.json").read_text())
    assert ablated["feed"] == "embedding" and ablated["command"].endswith("--feed embedding --device cpu")
    assert json.loads(capsys.readouterr().out) == ablated
    # one N per sleeping window (two here): equal N's are that N, and the keys read as the flag did
    assert main(["eval", str(out / CHECKPOINT), "--n-sleep", "3", "3,3", "1,3", "--eval-size", "8",
                 "--out", str(tmp_path / "g.json")]) == 0
    scheduled = json.loads((tmp_path / "g.json").read_text())
    assert set(scheduled["results"]) == {"3", "3,3", "1,3"} and "--n-sleep 3 3,3 1,3 " in scheduled["command"]
    assert scheduled["results"]["3,3"]["per_label"] == scheduled["results"]["3"]["per_label"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["eval", str(out / CHECKPOINT), "--n-sleep", "3,0"])
    assert "'3,0' is not an N" in capsys.readouterr().err
    assert main(["export", str(out / CHECKPOINT), str(tmp_path / "small.sleeplab")]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == (tmp_path / "small.sleeplab").stat().st_size


GRID = """
    out = "runs"
    parallel = 2
    [base]
    task = "rule110"
    preset = "hybrid"
    batch_size = 8
    steps = 2
    eval_size = 8
    device = "cpu"
    threads = 1
    precision = "fp32"
    task_args = { t = 1, n_states = 2, width = 8 }
    model_args = { d_model = 16, n_heads = 2 }
    [grid]
    seed = [0, 1]
    "model_args.n_sleep" = [2]
"""


def test_sweep_runs_the_grid_then_skips_finished_runs(tmp_path, capsys):
    (tmp_path / "grid.toml").write_text(textwrap.dedent(GRID))
    runs = expand(read_grid(tmp_path / "grid.toml"), tmp_path / "runs")
    assert [name for name, _ in runs] == ["seed-0", "seed-1"]  # one-value axes do not name runs
    assert all(cfg.model_args["n_sleep"] == 2 for _, cfg in runs)
    assert run_sweep(tmp_path / "grid.toml") == 0
    for name, _ in runs:
        assert (tmp_path / "runs" / name / DONE).exists() and (tmp_path / "runs" / name / CHECKPOINT).exists()
    capsys.readouterr()
    assert run_sweep(tmp_path / "grid.toml") == 0
    states = [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()]
    assert states == ["done", "done"]


@pytest.mark.parametrize("text, message", [
    ("colour = 1", "unknown top-level keys \\['colour'\\]"),
    ("[grid]\nseed = 3", "grid entry 'seed' must be a non-empty list"),
    ("[grid]\n\"optim.lr\" = [1]", "only 'task_args.' and 'model_args.' may prefix"),
    ("[grid]\nseeds = [1]", "does not know: \\['seeds'\\]"),
])
def test_bad_grids_are_refused(tmp_path, text, message):
    (tmp_path / "g.toml").write_text(text)
    with pytest.raises(ValueError, match=message):
        run_sweep(tmp_path / "g.toml", dry_run=True)


def test_stopped_sweep_keeps_finished_runs_and_the_running_one_resumes(tmp_path, capsys):
    # 100 steps after the first record is seconds of margin for the stop to land mid-run
    grid = textwrap.dedent(GRID).replace("steps = 2", "steps = 120\neval_every = 20\nsave_every = 100000")
    (tmp_path / "grid.toml").write_text(grid.replace("parallel = 2", "parallel = 1"))
    runs = tmp_path / "runs"
    sweep = subprocess.Popen([sys.executable, "-m", "sleeplab.train.cli", "sweep", str(tmp_path / "grid.toml")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = runs / "seed-1" / "metrics.jsonl"
    while sweep.poll() is None and not (second.exists() and '"step": 20' in second.read_text()):
        time.sleep(0.1)
    sweep.send_signal(signal.SIGTERM)  # as `kill PID`: every run stops after its current step
    sweep.wait(timeout=120)
    assert (runs / "seed-0" / DONE).exists()
    stopped = load_checkpoint(runs / "seed-1" / CHECKPOINT).step
    assert 20 <= stopped < 120, "periodic saves are off: the stop itself wrote the checkpoint"
    capsys.readouterr()
    assert run_sweep(tmp_path / "grid.toml") == 0
    states = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["state"] for s in states if "state" in s] == ["done", "partial"]
    assert load_checkpoint(runs / "seed-1" / CHECKPOINT).step == 120


def test_sweep_refuses_more_gpus_than_the_machine_shows(tmp_path):
    (tmp_path / "g.toml").write_text(textwrap.dedent(GRID))
    with pytest.raises(ValueError, match="devices=64: this machine shows"):
        run_sweep(tmp_path / "g.toml", devices=64, dry_run=True)
