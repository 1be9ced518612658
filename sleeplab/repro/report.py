"""The text of ``python -m sleeplab.repro tables``: every table of :mod:`sleeplab.repro.tables` and
:mod:`sleeplab.repro.compute`, with the verdict lines that docs/results.md quotes, from the shipped
curves alone."""
from __future__ import annotations

import json
from pathlib import Path


def _print_verdict(verdict: dict) -> None:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    for x, v in verdict.items():
        gap = "-" if v["mean_gap_points"] is None else f"{v['mean_gap_points']:+.1f}"
        print(f"  {x / 1e6:.0f} M, seeds of (N = 4, N = 1) {v['seeds']}: mean lead {gap} points, N = 4 worst "
              f"{pct(v['min_high'])}, N = 1 best {pct(v['max_low'])}, N = 1 at 4x tokens {pct(v['control'])}; "
              f"every N = 4 seed above every N = 1 seed: {v['high_above_low']}, above the control: "
              f"{v['high_above_control']}, win: {v['win']}")


def tables(curves_path: str = "data/results/curves.json", test_time_dir: str | None = None) -> None:
    """The seeds comparison (with its verdict: does every N = 4 seed beat every N = 1 seed?), the update-rule ablation, the depth x
    sleep grid, the evicting transformer against input-blind guesses, the Depo per-k table, checkpoints
    run at other N (``test_time_dir``, default ``test_time_n/`` beside the curves) and where sleep pays
    by depth, as text; a table whose cells have no data yet says so."""
    from ..lab import query_probe
    from . import by_depth, compute, op_modes, recipes, results, tables, window_passes
    curves = results.load_curves(curves_path)
    seeds = tables.seeds_table(curves)
    study = tables.study_seeds_table(curves)
    deep = tables.study_seeds_table(curves, t=16, tokens=tables.DEEP_BUDGETS, run_tokens="500M")
    long12, verdict_at = tables.long12_table(curves)
    test_time_dir = Path(curves_path).parent / tables.TEST_TIME_DIR if test_time_dir is None else test_time_dir
    for title, rows, columns in (
            ("recipe study (sleeplab.repro.recipes): last evaluation of each cell; h RMS and token cosine "
             "after the first and the last pass", recipes.study_table(curves),
             ("cell", "done", "tokens", "exact", "h_rms_first", "h_rms_last", "cos_first", "cos_last")),
            ("seeds at t = 8 (N = 1 control at 4x tokens)", seeds,
             ("cell", "n_sleep", "seed", "budget", "tokens", "exact")),
            ("seeds at t = 12, the paper's recipe (recipe study)", study,
             ("cell", "n_sleep", "seed", "tokens", "exact")),
            ("seeds at t = 16, the paper's recipe, 500 M-token runs", deep,
             ("cell", "n_sleep", "seed", "tokens", "exact")),
            ("seeds at t = 12, the paper's recipe, 400 M-token runs", long12,
             ("cell", "n_sleep", "seed", "tokens", "exact")),
            ("update rule at t = 8, N = 2", tables.ablation_table(curves),
             ("cell", "rule", "tokens", "exact", "per_label")),
            ("depth x sleep at 100 M tokens (seed 0)", tables.depth_table(curves),
             ("cell", "t", "n_sleep", "tokens", "exact", "per_label")),
            ("evicting transformer against input-blind guesses (vs_*: exact minus the baseline, points)",
             tables.eviction_table(curves),
             ("cell", "t", "tokens", "exact", "per_label", "chance", "majority", "vs_chance", "vs_majority",
              "within_2_points")),
            ("Depo per hop count k", tables.depo_table(curves),
             ("cell", "n_sleep", "tokens", "per_query", *(f"k={k}" for k in tables.DEPO_K))),
            ("sleep at test time: checkpoints run at other N (variable-N models at 1..8, fixed-N at 1..6; the same "
             "held-out examples at every N of a checkpoint)",
             tables.table_test_time_n(tables.load_test_time_n(test_time_dir)),
             ("cell", "n_sleep", "examples", "exact", "se", "per_label"))):
        print(f"\n{title}\n" + (results.format_table(rows, columns) if rows else "(no data yet)"))
    print("\nseeds at t = 8 (first grid):")
    _print_verdict(tables.seeds_verdict(seeds))
    print("seeds at t = 12 (recipe study, paper's recipe; win: mean lead >= 10 points, every N = 4 seed above "
          "every N = 1 seed):")
    _print_verdict(tables.seeds_verdict(study))
    print("seeds at t = 16 (paper's recipe, the same criterion; seeds 1 and 2 run when N = 4 leads by 5 points):")
    _print_verdict(tables.seeds_verdict(deep))
    where = ("not read: the six N = 1 and N = 4 seeds have not all run" if verdict_at is None else
             f"read at the last evaluation all six reached, {verdict_at / 1e6:.0f} M; earlier rows for the curve")
    print(f"seeds at t = 12, 400 M-token runs (the same criterion; verdict {where}):")
    full = {x: v for x, v in tables.seeds_verdict(long12).items() if v["seeds"] == (3, 3)}
    if full:
        _print_verdict(full)
    else:
        print("  no budget with all three seeds of both N yet")
    reruns = tables.rerun_table(curves)
    if reruns:
        print("\nthe same seed run twice at t = 12 (same initialisation and data order; 250 M-token run, then each "
              "rerun in a 400 M-token cell, oldest first), both at 250 M tokens, linear between evaluations; and "
              "the tokens each took to reach 50 % exact:")
        def mtok(x):
            return "never" if x is None else f"{x / 1e6:.0f} M"
        for r in reruns:
            print(f"  N = {r['n_sleep']}, seed {r['seed']}: {100 * r['first_exact']:.1f}% ({r['first_card']}), "
                  f"rerun {r['rerun']} {100 * r['rerun_exact']:.1f}% ({r['rerun_card']}): {r['difference_points']:+.1f} points; "
                  f"50 % at {mtok(r['first_reached'])}, rerun at {mtok(r['rerun_reached'])}")
        v = tables.seeds_verdict(tables.pooled_runs(curves))[250e6]
        se = "-" if v["se_gap_points"] is None else f"{v['se_gap_points']:.1f}"
        print(f"every t = 12 run of the paper's recipe at 250 M, first runs and reruns together (after the "
              f"fact, not the plan's test): runs of (N = 4, N = 1) {v['seeds']}, mean lead "
              f"{v['mean_gap_points']:+.1f} points (standard error {se}), N = 4 worst {100 * v['min_high']:.1f}%, "
              f"N = 1 best {100 * v['max_low']:.1f}%, every N = 4 run above every N = 1 run: {v['high_above_low']}")
    cell12, budgets12, levels12 = compute.LONG12
    panels = [(f"t = {t}", compute.compute_matched_table(curves, t=t), compute.exchange_rate_table(curves, t=t))
              for t in compute.COMPUTE_MATCHED]
    panels.append(("t = 12, 400 M-token runs", compute.compute_matched_table(curves, 12, cell12, budgets=budgets12),
                   compute.exchange_rate_table(curves, 12, levels12, cell=cell12)))
    print("\nat equal compute (passes x tokens; N = 4 read at 1 / 3.88 of N = 1's tokens, interpolated; t = 8: "
          "the first grid, t = 12 and 16: the paper's recipe):")
    for label, rows, _ in panels:
        for x, v in tables.seeds_verdict(rows).items():
            print(f"  {label}, {x / 1e6:.0f} M passes x tokens, seeds of (N = 4, N = 1) {v['seeds']}: N = 4 minus "
                  f"N = 1 {v['mean_gap_points']:+.1f} points on average; N = 4 best {100 * v['max_high']:.1f}%, "
                  f"N = 1 worst {100 * v['min_low']:.1f}%; every N = 1 seed above every N = 4 seed: "
                  f"{v['low_above_high']}")
    print("token exchange rate: the tokens N = 1 needed to reach a level over the tokens N = 4 needed (>=: N = 1 "
          "had not reached it when its run ended); sleep can win at equal compute only above 3.88:")
    for label, _, rates in panels:
        for r in rates:
            n1 = "not reached" if r["bound"] else f"{r['tokens_n1'] / 1e6:.0f} M"
            print(f"  {label}, {100 * r['level']:.0f} % exact, seed {r['seed']}: N = 1 {n1}, N = 4 "
                  f"{r['tokens_n4'] / 1e6:.0f} M tokens: rate {'>= ' * r['bound']}{r['ratio']:.2f}")
    matched = compute.t12_equal_compute(curves)
    if matched:
        print(f"t = 12 at equal compute, the planned read: {matched['n1_cell']} at {matched['n1_tokens'] / 1e6:.0f} M "
              f"tokens (the three N = 4 seeds' compute at {matched['at'] / 1e6:.0f} M, x {matched['passes_per_token']:.2f}) "
              f"{100 * matched['n1_exact']:.1f}% against their mean {100 * matched['n4_mean']:.1f}% ("
              + " / ".join(f"{100 * x:.1f}%" for x in matched["n4_exact"])
              + f"): N = 1 minus N = 4 {matched['n1_minus_n4_points']:+.1f} points, {matched['call']} (clear beyond "
              f"{compute.CLEAR_POINTS:.0f} points either way); the same run at {matched['at'] / 1e6:.0f} M tokens: "
              f"{100 * matched['n1_exact_at_equal_tokens']:.1f}%")
    leads = [{**r, **{k: f"{100 * r[k]:.1f}%" for k in ("n1", "n4", "n4_equal_compute")},
              **{k: f"{r[k]:+.1f}" for k in ("lead_tokens", "lead_compute")}} for r in by_depth.leads(curves)]
    print("\nwhere sleep pays, by depth (sleeplab.repro.by_depth): N = 4 minus N = 1 per seed, points, at the last "
          "evaluation every run of a depth reached (t = 8 also at 41 M); at equal compute N = 4 read at 1 / 3.88 "
          "of those tokens\n" + (results.format_table(leads, ("t", "recipe", "seed", "tokens", "n1", "n4", "lead_tokens",
                                                             "n4_equal_compute", "lead_compute"))
                                 if leads else "(no data yet)"))
    early = by_depth.early_t8_call(curves)
    print("t = 8 early lead, the paper's recipe (the eleventh GPU session's read: N = 4 minus N = 1 per seed at 41 M "
          "tokens; holds: mean >= 10 points, every N = 4 seed above every N = 1 seed; none: mean within 5 points): "
          + (f"{' / '.join(f'{g:+.1f}' for g in early['leads'])} points, mean {early['mean']:+.1f} (standard error "
             f"{early['se']:.1f}), every N = 4 seed above: {early['n4_above_n1']}; {early['call']}" if early
             else "not read: three seeds of both N have not reached 41 M"))
    kernels = [{k: (f"{v:+.1f}" if k.startswith("diff") else f"{100 * v:.1f}%") if isinstance(v, float) else v
                for k, v in r.items()} for r in op_modes.pairs(curves)]
    print("\nthe Triton kernels against the chunk path in training, t = 8, the paper's recipe (sleeplab.repro.op_modes): "
          "exact of each run of a seed, Triton minus chunk in points (N = 1: a rerun, the same computation)\n"
          + (results.format_table(kernels, tuple(kernels[0])) if kernels else "(no data yet)"))
    for n, v in op_modes.call(curves).items():
        spans = " / ".join("-" if s is None else f"{s:.1f}" for s in v["chunk_span"].values())
        print(f"  N = {n}, seeds {v['seeds']}: mean difference "
              + ", ".join(f"{m:+.1f} at {k}" for k, m in v["mean"].items())
              + f" (chunk seeds span {spans} points); {v['call']} (the rule: every mean within "
              f"{op_modes.BAND_POINTS:g} points)")
    grid = [{**r, **{k: f"{r[k]:.1f}%" for k in ("n1", "n2", "n4")}}
            for r in by_depth.grid(curves)]
    print("\nthe paper's-recipe grid, seed 0 (sleeplab.repro.by_depth): exact at the last evaluation N = 1, 2 and 4 "
          "all reached; where N = 2 sits by the rule written before its runs (between: at least a point from each; "
          "with N = 1 / N = 4: within 2 points)\n"
          + (results.format_table(grid, ("t", "tokens", "n1", "n2", "n4", "n2_place")) if grid else "(no data yet)"))
    passes = window_passes.table(window_passes.load(Path(curves_path).parent / window_passes.DIR))
    print("\nwhose sleep needs the passes (sleeplab.repro.window_passes): label j's accuracy, points, with N "
          "passes on every window, 1 on every window, 1 on window j only, N on window j only; others_moved: the "
          "largest change of another label without j's passes; recovered: share of the way back with j's alone\n"
          + (results.format_table(passes, ("cell", "n_sleep", "window", "full", "one", "without_j", "only_j",
                                           "others_moved", "recovered", "own", "suffice")) if passes else "(no data yet)"))
    path = Path(curves_path).parent / "query_probe.json"
    reads = [{**r, **{k: f"{100 * r[k]:.1f}%" for k in (*query_probe.READS, "model")}}
             for r in (query_probe.table(json.loads(path.read_text())) if path.exists() else [])]
    print("\nthe answer read at the query's own key (sleeplab.lab.query_probe): a linear probe of label j from S read "
          "at query j's key (own), at query j+1's (other), at random keys; the model's own per-label accuracy; "
          f"means over labels, %; holds: own within {query_probe.NEAR_MODEL:g} points of the model and "
          f"{query_probe.ABOVE_OTHERS:g} above random; own_key: own {query_probe.ABOVE_OTHERS:g} above other\n"
          + (results.format_table(reads, ("cell", "n_sleep", "own", "other", "random", "model", "majority", "holds",
                                          "own_key")) if reads else "(no data yet)"))
    rows = tables.shipped_table(Path(curves_path).parent.parent / "checkpoints" / "MANIFEST.json")
    if rows:
        print("\nshipped checkpoints: stated accuracy (fixed held-out set) vs a fresh set, exact, points; "
              "se_points: one standard error of the difference\n"
              + results.format_table(rows, ("cell", "n_sleep", "stated", "fresh", "difference", "se_points")))
