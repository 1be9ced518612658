"""The ``sleeplab`` command: train, eval, export, sweep.

    sleeplab train --task rule110 --t 16 --n-sleep 4 --tokens 500M --seed 0 --out runs/x
    sleeplab train --recipe tiny-rule110 --out runs/tiny         # the CPU recipe, ~1 minute
    sleeplab eval runs/x/checkpoint.sleeplab --n-sleep 1 2 4
    sleeplab export runs/x/checkpoint.sleeplab data/checkpoints/x.sleeplab
    sleeplab sweep grid.toml --parallel 3

Every dial of the chosen task's Config becomes a flag (``--t`` for rule110; ``sleeplab train --task depo
--help`` lists depo's); any dial, ranges included, can also be given as ``--task-arg key=JSON``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from ..model import FEEDS
from ..presets import PRESETS
from ..tasks import TASKS, get_task
from .config import PRECISIONS, STRATEGIES, TINY_RULE110, TrainConfig

RECIPES = {"tiny-rule110": TINY_RULE110}
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if not callable(f.default_factory)}
_TYPES = {"int": int, "float": float, "str": str}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def _devices(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a device count; use a positive integer or auto")


def _n_sleep(text: str) -> int | tuple[int, ...]:
    """``4`` (N for every sleeping window) or ``4,4,1,4`` (one N per sleeping window, in order)."""
    parts = text.split(",")
    if all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)
    raise argparse.ArgumentTypeError(f"{text!r} is not an N: use a positive integer, or one per "
                                     "sleeping window separated by commas (4,4,1,4)")


def _key_value(text: str) -> tuple[str, object]:
    """``key=JSON`` (``t=16``, ``k_range=[1,16]``); a value that is not JSON is taken as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def _add_task_dials(parser: argparse.ArgumentParser, task: str) -> None:
    group = parser.add_argument_group(f"{task} dials", f"fields of sleeplab.tasks.{task}.Config; "
                                      "others (ranges) via --task-arg key=JSON")
    taken = set(parser._option_string_actions)
    for f in fields(get_task(task).Config):
        kind = str(f.type).split("|")[0].strip()
        if kind not in _TYPES and kind != "bool":
            continue
        flag = "--" + f.name.replace("_", "-")
        if flag in taken:  # e.g. depo's "preset" would shadow the model's --preset
            flag = "--task-" + f.name.replace("_", "-")
        group.add_argument(flag, dest=f"task__{f.name}", type=_bool if kind == "bool" else _TYPES[kind],
                           metavar=kind.upper(), help=f"(default {f.default!r})")


def _train_parser(sub, task: str) -> None:
    p = sub.add_parser("train", help="train one run", description="Train one run; flags override --config "
                       "and --recipe, which override TrainConfig's defaults.")
    p.add_argument("--config", type=Path, help="a TrainConfig as JSON (a run's config.json)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named recipe")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (fresh if none there)")
    p.add_argument("--task", choices=sorted(TASKS), help="(default rule110)")
    p.add_argument("--task-arg", type=_key_value, action="append", default=[], metavar="KEY=JSON")
    m = p.add_argument_group("model")
    m.add_argument("--preset", choices=sorted(PRESETS), help=f"(default {DEFAULTS['preset']})")
    m.add_argument("--n-sleep", type=int, help="N, sleep passes per window (default: the preset's)")
    m.add_argument("--n-sleep-range", type=int, nargs=2, metavar=("LO", "HI"), help="draw N per batch")
    m.add_argument("--d-model", type=int)
    m.add_argument("--n-heads", type=int)
    m.add_argument("--model-arg", type=_key_value, action="append", default=[], metavar="KEY=JSON",
                   help="any SleepLMConfig field, e.g. pattern=\"attn,gdn\"")
    r = p.add_argument_group("run")
    for name, kind, text in [
            ("batch_size", int, "examples per step"),
            ("tokens", str, "token budget such as 40k, 500M, 2.5B (default 40M unless --steps)"),
            ("steps", int, "step budget instead of --tokens"),
            ("muon_lr", float, "Muon learning rate, hidden matrices"),
            ("adam_lr", float, "AdamW learning rate, embeddings, head, norms, gates"),
            ("weight_decay", float, ""), ("warmup_steps", int, "linear warm-up, then constant"),
            ("grad_clip", float, "global gradient-norm clip, 0 turns it off"),
            ("seed", int, "data order and initial weights"),
            ("nudge", int, "k > 0: the seed's initial weights times (1 + 1e-6 noise k), a rerun that differs by rounding"),
            ("eval_every", int, "steps between held-out evaluations"),
            ("eval_size", int, "held-out examples"),
            ("save_every", int, "steps between checkpoints (default: eval_every)"),
            ("device", str, "auto, cpu, cuda or cuda:N"),
            ("threads", int, "CPU threads (default: torch's; 1 is fastest for tiny models)"),
            ("out", str, "run directory")]:
        default = "" if "default" in text else f" (default {DEFAULTS[name]})"
        r.add_argument("--" + name.replace("_", "-"), type=kind, help=text + default)
    r.add_argument("--devices", type=_devices, help="processes, data-parallel over GPUs (Lightning DDP; "
                   "global batch = --batch-size, same data stream as one device). Default: auto = every "
                   "visible GPU on CUDA, one process on a CPU")
    r.add_argument("--strategy", choices=STRATEGIES, help="Lightning strategy when --devices > 1 (default auto = ddp)")
    r.add_argument("--precision", choices=PRECISIONS, help=f"(default {DEFAULTS['precision']})")
    r.add_argument("--fast", action="store_true", default=None, help="CUDA-graph training step on CUDA")
    r.add_argument("--progress", action="store_true", default=None, help="show a progress bar")
    _add_task_dials(p, task)


