"""Sleep at equal compute: what a Rule 110 run costs per token (passes of the block stack), every run
read at equal passes x tokens, and the token exchange rate, how many more tokens N = 1 needs than N = 4
to reach the same accuracy. Sleep can win at equal compute only where that rate exceeds N = 4's price
per token (3.88 passes against 1). ``python -m sleeplab.repro tables`` prints both tables."""
from __future__ import annotations

from .recipes import T12_VERDICT, study_name
from .results import cell_info, interpolate, last_common_evaluation, load_curves, tokens_to_reach
from .tables import DEEP_BUDGETS, first_grid_cell, study_cell

# passes x tokens at which N = 1 and N = 4 are compared (within each N = 1 run's whole range)
COMPUTE_BUDGETS = {8: (50e6, 75e6, 100e6), 12: (100e6, 150e6, 200e6, 250e6), 16: DEEP_BUDGETS}
# held-out exact accuracies at which the tokens each N needed are compared
LEVELS = {8: (0.5, 0.7, 0.9), 12: (0.2, 0.3, 0.4, 0.5), 16: (0.15, 0.2, 0.25, 0.3)}


def passes_per_token(curve: dict) -> float:
    """Passes of the block stack per training token: the compute of a Rule 110 run, per token. A sleeping
    model runs N passes over each context window and one over the query tokens (the paper's layout:
    96 context and 4 query tokens, so N = 4 costs 0.96 x 4 + 0.04 = 3.88 passes a token; the H200
    benchmark's step times, 47.7 against 12.45 ms, give 3.83); N = 1 and attention-only models run one.
    A variable-N model counts its mean N."""
    from ..tasks.rule110 import Rule110Config
    info = cell_info(curve)
    if info["task"] != "rule110":
        raise ValueError(f"passes_per_token counts Rule 110's layout; {curve.get('cell')!r} trained {info['task']!r}")
    if info["preset"].startswith("transformer"):
        return 1.0
    n = info["n_sleep"]
    mean_n = sum(map(int, n.split(".."))) / 2 if isinstance(n, str) else n
    layout = Rule110Config(**curve["config"].get("task_args", {}))
    context = layout.n_states * layout.window
    share = context / (context + layout.n_states)
    return share * mean_n + (1 - share)


# the runs compared at equal compute, per depth: the recipe they trained with and cell(n, seed) naming them
COMPUTE_MATCHED = {8: ("first grid", first_grid_cell(8)), 12: ("paper's recipe", study_cell(12)),
                   16: ("paper's recipe", study_cell(16, run_tokens="500M"))}
# the t = 12 runs to 400 M tokens, where N = 4 won at equal tokens: (cell, budgets, levels) for the
# two tables below; N = 1's 400 M tokens are the most compute either N spent
LONG12 = (study_cell(12, run_tokens="400M"), (200e6, 300e6, 400e6), (0.5, 0.6, 0.7))
# N = 1 trained on N = 4's compute for 400 M tokens (one seed), and the margin its read must clear
T12_MATCHED, CLEAR_POINTS = study_name(12, 1, "paper", 0, "1600M"), 5.0


def compute_matched_table(curves: dict[str, dict] | None = None, t: int = 12, cell=None, ns=(1, 4),
                          seeds=(0, 1, 2), budgets=None) -> list[dict]:
    """Every seed of each N at equal compute: at ``budgets`` passes x tokens (default
    ``COMPUTE_BUDGETS[t]``), each run read at compute / :func:`passes_per_token` of its tokens
    (``interpolate``d), so N = 4 is read at about a quarter of N = 1's tokens. Rows carry the
    compute as ``at`` and budget "equal", the shape :func:`seeds_verdict` reads. ``cell(n, seed)`` names
    the runs (default: ``COMPUTE_MATCHED[t]``'s). Runs whose range does not reach a budget are left
    out at it."""
    curves = load_curves() if curves is None else curves
    cell = cell or COMPUTE_MATCHED[t][1]
    rows = []
    for spent in budgets or COMPUTE_BUDGETS[t]:
        for n in ns:
            for seed in seeds:
                c = curves.get(cell(n, seed))
                tokens = spent / passes_per_token(c) if c else None
                exact = interpolate(c, tokens) if c else None
                if exact is not None:
                    rows.append({"cell": cell(n, seed), "n_sleep": n, "seed": seed, "budget": "equal",
                                 "at": spent, "tokens": tokens, "exact": exact})
    return rows


def exchange_rate_table(curves: dict[str, dict] | None = None, t: int = 12, levels=None, seeds=(0, 1, 2),
                        cell=None) -> list[dict]:
    """Per accuracy level and seed: the tokens N = 1 and N = 4 of that seed needed to reach it, and
    ``ratio`` = N = 1's / N = 4's. Where N = 4 got there and N = 1 did not, ``ratio`` is a lower bound
    (N = 1's last tokens / N = 4's, ``bound`` True). Levels N = 4 never reached are left out."""
    curves = load_curves() if curves is None else curves
    cell = cell or COMPUTE_MATCHED[t][1]
    rows = []
    for level in levels or LEVELS[t]:
        for seed in seeds:
            n1, n4 = curves.get(cell(1, seed)), curves.get(cell(4, seed))
            if not (n1 and n4) or tokens_to_reach(n4, level) is None:
                continue
            t1, t4 = tokens_to_reach(n1, level), tokens_to_reach(n4, level)
            bound = t1 is None
            t1_or_end = n1["points"][-1]["tokens"] if bound else t1
            rows.append({"t": t, "level": level, "seed": seed, "tokens_n1": t1, "tokens_n4": t4,
                         "ratio": t1_or_end / t4, "bound": bound})
    return rows


def t12_equal_compute(curves: dict[str, dict] | None = None) -> dict | None:
    """The planned read of sleep at equal compute at t = 12: :data:`T12_MATCHED` (N = 1, one seed) at
    the compute the three N = 4 seeds of :data:`T12_VERDICT` had spent at the verdict point (its tokens
    x their passes a token, interpolated), against their mean there. ``call``: "sleep pays" if N = 1 is
    below that mean by at least :data:`CLEAR_POINTS`, "N = 1 ahead" if above by as much, else
    "unresolved" (one N = 1 seed decides only a clear difference). ``n1_exact_at_equal_tokens``: the
    same run at the verdict point's tokens, beside the verdict's N = 1 run of its seed. None until every
    run exists and N = 1's run reaches that compute."""
    curves = load_curves() if curves is None else curves
    at, n1 = last_common_evaluation(curves, T12_VERDICT), curves.get(T12_MATCHED)
    if at is None or n1 is None:
        return None
    n4 = [curves[c] for c in T12_VERDICT if cell_info(curves[c])["n_sleep"] == 4]
    price = passes_per_token(n4[0])
    n1_exact = interpolate(n1, at * price / passes_per_token(n1))
    if n1_exact is None:
        return None
    n4_exact = [interpolate(c, at) for c in n4]
    mean = sum(n4_exact) / len(n4_exact)
    gap = 100 * (n1_exact - mean)
    call = "N = 1 ahead" if gap >= CLEAR_POINTS else "sleep pays" if gap <= -CLEAR_POINTS else "unresolved"
    return {"at": at, "passes_per_token": price, "n1_cell": T12_MATCHED, "n1_tokens": at * price,
            "n1_exact": n1_exact, "n4_exact": n4_exact, "n4_mean": mean, "n1_minus_n4_points": gap, "call": call,
            "n1_exact_at_equal_tokens": interpolate(n1, at)}
