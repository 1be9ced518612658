"""N = 1 against N = 4 at equal compute: compute counts passes of the block stack per token, runs are read
between their evaluations and never past them, and the verdict says which N is ahead for every seed."""
import pytest

from sleeplab.repro import compute, figures, recipes, results, tables
from sleeplab.repro.recipes import study_config, study_name


def named_curve(name, points):
    """A curve as ``collect`` writes one: the study cell's own config, and (tokens, exact) evaluations."""
    return {"cell": name, "card": "test card", "config": study_config(name).to_dict(),
            "points": [{"tokens": x, "exact": e} for x, e in points]}


def study_curve(t, n, seed, points):
    """:func:`named_curve` of the paper's recipe's 250 M-token study cell of depth t, N and seed."""
    return named_curve(study_name(t, n, "paper", seed), points)


def test_passes_per_token_counts_n_passes_over_the_context_and_one_over_the_queries():
    n4 = study_curve(12, 4, 0, [(0, 0)])
    assert compute.passes_per_token(n4) == pytest.approx(96 / 100 * 4 + 4 / 100)   # 3.88
    assert compute.passes_per_token(study_curve(12, 1, 0, [(0, 0)])) == pytest.approx(1.0)
    randn = {**n4, "config": study_config("study-t12-n4-randn-s0").to_dict()}     # N ~ U{1..4}: mean 2.5
    assert compute.passes_per_token(randn) == pytest.approx(0.96 * 2.5 + 0.04)
    evict = {**n4, "config": {**n4["config"], "preset": "transformer-evict"}}
    assert compute.passes_per_token(evict) == 1.0
    depo = {**n4, "cell": "depo-n4", "config": {**n4["config"], "task": "depo", "task_args": {}}}
    with pytest.raises(ValueError, match="depo-n4.*'depo'"):
        compute.passes_per_token(depo)


def test_interpolate_is_linear_between_evaluations_and_never_extrapolates():
    curve = {"points": [{"tokens": 10, "exact": .1}, {"tokens": 20, "exact": .3}, {"tokens": 40, "exact": .5}]}
    assert results.interpolate(curve, 10) == .1 and results.interpolate(curve, 40) == .5
    assert results.interpolate(curve, 15) == pytest.approx(.2)
    assert results.interpolate(curve, 30) == pytest.approx(.4)
    assert results.interpolate(curve, 9.9) is None and results.interpolate(curve, 40.1) is None


def test_compute_matched_reads_n4_at_its_share_of_n1s_tokens():
    n1 = [study_curve(12, 1, s, [(0, 0), (250e6, .4 + s / 100)]) for s in (0, 1)]
    n4 = [study_curve(12, 4, s, [(0, 0), (1e9, .8)]) for s in (0, 1)]
    curves = {c["cell"]: c for c in n1 + n4}
    rows = compute.compute_matched_table(curves, t=12, budgets=(194e6, 388e6))
    at194 = {r["cell"]: r for r in rows if r["at"] == 194e6}
    assert at194["study-t12-n4-paper-s0"]["tokens"] == pytest.approx(50e6)         # 194 M / 3.88
    assert at194["study-t12-n4-paper-s0"]["exact"] == pytest.approx(.04)           # .8 x 50 M / 1 B
    assert at194["study-t12-n1-paper-s1"]["exact"] == pytest.approx(.41 * 194 / 250)
    # 388 M passes x tokens lies past the N = 1 runs' 250 M: only N = 4 is read there
    assert {r["n_sleep"] for r in rows if r["at"] == 388e6} == {4}
    verdict = tables.seeds_verdict(rows)
    assert verdict[194e6]["low_above_high"] is True and verdict[194e6]["win"] is False
    assert verdict[388e6]["low_above_high"] is None                                # no N = 1 side: no verdict
    fig = figures.compute_matched(curves)
    trace = next(d for d in fig.data if d.name == "N = 4, seed 1")
    assert list(trace.x) == pytest.approx([0, 3880])                               # M passes x tokens
    assert "test card" in fig.layout.title.text


def test_compute_matched_figure_is_left_out_without_runs():
    assert figures.compute_matched({}) is None