def build_parser(task: str = "rule110") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sleeplab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub, task)
    e = sub.add_parser("eval", help="score a checkpoint on held-out examples at several N")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--n-sleep", type=_n_sleep, nargs="+", help="N values (default: the model's); "
                   "4,4,1,4 gives each sleeping window its own N")
    e.add_argument("--eval-size", type=int, help="examples (default: the run's eval_size)")
    e.add_argument("--split", choices=("eval", "train"), default="eval")
    e.add_argument("--eval-seed", type=int, help="draw a fresh held-out set with this seed (default: the "
                   "fixed set every run is scored on)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    e.add_argument("--feed", choices=FEEDS, help="what later passes of a sleep read "
                   "(default: the model's own; embedding: the ablation without fed-back features)")
    e.add_argument("--out", type=Path, help="also write the JSON here")
    x = sub.add_parser("export", help="compact weights-only copy of a checkpoint (for data/)")
    x.add_argument("checkpoint", type=Path)
    x.add_argument("out", type=Path)
    x.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    s = sub.add_parser("sweep", help="many runs from a TOML grid (resumable)")
    s.add_argument("grid", type=Path)
    s.add_argument("--parallel", type=int, help="runs at once (default: the grid's, else 1)")
    s.add_argument("--dry-run", action="store_true", help="list runs and their state, run nothing")
    s.add_argument("--devices", type=int, help="GPUs to spread the runs over, one GPU a run "
                   "(default: every visible GPU; 0 on a CPU)")
    return parser


