"""Shipped results and checkpoints: find them, load them, tabulate them; and the paper's own numbers
(``PAPER``, kept in ``sleeplab.repro.paper``).

    from sleeplab.repro import results
    curves = results.load_curves()                      # {cell: {"cell", "config", "card", "done", "points"}}
    print(results.format_table(results.final_table(curves)))
    model = results.load_model("rule110-t8-nvar")       # data/checkpoints/rule110-t8-nvar.sleeplab

The reproduction's own tables (seeds, update rules, the depth x sleep grid, Depo per k, test-time N)
are in ``sleeplab.repro.tables``.

Where the data lives: ``data/`` of a checkout of the repository (found next to the installed package,
so an editable install finds it from any working directory), or wherever ``$SLEEPLAB_DATA`` points.
A pip install from git carries the code but not ``data/``: clone the repository (or set
``SLEEPLAB_DATA``) to use the shipped results. Every error names the paths it looked at.

Every curve records the card it ran on (``card``) and the cell it came from; ``command(cell)`` is the
line that re-runs it (``python -m sleeplab.repro run CELL``, cells in ``sleeplab/repro/cells.py``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .paper import PAPER  # noqa: F401  (re-exported: results.PAPER)
from ..model import upgrade_fields

DATA_ENV = "SLEEPLAB_DATA"
CHECKPOINT_SUFFIX = ".sleeplab"
_POINT_KEYS = ("step", "tokens", "exact")
_PERCENT = ("exact", "per_label", "per_query")


# ---- where the data is ------------------------------------------------------------------------------

def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    found = [here.parent.parent / "data"]                # a checkout: <repo>/sleeplab/repro/results.py -> <repo>/data
    cwd = Path.cwd()
    found += [cwd / "data", cwd.parent / "data"]         # run from the repo root or from notebooks/
    unique = []
    for p in found:
        if p not in unique:
            unique.append(p)
    return unique


def data_dir() -> Path:
    """The shipped data directory (holding ``results/`` and ``checkpoints/``).

    ``$SLEEPLAB_DATA`` wins when set (and must exist); else the first of: ``data/`` beside the package
    (a repository checkout), ``./data``, ``../data``. Raises ``FileNotFoundError`` naming every path tried.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${DATA_ENV} is set to {str(path)!r}, which is not a directory. Point it at "
                                    "the data/ folder of a sleeplab checkout, or unset it.")
        return path
    tried = _candidates()
    for path in tried:
        if (path / "results").is_dir() or (path / "checkpoints").is_dir():
            return path
    raise FileNotFoundError(
        "sleeplab's shipped data (data/results, data/checkpoints) was not found; looked in: "
        + ", ".join(str(p) for p in tried)
        + f". It ships with a checkout of the repository: git clone https://github.com/sleeplab/sleeplab, "
        f"then pip install ./sleeplab (or set ${DATA_ENV} to its data/ folder).")


def results_file(name: str = "curves.json") -> Path:
    """``data/results/<name>``; a missing file is reported with the files that do exist."""
    folder = data_dir() / "results"
    path = folder / name
    if not path.is_file():
        have = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        raise FileNotFoundError(f"{path} does not exist; {folder} holds {have or 'no .json files'}")
    return path


# ---- curves -----------------------------------------------------------------------------------------

def load_curves(path: str | Path | None = None) -> dict[str, dict]:
    """The shipped training curves, ``{cell: curve}``, each curve with its points sorted by step.

    A curve is ``{"cell", "config", "card", "done", "points": [{"step", "tokens", "loss", "exact",
    "per_label", "n_sleep", "wall_s"}, ...]}`` as written by ``python -m sleeplab.repro collect``, with
    ``"earlier": [curve, ...]`` where the cell was run before from scratch (:func:`runs_of`).
    Malformed files raise ``ValueError`` naming the file and the entry.
    """
    path = Path(path) if path is not None else results_file("curves.json")
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path} must hold a JSON list of curves, got {type(raw).__name__}")
    curves = {}
    for i, curve in enumerate(raw):
        where = f"{path}, entry {i}"
        if not isinstance(curve, dict) or not isinstance(curve.get("cell"), str):
            raise ValueError(f"{where}: a curve must be an object with a 'cell' name")
        where = f"{path}, cell {curve['cell']!r}"
        if curve["cell"] in curves:
            raise ValueError(f"{where}: the cell appears twice")
        earlier = curve.get("earlier", [])
        if not isinstance(earlier, list) or not all(isinstance(e, dict) for e in earlier):
            raise ValueError(f"{where}: 'earlier' must be a list of curves")
        curves[curve["cell"]] = {**_checked(curve, where),
                                 **({"earlier": [_checked(e, f"{where}, earlier run {j}") for j, e in enumerate(earlier)]}
                                    if earlier else {})}
    return curves