def test_tokens_to_reach_is_the_first_crossing_between_evaluations():
    curve = {"points": [{"tokens": 0, "exact": .1}, {"tokens": 10, "exact": .3}, {"tokens": 20, "exact": .2},
                        {"tokens": 30, "exact": .5}]}
    assert results.tokens_to_reach(curve, .05) == 0
    assert results.tokens_to_reach(curve, .2) == pytest.approx(5)     # the first crossing, not the one at 20
    assert results.tokens_to_reach(curve, .35) == pytest.approx(25)
    assert results.tokens_to_reach(curve, .6) is None


def test_exchange_rate_divides_n1s_tokens_by_n4s_and_bounds_it_where_n1_fell_short():
    curves = {c["cell"]: c for c in (study_curve(12, 1, 0, [(0, 0), (200e6, .4)]),
                                     study_curve(12, 4, 0, [(0, 0), (100e6, .5)]))}
    rows = {r["level"]: r for r in compute.exchange_rate_table(curves, t=12, levels=(.2, .5, .6), seeds=(0,))}
    assert rows[.2]["tokens_n1"] == pytest.approx(100e6) and rows[.2]["tokens_n4"] == pytest.approx(40e6)
    assert rows[.2]["ratio"] == pytest.approx(2.5) and rows[.2]["bound"] is False
    assert rows[.5]["tokens_n1"] is None and rows[.5]["ratio"] == pytest.approx(2.0) and rows[.5]["bound"] is True
    assert .6 not in rows                      # N = 4 never got there: no rate either way


@pytest.mark.parametrize("n1_at_matched, call", [(0.90, "N = 1 ahead"), (0.50, "sleep pays"), (0.60, "unresolved")])
def test_t12_equal_compute_reads_n1_at_n4s_compute_at_the_verdict_point(n1_at_matched, call):
    # the six verdict runs stop at 300 M (seed 2 first), so the read is at 300 M x 3.88 = 1,164 M; N = 4
    # reads 52.5 / 52.5 / 70 % there (mean 58.3 %), and N = 1 must clear it by 5 points either way
    curves = {name: named_curve(name, [(0, 0), (300e6 if name.endswith("s2-400M") else 400e6, .7)])
              for name in recipes.T12_VERDICT}
    assert compute.t12_equal_compute(curves) is None                     # no compute-matched run yet
    matched = named_curve(compute.T12_MATCHED, [(0, 0), (1164e6, n1_at_matched), (1600e6, .99)])
    curves[matched["cell"]] = matched
    read = compute.t12_equal_compute(curves)
    assert read["at"] == 300e6 and read["n1_tokens"] == pytest.approx(1164e6)
    assert read["n1_exact"] == pytest.approx(n1_at_matched)
    assert read["n4_exact"] == pytest.approx([.7 * 300 / 400, .7 * 300 / 400, .7])
    assert read["n4_mean"] == pytest.approx((.525 * 2 + .7) / 3)
    assert read["call"] == call
    assert read["n1_exact_at_equal_tokens"] == pytest.approx(n1_at_matched * 300 / 1164)
    matched["points"] = matched["points"][:1] + [(dict(tokens=1e9, exact=.9))]  # stopped short of the compute
    assert compute.t12_equal_compute(curves) is None


def test_t12_figures_draw_n2_beside_the_verdict_and_the_matched_n1_at_equal_compute():
    # the 400 M-token runs with N = 2, and one 250 M-token run, whose panel the matched N = 1 joins
    names = [*recipes.T12_VERDICT, recipes.study_name(12, 2, "paper", 0, "400M"), recipes.study_name(12, 4, "paper", 0)]
    curves = {n: named_curve(n, [(0, 0), (100e6, .3), (200e6, .5)]) for n in names}
    long_names = {tr.name for tr in figures.t12_long_seeds(curves).data}
    assert {"N = 1, seed 2", "N = 2, seed 0", "N = 4, seed 1"} <= long_names
    assert "N = 1, seed 0, 4x tokens" not in {tr.name for tr in figures.compute_matched(curves).data}
    curves[compute.T12_MATCHED] = named_curve(compute.T12_MATCHED, [(0, 0), (800e6, .9)])
    drawn = [tr for tr in figures.compute_matched(curves).data if tr.name == "N = 1, seed 0, 4x tokens"]
    assert [list(tr.x) for tr in drawn] == [[0, 800]]          # M passes x tokens: N = 1 runs one a token