def read_config(path: Path) -> dict:
    """A --config file: a JSON object of TrainConfig fields, refused by name otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r} is not a file")
    try:
        base = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--config {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(base, dict):
        raise ValueError(f"--config {str(path)!r} holds a JSON {type(base).__name__}; it must be an "
                         "object of TrainConfig fields, like a run's config.json")
    return base


def config_from_args(args) -> TrainConfig:
    """TrainConfig defaults, then --recipe or --config, then the flags given."""
    base = TrainConfig().to_dict()
    if args.recipe:
        base = RECIPES[args.recipe].to_dict()
    if args.config:
        base = read_config(args.config)
    given = {k: v for k, v in vars(args).items() if v is not None}
    if "task" in given and given["task"] != base["task"]:
        base["task_args"] = {}  # another task's dials would not fit
    if not args.recipe and not args.config:
        base["devices"] = "auto"  # the command uses what the machine has; the Python API defaults to one
    base.update({k: given[k] for k in DEFAULTS if k in given})
    if base.get("grad_clip") == 0:
        base["grad_clip"] = None
    base["task_args"] = {**base["task_args"], **dict(args.task_arg),
                         **{k[6:]: v for k, v in given.items() if k.startswith("task__")}}
    model = {"n_sleep": args.n_sleep, "n_sleep_range": args.n_sleep_range, "d_model": args.d_model,
             "n_heads": args.n_heads}
    base["model_args"] = {**base["model_args"], **{k: v for k, v in model.items() if v is not None},
                          **dict(args.model_arg)}
    return TrainConfig.from_dict(base)


def run_eval(args) -> dict:
    """Score a checkpoint on held-out examples at each N; at the run's own eval_size (the default) they
    are the very items it was scored on during training."""
    import dataclasses

    import torch

    from ..api import evaluate, load
    from ..checkpoint import code_version
    from ..device import card_name
    from ..tasks import EVAL_SEED, held_out
    model = load(args.checkpoint, device=None if args.device == "auto" else args.device)
    if args.feed:
        model.config = dataclasses.replace(model.config, feed=args.feed)   # validated: refuses a clash
    size = model.train_config["eval_size"] if args.eval_size is None else args.eval_size
    if size < 1:
        raise ValueError(f"--eval-size must be at least 1, got {size}")
    batch = held_out(model.task, model.task_config, size, args.split,
                     EVAL_SEED if args.eval_seed is None else args.eval_seed)
    spell = lambda n: ",".join(map(str, n)) if isinstance(n, tuple) else str(n)   # as --n-sleep reads it
    results = {spell(n): evaluate(model, batch, n, chunk_size=model.train_config["batch_size"])
               for n in (args.n_sleep or [model.config.n_sleep])}
    # the command that reproduces this file, spelled out with its defaults filled in
    flags = (["--n-sleep", *map(spell, args.n_sleep)] if args.n_sleep else []) + ["--eval-size", str(size), "--split",
             args.split] + (["--eval-seed", str(args.eval_seed)] if args.eval_seed is not None else []) + (
             ["--feed", args.feed] if args.feed else [])
    report = {"checkpoint": str(args.checkpoint), "task": model.task, "step": model.manifest["step"],
              "split": args.split, "examples": size, "eval_seed": args.eval_seed, "feed": model.config.feed,
              "results": results,
              "card": card_name(model.device), "torch": torch.__version__, "code": code_version(),
              "command": " ".join(["python -m sleeplab.train.cli eval", str(args.checkpoint), *flags,
                                   "--device", args.device])}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


def _print(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["repro"]:  # the reproduction's commands under the one entry point
        from ..repro.__main__ import main as repro_main
        return repro_main(argv[1:])
    # the task decides which dial flags exist, so find it first (a bad name is reported by the full parse)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    task = pre.parse_known_args(argv)[0].task
    parser = build_parser(task if task in TASKS else "rule110")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as err:  # bad config, missing or damaged checkpoint, bad grid
        parser.exit(2, f"sleeplab {args.command}: error: {err}\n")


def _run(args) -> int:
    if args.command == "train":
        from .distributed import is_first_process
        from .module import train  # Lightning loads only for commands that train
        cfg = config_from_args(args)
        result = train(cfg, resume=args.resume, on_eval=_print)
        code = 143 if result.stopped else 0  # 143: as if killed by SIGTERM, so a sweep sees it unfinished
        if is_first_process():  # the other processes of a DDP run stay quiet
            if result.stopped:
                print(json.dumps({"stopped": True, "out": cfg.out, "step": result.step}))
            else:
                print(json.dumps({"done": True, "out": cfg.out, **result.final}))
        if result.devices > 1 and cfg.fast:
            # Everything is written. Skip interpreter teardown: NCCL's shutdown after collectives
            # recorded in CUDA graphs hung DDP processes at exit (2x H200, torch 2.11).
            sys.stdout.flush()
            os._exit(code)
        return code
    elif args.command == "eval":
        run_eval(args)
    elif args.command == "export":
        from ..checkpoint import export
        path = export(args.checkpoint, args.out, args.dtype)
        print(json.dumps({"export": str(path), "bytes": path.stat().st_size}))
    else:
        from .sweep import run_sweep
        return run_sweep(args.grid, parallel=args.parallel, dry_run=args.dry_run, devices=args.devices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
