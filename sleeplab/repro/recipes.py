"""The recipe study: which training recipe lets more sleep win at depth, decided by a plan written
before the runs (``docs/results.md``, "The recipe study").

A study cell is named ``study-t{t}-n{N}-{recipe}-s{seed}`` (``-{tokens}`` when not 250M), e.g.
``study-t12-n4-norm-s0`` or ``study-t24-n1-norm+muonN-s2``; :func:`study_config` turns any such name into
its TrainConfig, so the runner can add cells that the results so far call for. A recipe is ``paper`` (Muon
2e-3 on hidden matrices, AdamW 5e-5 on the rest, nothing else) or ``+``-joined factors, each one change
to the paper's recipe:

    norm     features enter every pass at the embedding's scale      (SleepLMConfig.pass_norm="rms")
    inject   the embedding re-added at the stream's scale            (SleepLMConfig.inject="scaled")
    ramp     N rises from 1 to its target over the first quarter     (TrainConfig.n_ramp_steps)
    randn    N ~ U{1..N} drawn per batch, evaluated at N             (SleepLMConfig.n_sleep_range)
    trunc    features carry gradient through the last 2 passes only  (SleepLMConfig.grad_passes=2)
    muonN    Muon's rate divided by sqrt(N)                          (TrainConfig.muon_lr_n_power=0.5)
    adapter  a learned W [h, e] instead of the plain sum             (SleepLMConfig.inject="adapter")
    depth    residual outputs initialised for blocks x N depth       (SleepLMConfig.depth_init)
    triton   the GDN rule by fused Triton kernels: same maths, not a recipe (SleepLMConfig.op_mode)

Factors that change nothing at N = 1 (all but randn and depth) share the paper's N = 1 runs: a
one-pass model under them is the same computation (``tests/test_recipe_options.py``).

    python -m sleeplab.repro.recipes plan                 # the cells in the order the runner starts them
    python -m sleeplab.repro.recipes queue --out RUNS     # run the plan on this machine's GPU, P at a time
    python -m sleeplab.repro.recipes status --out RUNS    # the last record of every run
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..train.config import TrainConfig, parse_count
from .results import interpolate, last_common_evaluation, load_curves

T12 = "400M"  # the t = 12 seeds' budget past the screen's 250 M (docs/results.md, the sixth session)
STEPS_PER_250M = 4883  # ceil(250e6 / (512 x 100)): the study's budget for Rule 110 at batch 512
FACTORS: dict[str, tuple[dict, dict]] = {  # name -> (model_args, train config changes)
    "norm": ({"pass_norm": "rms"}, {}),
    "inject": ({"inject": "scaled"}, {}),
    "ramp": ({}, {"n_ramp_steps": STEPS_PER_250M // 4}),
    "randn": ({"n_sleep_range": None}, {}),  # filled with (1, N) for the cell's N
    "trunc": ({"grad_passes": 2}, {}),
    "muonN": ({}, {"muon_lr_n_power": 0.5}),
    "adapter": ({"inject": "adapter"}, {}),
    "depth": ({"depth_init": True}, {}),
    "triton": ({"op_mode": "triton"}, {}),
}
CHANGES_N1 = {"randn", "depth"}
SCREEN = ("norm", "inject", "ramp", "muonN", "trunc", "randn")  # adapter and depth: not screened (budget)
PAPER = dict(batch_size=512, muon_lr=2e-3, adam_lr=5e-5, warmup_steps=100, eval_every=250, eval_size=2048,
             device="cuda", fast=True)
_NAME = re.compile(r"study-t(\d+)-n(\d+)-([A-Za-z+]+)-s(\d+)(?:-(\w+))?")


def study_name(t: int, n: int, recipe: str, seed: int, tokens: str = "250M") -> str:
    if n == 1 and recipe != "paper" and not set(recipe.split("+")) & CHANGES_N1:
        recipe = "paper"  # the same computation: share the paper's run
    return f"study-t{t}-n{n}-{recipe}-s{seed}" + ("" if tokens == "250M" else f"-{tokens}")


# the six runs of the t = 12 test planned before the sixth session: its verdict is read where all reached
T12_VERDICT = tuple(study_name(12, n, "paper", s, T12) for n in (1, 4) for s in (0, 1, 2))


def study_config(name: str) -> TrainConfig:
    match = _NAME.fullmatch(name)
    if not match:
        raise ValueError(f"{name!r} is not a study cell; expected study-t<T>-n<N>-<recipe>-s<seed>[-<tokens>]")
    t, n, recipe, seed, tokens = match.groups()
    t, n, seed = int(t), int(n), int(seed)
    factors = [] if recipe == "paper" else recipe.split("+")
    unknown = [f for f in factors if f not in FACTORS]
    if unknown:
        raise ValueError(f"unknown recipe factors {unknown} in {name!r}; allowed: paper, {sorted(FACTORS)}")
    model_args, changes = {"d_model": 256, "n_heads": 4, "n_sleep": n}, {}
    for f in factors:
        m, c = FACTORS[f]
        model_args |= {k: ((1, n) if k == "n_sleep_range" else v) for k, v in m.items()}
        changes |= c
    budget = tokens or "250M"
    if "n_ramp_steps" in changes:  # a quarter of this cell's own budget
        changes["n_ramp_steps"] = -(-parse_count(budget) // (512 * 100)) // 4
    return TrainConfig(**PAPER, task="rule110", task_args={"t": t}, preset="sleep", model_args=model_args,
                       tokens=budget, seed=seed, **changes)


def shipped(curves: dict[str, dict] | None = None) -> dict[str, float]:
    """The final exact accuracy of every finished run in the shipped curves (``data/results/curves.json``,
    or ``curves``), so that a runner on a fresh machine knows what earlier sessions finished; {} where
    none are shipped. Once the t = 12 400 M-token verdict is read (at the last evaluation all six N = 1
    and N = 4 runs reached, :data:`T12_VERDICT`), those six runs count as finished at that point,
    with their exact there: the verdict is settled, so they are not restarted, and the compute-matched
    rule of :func:`plan` reads the lead at the verdict point, as the plan fixed before the runs says."""
    if curves is None:
        try:
            curves = load_curves()
        except FileNotFoundError:
            return {}
    known = {cell: c["points"][-1]["exact"] for cell, c in curves.items() if c.get("done")}
    at = last_common_evaluation(curves, T12_VERDICT)
    return known | ({c: interpolate(curves[c], at) for c in T12_VERDICT} if at is not None else {})


def final_exact(runs: Path, name: str, known: dict[str, float] | None = None) -> float | None:
    """A finished run's final held-out exact: from its done.json under ``runs``, else from ``known``
    (e.g. :func:`shipped`); None while it is unfinished."""
    done = runs / name / "done.json"
    if done.exists():
        return json.loads(done.read_text())["final"]["exact"]
    return (known or {}).get(name)


def lead(runs: Path, t: int, recipe: str, seed: int = 0, tokens: str = "250M", known=None) -> float | None:
    """N = 4's final exact minus N = 1's for one depth, recipe, seed and run length; None until both are done."""
    n4, n1 = (final_exact(runs, study_name(t, n, recipe, seed, tokens), known) for n in (4, 1))
    return None if n4 is None or n1 is None else n4 - n1


def best_factors(runs: Path, known=None) -> list[str] | None:
    """The screen's factors, best first by final held-out exact at N = 4; None until all are done."""
    scores = {f: final_exact(runs, study_name(12, 4, f, 0), known) for f in SCREEN}
    if any(v is None for v in scores.values()):
        return None
    return sorted(SCREEN, key=lambda f: -scores[f])