def _checked(curve: dict, where: str) -> dict:
    """``curve`` with its points sorted by step, or a ValueError naming ``where`` if a point is malformed."""
    points = curve.get("points")
    if not isinstance(points, list) or not points:
        raise ValueError(f"{where}: 'points' must be a non-empty list")
    for p in points:
        missing = [k for k in _POINT_KEYS if not isinstance(p, dict) or k not in p]
        if missing:
            raise ValueError(f"{where}: a point lacks {missing}: {p!r}")
    return {**curve, "points": sorted(points, key=lambda p: p["step"]), "config": curve.get("config") or {},
            "card": curve.get("card")}


def runs_of(curve: dict) -> list[dict]:
    """Every run of one cell, oldest first: the runs restarted from scratch (``earlier``, kept by
    ``python -m sleeplab.repro collect``), then the current one."""
    return [*curve.get("earlier", []), curve]


def final(curve: dict) -> dict:
    """The last evaluation of a curve."""
    return curve["points"][-1]


def at_tokens(curve: dict, tokens: float) -> dict:
    """The last evaluation at or before ``tokens`` training tokens (the first one if none is)."""
    before = [p for p in curve["points"] if p["tokens"] <= tokens]
    return before[-1] if before else curve["points"][0]


def cell_info(curve: dict) -> dict:
    """What a cell trained: task, depth t, preset, N (an int, or "lo..hi" for variable-N), budget."""
    cfg = curve["config"]
    model_args = upgrade_fields(cfg.get("model_args", {}))
    n_range = model_args.get("n_sleep_range")
    if n_range:
        n = f"{n_range[0]}..{n_range[1]}"
    else:
        n = model_args.get("n_sleep", 1)
    return {"task": cfg.get("task"), "t": cfg.get("task_args", {}).get("t"), "preset": cfg.get("preset"),
            "n_sleep": n, "budget": cfg.get("tokens"), "inject": model_args.get("inject", "none"),
            "seed": cfg.get("seed", 0), "rule": model_args.get("rule", "gated_delta")}


def cell_name(t: int, n: int | None = None, variant: str = "", seed: int = 0, task: str = "rule110") -> str:
    """The one spelling of a depth cell's name: ``rule110-t8-n4``, ``rule110-t8-n1-x4tokens`` (a
    ``variant``), ``rule110-t8-n4-seed1`` (seed 0 carries no suffix), ``rule110-t8-transformer-evict``
    (no N)."""
    parts = [f"{task}-t{t}", *([f"n{n}"] if n is not None else []), *([variant] if variant else []),
             *([f"seed{seed}"] if seed else [])]
    return "-".join(parts)


def command(cell: str) -> str:
    """The command that re-runs a shipped cell from scratch (GPU strongly advised)."""
    return f"python -m sleeplab.repro run {cell}"


def final_table(curves: dict[str, dict] | None = None, cells=None) -> list[dict]:
    """One row per cell: what it trained and its final held-out accuracy, with card and command."""
    curves = load_curves() if curves is None else curves
    rows = []
    for cell in (cells if cells is not None else sorted(curves)):
        if cell not in curves:
            raise KeyError(f"no curve for cell {cell!r}; shipped cells: {sorted(curves)}")
        c, last = curves[cell], final(curves[cell])
        rows.append({"cell": cell, **cell_info(c), "tokens": last["tokens"], "step": last["step"],
                     "exact": last["exact"], "per_label": last.get("per_label"),
                     "eval_n_sleep": last.get("n_sleep"), "card": c.get("card"), "done": c.get("done"),
                     "command": command(cell)})
    return rows


