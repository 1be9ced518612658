"""The cells of our reproduction of the paper's claims, and the code that runs them.

Every shipped curve in ``data/results/curves.json`` and checkpoint in ``data/checkpoints/`` names the
cell it came from; ``python -m sleeplab.repro run CELL [CELL ...]`` re-runs any of them from
scratch (GPU strongly advised: the paper's model at batch 512), ``python -m sleeplab.repro
collect RUNS_DIR`` gathers finished runs into ``data/results/curves.json``, ``figures`` re-draws
``docs/figures`` from that file (and ``data/results/test_time_n/``) alone and ``tables`` prints the
seeds, ablation, depth, eviction, Depo, test-time-N and shipped-checkpoint tables.

The cells here are the first grid, all of one named variant of the paper's recipe, ``ADAMW_1E3``:
the paper's Rule 110 model (4 blocks attn/GDN/attn/GDN, d = 256, L = 24, T = 100), batch 512, Muon
2e-3 on hidden matrices as in the paper, but AdamW 1e-3 on the rest instead of the paper's 5e-5 (a
deviation that helped N = 1 and, as the recipe study found, held N = 4 back at t = 12), 100 warm-up
steps, bf16 on GPU, seed 0 unless the name ends in ``-seedS``, equal token budgets across N. Cells
named ``study-...`` use the paper's recipe itself and are defined by ``sleeplab.repro.recipes``.

Depo, scaled down (the paper's sizes, preset "paper75", are <= 75 one-token words, L = 75, edges over
4 windows, a 10-layer d = 512 model): cycles of 17-32 one-token words (k up to 16 needs 17), L = 32,
edges over 3 evicted windows, 8 queries in the last window, so T = 128; k ~ U[1, 16] in training as
upstream, and the held-out set (same mix) is broken down per k. Same model and recipe as Rule 110, so
its measured speed carries over (T and L close to Rule 110's): 150 M tokens per N.

Several GPUs: one process per GPU, several cells per process run one after another. Several
processes may share a GPU, but time-slicing costs throughput: four N = 4 runs on one H200 made
about half the steps per second of one run alone (docs/results.md, the recipe study). The layout that keeps every cell under
~4 minutes on 4 cards (the long cell, depo-n4, alone):

    CUDA_VISIBLE_DEVICES=0 python -m sleeplab.repro run depo-n4 --out runs &
    CUDA_VISIBLE_DEVICES=1 python -m sleeplab.repro run rule110-t8-n4-seed1 --out runs &
    CUDA_VISIBLE_DEVICES=1 python -m sleeplab.repro run rule110-t8-n1-seed1 --out runs &
    CUDA_VISIBLE_DEVICES=1 python -m sleeplab.repro run depo-n1 --out runs &
    CUDA_VISIBLE_DEVICES=2 python -m sleeplab.repro run rule110-t8-n4-seed2 --out runs &
    CUDA_VISIBLE_DEVICES=2 python -m sleeplab.repro run rule110-t8-n1-seed2 --out runs &
    CUDA_VISIBLE_DEVICES=2 python -m sleeplab.repro run rule110-t8-n2-hebbian --out runs &
    CUDA_VISIBLE_DEVICES=3 python -m sleeplab.repro run rule110-t8-n1-x4tokens --out runs &
    CUDA_VISIBLE_DEVICES=3 python -m sleeplab.repro run depo-n2 --out runs &
    CUDA_VISIBLE_DEVICES=3 python -m sleeplab.repro run rule110-t8-n2-delta --out runs &
    wait
    python -m sleeplab.repro collect runs --card "NVIDIA H100 80GB HBM3"   # the card it ran on
    python -m sleeplab.repro figures && python -m sleeplab.repro tables

An interrupted cell resumes from its last checkpoint when the same line is run again.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..train.config import TrainConfig
from .recipes import PAPER, study_config

PAPER_MODEL = {"d_model": 256, "n_heads": 4}
ADAMW_1E3 = {**PAPER, "adam_lr": 1e-3, "eval_every": 200}  # the first grid's deviation, by name
# Depo scaled down from the paper's sizes (module docstring): T = 128, L = 32, k ~ U[1, 16]
DEPO = {"preset": "paper75", "n_nodes": 32, "window": 32, "n_queries": 8, "min_context_windows": 3}


def _cell(t: int, n: int | None = None, tokens: str = "100M", preset: str = "sleep", seed: int = 0,
          **model_args) -> TrainConfig:
    if n is not None:
        model_args["n_sleep"] = n
    return TrainConfig(**ADAMW_1E3, task="rule110", task_args={"t": t}, preset=preset,
                       model_args={**PAPER_MODEL, **model_args}, tokens=tokens, seed=seed)


def _depo(n: int, tokens: str = "150M") -> TrainConfig:
    return TrainConfig(**ADAMW_1E3, task="depo", task_args=DEPO, preset="sleep",
                       model_args={**PAPER_MODEL, "n_sleep": n}, tokens=tokens)


CELLS: dict[str, TrainConfig] = {
    # depth x sleep at an equal token budget (N = 1 is the paper's no-loop hybrid)
    **{f"rule110-t{t}-n{n}": _cell(t, n) for t in (4, 8, 12, 16) for n in (1, 2, 4)},
    # seeds 1 and 2 at t = 8, the deepest t where N = 4 led N = 1 (seed 0 is the unsuffixed cell)
    **{f"rule110-t8-n{n}-seed{s}": _cell(8, n, seed=s) for n in (1, 4) for s in (1, 2)},
    # "more compute" controls: N = 1 with 4x the tokens of the N = 4 cell
    **{f"rule110-t{t}-n1-x4tokens": _cell(t, 1, tokens="400M") for t in (8, 12)},
    # update-rule ablation; the gated delta rule's cell is rule110-t8-n2
    **{f"rule110-t8-n2-{rule}": _cell(8, 2, rule=rule) for rule in ("hebbian", "delta")},
    # controls the paper did not run
    **{f"rule110-t{t}-transformer-evict": _cell(t, tokens="20M", preset="transformer-evict")
       for t in (4, 8, 12, 16)},
    "rule110-t8-transformer-full": _cell(8, tokens="50M", preset="transformer-full"),
    # one checkpoint for every N: N ~ U{1..4} per batch, input re-injected every pass
    **{f"rule110-t{t}-nvar": _cell(t, tokens="150M", n_sleep_range=(1, 4), inject="add")
       for t in (8, 12)},
    # per-N checkpoints at the budget where N = 4 led at t = 8 (for the notebooks)
    **{f"rule110-t8-n{n}-41M": _cell(8, n, tokens="41M") for n in (1, 2, 4)},
    # Depo: which hop counts k each N learns (the per-k breakdown of every evaluation)
    **{f"depo-n{n}": _depo(n) for n in (1, 2, 4)},
}


def run(names: list[str], out_root: str, device: str | None = None) -> None:
    from ..train import train
    configs = [cell_config(name) for name in names]  # every name checked before anything trains
    for name, cfg in zip(names, configs):
        changes = {"out": str(Path(out_root) / name)}
        if device is not None:
            changes["device"] = device
        train(replace(cfg, **changes), resume=(Path(out_root) / name).exists())


def cell_config(name: str) -> TrainConfig:
    """The config of a named cell: one of CELLS, or a recipe-study cell (``sleeplab.repro.recipes``)."""
    if name in CELLS:
        return CELLS[name]
    if name.startswith("study-"):
        return study_config(name)
    raise ValueError(f"unknown cell {name!r}; allowed: {sorted(CELLS)} and study-... (sleeplab.repro.recipes)")


def _continues(old: list[dict], new: list[dict]) -> bool:
    """Whether the records ``new`` carry on ``old``: a run resumed from its checkpoint keeps the
    records it had, so they come first and unchanged."""
    def key(p: dict):
        return p["step"], p.get("exact")
    return [key(p) for p in old] == [key(p) for p in new[:len(old)]]


def collect(runs_dir: str, out: str = "data/results/curves.json", card: str | None = None,
            commit: str | None = None) -> None:
    """Merge every run's metrics.jsonl under ``runs_dir`` into one JSON list of curves, each with the
    card and code commit it ran on. A run that has not evaluated yet (empty metrics.jsonl) is left
    out, and an older curve of that cell is kept. A run is done when its done.json is there or its
    last evaluation is its last step (metrics brought back from a device without the run's other files).

    A cell's older curve that the new run does not continue (a run restarted from step 0, in another
    session, because its checkpoint was lost) is kept under the new curve's ``earlier``, oldest
    first: two runs of one config are a measurement of run-to-run noise, not a record to overwrite."""
    from ..train.checkpoint import DONE, METRICS  # the run directory's names, without Lightning
    path = Path(out)
    curves = {c["cell"]: c for c in (json.loads(path.read_text()) if path.exists() else [])}
    for run_dir in sorted(Path(runs_dir).iterdir()):
        metrics = run_dir / METRICS
        if not (run_dir.name in CELLS or run_dir.name.startswith("study-")) or not metrics.exists():
            continue
        points = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if not points:
            continue
        cfg = cell_config(run_dir.name)
        old = curves.get(run_dir.name)
        earlier = [] if old is None else old.get("earlier", [])
        if old is not None and not _continues(old["points"], points):
            earlier = [*earlier, {k: v for k, v in old.items() if k != "earlier"}]
        curves[run_dir.name] = {"cell": run_dir.name, "config": cfg.to_dict(), "card": card,
                                "command": f"python -m sleeplab.repro run {run_dir.name}", "commit": commit,
                                "done": (run_dir / DONE).exists() or points[-1]["step"] >= cfg.total_steps(),
                                "points": points, **({"earlier": earlier} if earlier else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(curves.values(), key=lambda c: c["cell"]), indent=1) + "\n")


def manifest_eval_size(accuracy: float, floor: int = 8192, max_se_points: float = 0.4) -> int:
    """Examples per measurement so that two honest measurements of one model rarely differ by a point.

    Two independent measurements of an accuracy p on n examples each differ with standard error
    sqrt(2 p (1 - p) / n). The smallest power of two >= ``floor`` that brings it to ``max_se_points``
    or below: 8,192 near 95 % accuracy, 32,768 near 27 % (where 8,192 left a 0.7-point error)."""
    from .results import standard_error
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")
    n = floor
    while 100 * 2 ** 0.5 * standard_error(accuracy, n) > max_se_points:
        n *= 2
    return n


def manifest(ckpt_dir: str = "data/checkpoints", eval_size: int | None = None, fresh_seed: int = 20261126,
             card: str = "NVIDIA H200", commit: str | None = None, remeasure: bool = False) -> Path:
    """Write ``MANIFEST.json`` beside the shipped checkpoints: where each came from, its checksum, and
    its held-out exact accuracy at its own N, measured twice on the CPU by ``sleeplab.evaluate``, as
    the command a user runs (``sleeplab eval``, recorded beside each measurement) measures it:

    * ``heldout``: the run's fixed held-out set, enlarged to the sample size (its first 2,048
      examples scored the training curve); this is the accuracy the manifest states;
    * ``fresh``: as many examples drawn with another seed, never used before
      (``sleeplab eval CKPT --eval-size N --eval-seed 20261126 --device cpu``).

    The sample size is ``eval_size`` or, by default, :func:`manifest_eval_size` of the accuracy the run
    reached in training. An entry of the existing manifest with the same checksum is kept as it is (CPU
    evaluation at N = 4 takes minutes to hours), so a new checkpoint is measured without remeasuring the
    others at its size; ``remeasure`` measures again every entry of another sample size. ``card``: the
    GPU the new checkpoints trained on.

    Each entry's ``code`` is the checkpoint's own record. A checkpoint trained where git could not
    be asked (a device machine gets the working tree only) records ``commit: null``; ``commit`` then
    fills it, marked ``"commit_from": "manifest"``, and without it such a checkpoint is refused."""
    import hashlib
    import os
    import platform

    import torch

    from ..api import evaluate, load
    from ..checkpoint import read_manifest
    from ..tasks import EVAL_SEED, held_out

    def cli_eval(path: Path, size: int, seed: int | None = None) -> dict:
        model = load(path, device="cpu")
        batch = held_out(model.task, model.task_config, size, seed=EVAL_SEED if seed is None else seed)
        result = evaluate(model, batch, chunk_size=model.train_config["batch_size"])
        command = f"sleeplab eval {path} --eval-size {size} --device cpu"
        return {"examples": size, "seed": seed, "exact": result["exact"], "per_label": result["per_label"],
                "command": command + ("" if seed is None else f" --eval-seed {seed}")}

    out = Path(ckpt_dir) / "MANIFEST.json"
    old = {e["sha256"]: e for e in json.loads(out.read_text())} if out.exists() else {}
    entries = []
    def code_of(path: Path, code: dict) -> dict:
        if code.get("commit"):
            return code
        if commit is None:
            raise ValueError(f"{path} records no code commit; give the commit it trained at (--commit)")
        return {**code, "commit": commit, "commit_from": "manifest"}

    for path in sorted(Path(ckpt_dir).glob("*.sleeplab")):
        info = read_manifest(path)
        info["code"] = code_of(path, info["code"])
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        size = eval_size or manifest_eval_size(info["metrics"]["exact"])
        if sha in old and (not remeasure or old[sha]["heldout"]["examples"] == size):
            entries.append({**old[sha], "code": code_of(path, old[sha]["code"])})
            print(path.name, "unchanged", flush=True)
            continue
        heldout, fresh = cli_eval(path, size), cli_eval(path, size, fresh_seed)
        entries.append({
            "file": path.name, "cell": path.stem, "sha256": sha,
            "command": f"python -m sleeplab.repro run {path.stem}", "card": card,
            "tokens": info["tokens"], "n_sleep": info["model_config"]["n_sleep"],
            "task_config": info["task_config"], "model_config": info["model_config"], "code": info["code"],
            "heldout_at_training_end": info["metrics"], "heldout": heldout, "fresh": fresh,
            "fresh_minus_heldout_points": round(100 * (fresh["exact"] - heldout["exact"]), 2),
            "evaluated_on": f"CPU, {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__}",
        })
        print(path.name, heldout["exact"], fresh["exact"], flush=True)
    out.write_text(json.dumps(entries, indent=1) + "\n")
    return out