def combine(a: str, b: str) -> str:
    return "+".join(sorted({a, b}, key=list(FACTORS).index))


def plan(runs: Path, known: dict[str, float] | None = None) -> list[str]:
    """Every cell wanted given the results so far (finished runs under ``runs``, and ``known`` final
    accuracies, e.g. the shipped curves), in priority order. Rules fixed before the runs: the two best screen
    factors (compatible: not both an injection) and their combination get three seeds at t = 12 beside the
    paper's recipe; the deep grid takes the screen's best recipe; a depth where its N = 4 leads N = 1 by
    >= 5 points (seed 0) gets seeds 1 and 2. Amended before the runs each amendment changes
    (docs/results.md): after the screen, the paper's recipe counts as a candidate for the deep grid and its
    t = 12 seeds run first; then the deep grid runs for 500 M tokens (t = 12 too), ahead of the factors'
    seeds and of the screen runs left unfinished (the deep grid takes the best finished recipe); where
    N = 4 leads at 500 M by >= 5 points on the mean of three seeds (amended after seed 1 at t = 16; it was
    seed 0 alone), N = 1 seed 0 also runs on N = 4's compute (2 B tokens: 500 M x 3.88 passes a token).
    Amended before the sixth session: t = 12's three seeds of N = 1 and 4 and N = 2 seed 0 run first,
    for 400 M tokens (:data:`T12`), with the same compute-matched rule (1.6 B tokens)."""
    done = lambda name: final_exact(runs, name, known)                 # noqa: E731
    cells = [f"rule110-t8-n{n}-41M" for n in (1, 2, 4)]               # per-N checkpoints for notebooks
    cells += [study_name(12, n, "paper", s) for s in (0, 1, 2) for n in (4, 1)]  # the paper's seeds
    screen = [study_name(12, 4, r, 0) for r in SCREEN]                 # stage 1: the screen
    if done(study_name(12, 4, "paper", 0)) is None or all(done(c) is None for c in screen):
        return cells + screen
    scored = ["paper"] + [r for r in SCREEN if done(study_name(12, 4, r, 0)) is not None]
    deep = max(scored, key=lambda r: done(study_name(12, 4, r, 0)))
    long = lambda t, n, s: study_name(t, n, deep, s, "500M")           # noqa: E731

    def confirmed(t: int, tokens: str) -> bool:                        # a lead the three seeds confirm
        leads = [lead(runs, t, deep, s, tokens, known) for s in (0, 1, 2)]
        return None not in leads and sum(leads) / 3 >= 0.05

    # t = 12 first, at 400 M: the three seeds' lead grew at every evaluation up to 250 M, and 400 M is
    # what one session's device time affords for its seven runs (amended before the sixth session)
    cells += [study_name(12, n, deep, s, T12) for s in (0, 1, 2) for n in (4, 1)]
    cells.append(study_name(12, 2, deep, 0, T12))
    if confirmed(12, T12):
        cells.append(study_name(12, 1, deep, 0, "1600M"))              # N = 1 at N = 4's compute
    # stage 4 first (amended before the ninth session): t = 32, N = 4 to 1 B needs a session of its own
    cells += [study_name(32, n, deep, 0, "1B") for n in (4, 1)]
    # amended before the tenth session: the grid's N = 2 and its t = 8 row; before the eleventh: seeds 1, 2 of that row
    cells += [long(t, 2, 0) for t in (16, 24)] + [study_name(8, n, deep, s) for s in (0, 1, 2) for n in ((1, 2, 4) if s == 0 else (4, 1))]
    for t in (16, 24):                                                 # stage 3: the deep grid, 500 M
        cells += [long(t, n, 0) for n in (4, 1)]
        gap = lead(runs, t, deep, tokens="500M", known=known)
        if gap is not None and gap >= 0.05:
            cells += [long(t, n, s) for s in (1, 2) for n in (4, 1)]
            if confirmed(t, "500M"):
                cells.append(study_name(t, 1, deep, 0, "2B"))          # N = 1 at N = 4's compute
    cells += screen                                                    # the screen's unfinished runs
    ranked = best_factors(runs, known)
    if ranked is not None:                                             # stage 2: the factors' seeds
        first = ranked[0]
        second = next(f for f in ranked[1:] if not {first, f} <= {"inject", "adapter"})
        for r in (first, second, combine(first, second)):
            cells += [study_name(12, 4, r, s) for s in (0, 1, 2)] + [study_name(12, 1, r, s) for s in (0, 1, 2)]
    return list(dict.fromkeys(cells))