def format_table(rows: list[dict], columns=("cell", "t", "n_sleep", "tokens", "exact", "per_label", "card")) -> str:
    """Rows as a plain-text table (accuracies as percentages, tokens in millions)."""
    def fmt(key, value):
        if value is None:
            return "-"
        if key in ("se", "chance", "majority"):  # small or exact fractions (6.25 %): two decimals
            return f"{100 * value:.2f}%"
        if key in _PERCENT or key.startswith("k="):
            return f"{100 * value:.1f}%"
        if key == "tokens":
            return f"{value / 1e6:.0f}M"
        return str(value)
    cells = [[fmt(k, r.get(k)) for k in columns] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(columns)]
    line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(c) for c in cells])


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` measured on ``n`` examples."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.sqrt(max(p * (1 - p), 0.0) / n)


# ---- checkpoints ------------------------------------------------------------------------------------

def checkpoints() -> dict[str, Path]:
    """``{name: path}`` of the shipped compact exports in ``data/checkpoints``."""
    folder = data_dir() / "checkpoints"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (the checkpoints ship with a repository checkout)")
    return {p.name[: -len(CHECKPOINT_SUFFIX)]: p for p in sorted(folder.glob("*" + CHECKPOINT_SUFFIX))}


def checkpoint_path(name: str) -> Path:
    """Path of the shipped checkpoint ``name`` (e.g. "rule110-t8-nvar"), with a clear error if absent."""
    have = checkpoints()
    if name not in have:
        raise FileNotFoundError(f"no checkpoint {name!r} in {data_dir() / 'checkpoints'}; shipped: {sorted(have)}")
    return have[name]


def load_model(name: str, device=None):
    """A shipped checkpoint, loaded with :func:`sleeplab.load` (``device=None``: CUDA when present)."""
    from ..api import load
    return load(checkpoint_path(name), device=device)


def interpolate(curve: dict, tokens: float, key: str = "exact") -> float | None:
    """``key`` at ``tokens`` training tokens, linear between the two evaluations around it (they fall
    every 10-13 M tokens); None outside the evaluated range: a run is never extrapolated."""
    points = curve["points"]
    if not points[0]["tokens"] <= tokens <= points[-1]["tokens"]:
        return None
    after = next(i for i, p in enumerate(points) if p["tokens"] >= tokens)
    b = points[after]
    if b["tokens"] == tokens or after == 0:
        return b[key]
    a = points[after - 1]
    w = (tokens - a["tokens"]) / (b["tokens"] - a["tokens"])
    return a[key] + w * (b[key] - a[key])


def tokens_to_reach(curve: dict, level: float) -> float | None:
    """The training tokens at which a curve first reaches ``level`` exact accuracy (linear between the
    evaluations around the crossing); None if it never does within the run."""
    points = curve["points"]
    if points[0]["exact"] >= level:
        return points[0]["tokens"]
    for a, b in zip(points, points[1:]):
        if b["exact"] >= level:
            return a["tokens"] + (level - a["exact"]) / (b["exact"] - a["exact"]) * (b["tokens"] - a["tokens"])
    return None


def cards(curves: dict, cells) -> str:
    """The cards the cells ran on, for a figure's title: the numbers are only comparable on one card."""
    return ", ".join(sorted({curves[c].get("card") or "card not recorded" for c in cells if c in curves}))


def last_common_evaluation(curves: dict[str, dict], cells) -> float | None:
    """The tokens of the last evaluation that every run in ``cells`` reached (runs of one batch size
    evaluate at the same steps), or None while one of them has no curve: where runs stopped when the
    device time ran out, the verdict point fixed before the runs."""
    if not cells or any(c not in curves for c in cells):
        return None
    return min(curves[c]["points"][-1]["tokens"] for c in cells)