def queue(runs: Path, parallel: int, poll_s: float = 5.0, cells: list[str] | None = None,
          known: dict[str, float] | None = None) -> None:
    """Start the plan's cells (or ``cells``, in that order, when a session's budget covers only some),
    ``parallel`` at a time, each a ``python -m sleeplab.repro run`` subprocess with its own log; re-plan whenever one ends. Resumes: a cell with done.json is skipped, one with a checkpoint
    continues, one in ``known`` (finished elsewhere, e.g. :func:`shipped`) is skipped too. A run
    stopped on its own (``kill`` of its PID: it saves and exits 0 unfinished) is not restarted by this
    queue, so one run can be stopped to give the card to the others; the next queue resumes it. Runs
    until every other wanted cell is done. Stop it with SIGTERM (``kill PID``, or ``timeout``
    around a device call): each run gets SIGTERM in turn, saves its last finished step and stops, and
    the queue returns once all have; the next queue on the same directory resumes them."""
    runs.mkdir(parents=True, exist_ok=True)
    running: dict[str, subprocess.Popen] = {}
    stopped: set[str] = set()  # ended cleanly but unfinished: stopped on purpose (SIGTERM), not restarted here
    # without a handler SIGTERM ends Python at once, skipping the finally below: the runs trained on
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        while True:
            for name, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    if proc.returncode != 0:  # not retried: its log says why
                        (runs / name).mkdir(exist_ok=True)
                        (runs / name / "failed").write_text(f"rc {proc.returncode}\n")
                    elif final_exact(runs, name) is None:
                        stopped.add(name)
                    print(f"{time.strftime('%H:%M:%S')} ended {name} rc={proc.returncode} "
                          f"exact={final_exact(runs, name)}", flush=True)
            todo = [c for c in (cells or plan(runs, known)) if c not in running and c not in stopped
                    and final_exact(runs, c, known) is None and not (runs / c / "failed").exists()]
            for name in todo[:max(parallel - len(running), 0)]:
                log = open(runs / f"{name}.log", "a")
                # a session of its own, as in a sweep: a signal to the queue's group (Ctrl-C) reaches
                # the queue alone, which stops each run with SIGTERM, on which it saves a finished step
                running[name] = subprocess.Popen([sys.executable, "-m", "sleeplab.repro", "run", name,
                                                  "--out", str(runs)], stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True)
                print(f"{time.strftime('%H:%M:%S')} start {name}", flush=True)
            if not running and not todo:
                return
            time.sleep(poll_s)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.wait()


def study_table(curves: dict[str, dict]) -> list[dict]:
    """One row per study cell in ``curves`` (``results.load_curves``): its last evaluation, and the
    per-pass diagnostics there (h RMS and token cosine after the first and the last pass)."""
    rows = []
    for cell in sorted(c for c in curves if c.startswith("study-")):
        t, n, recipe, seed, tokens = _NAME.fullmatch(cell).groups()
        last = curves[cell]["points"][-1]
        passes = last.get("passes", {})
        rms, cos = passes.get("h_rms", [None]), passes.get("token_cos", [None])
        rows.append({"cell": cell, "t": int(t), "n_sleep": int(n), "recipe": recipe, "seed": int(seed),
                     "done": curves[cell].get("done"), "tokens": last["tokens"], "exact": last["exact"],
                     "h_rms_first": rms[0], "h_rms_last": rms[-1], "cos_first": cos[0], "cos_last": cos[-1]})
    return rows


def status(runs: Path) -> str:
    """One line per run directory: its last record (step, exact, h RMS per pass) and state."""
    lines = []
    for metrics in sorted(runs.glob("*/metrics.jsonl")):
        records = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        if not records:
            continue
        last, run = records[-1], metrics.parent
        state = "done" if (run / "done.json").exists() else "FAILED" if (run / "failed").exists() else "running"
        rms = "/".join(f"{v:.2f}" for v in last.get("passes", {}).get("h_rms", []))
        lines.append(f"{run.name:40s} {state:7s} step {last['step']:6d} exact {last['exact']:.3f} "
                     f"h_rms {rms} wall {last['wall_s']:.0f}s")
    return "\n".join(lines)


def main(argv=None, check=study_config) -> int:
    """``check``: raises for a cell name ``run`` would not know (the reproduction's ``cell_config``)."""
    ap = argparse.ArgumentParser(prog="sleeplab repro study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="the cells still to run, in order (runs finished under --out or shipped are done)")
    p.add_argument("--out", type=Path, default=Path("runs"))
    q = sub.add_parser("queue", help="run the plan")
    q.add_argument("--out", type=Path, default=Path("runs"))
    q.add_argument("--parallel", type=int, default=1,
                   help="runs at a time (default 1: runs sharing one GPU lost 14-50 %% of its throughput)")
    q.add_argument("--cells", nargs="+", default=None, metavar="CELL",
                   help="run these cells in this order instead of the plan")
    st = sub.add_parser("status", help="the last record of every run")
    st.add_argument("--out", type=Path, default=Path("runs"))
    args = ap.parse_args(argv)
    if args.cmd == "status":
        print(status(args.out))
    elif args.cmd == "plan":  # what is still to run: finished here or shipped counts as done
        known = shipped()
        print("\n".join(c for c in plan(args.out, known) if final_exact(args.out, c, known) is None))
    else:
        if args.parallel < 1:
            raise SystemExit(f"--parallel must be >= 1, got {args.parallel}")
        for name in args.cells or []:
            check(name)  # every name checked before anything starts
        queue(args.out, args.parallel, cells=args.cells, known=shipped())
    return 0


if __name__ == "__main__":
    sys.exit(main())
