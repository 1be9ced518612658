"""sleeplab.repro (cells, collect, tables, figures): every cell trains what its name says; collect, the tables and
the figures work on partial data (cells not run yet are left out, never a crash)."""
import json
import re
from dataclasses import replace

import pytest

from sleeplab.repro import figures, results, tables
from sleeplab.ops import RULES
from sleeplab.repro.__main__ import main
from sleeplab.repro.cells import CELLS, DEPO, cell_config, collect
from sleeplab.tasks import get_task
from sleeplab.train.config import parse_count

RULE110 = re.compile(r"rule110-t(?P<t>\d+)-(?:n(?P<n>\d+)|nvar|(?P<preset>transformer-evict|transformer-full))"
                     r"(?:-seed(?P<seed>\d+))?(?:-x(?P<mult>\d+)tokens)?(?:-(?P<rule>[a-z_]+))?(?:-(?P<budget>\d+[MB]))?")
NEW_CELLS = ["rule110-t8-n1-seed1", "rule110-t8-n1-seed2", "rule110-t8-n4-seed1", "rule110-t8-n4-seed2",
             "rule110-t8-n1-x4tokens", "rule110-t8-n2-hebbian", "rule110-t8-n2-delta",
             "depo-n1", "depo-n2", "depo-n4"]


def test_new_cells_exist_and_build_their_models():
    for name in NEW_CELLS:
        cfg = CELLS[name]
        model = cfg.model_config()     # raises on an unknown rule, preset or dial
        assert cfg.device == "cuda" and cfg.fast and cfg.batch_size == 512
        assert (model.d_model, model.pattern) == (256, "attn,gdn,attn,gdn")


@pytest.mark.parametrize("name", [n for n in CELLS if n.startswith("rule110-")])
def test_rule110_cell_names_say_what_they_train(name):
    m = RULE110.fullmatch(name)
    assert m, f"{name} does not follow the naming scheme"
    cfg, model = CELLS[name], CELLS[name].model_config()
    assert cfg.task == "rule110" and cfg.task_args == {"t": int(m["t"])}
    assert cfg.seed == int(m["seed"] or 0)
    assert model.rule == (m["rule"] or "gated_delta") and model.rule in RULES
    assert cfg.preset == (m["preset"] or "sleep")
    if m["n"]:
        assert model.n_sleep == int(m["n"]) and model.n_sleep_range is None
    if m["mult"]:   # compute-matched: N = 1 with mult x the tokens of the N = mult cell at the same t
        assert model.n_sleep == 1
        assert parse_count(cfg.tokens) == int(m["mult"]) * parse_count(CELLS[f"rule110-t{m['t']}-n{m['mult']}"].tokens)
    elif m["budget"]:  # a budget in the name is the budget it trains
        assert cfg.tokens == m["budget"]
    elif m["n"]:    # fixed-N cells of one depth share one budget, whatever their seed or rule
        assert cfg.tokens == CELLS[f"rule110-t{m['t']}-n1"].tokens


def test_seeds_differ_only_in_seed_from_seed_zero():
    for n in (1, 4):
        base = CELLS[f"rule110-t8-n{n}"].to_dict()
        for s in (1, 2):
            other = CELLS[f"rule110-t8-n{n}-seed{s}"].to_dict()
            assert {k for k in base if base[k] != other[k]} == {"seed"} and other["seed"] == s


def test_depo_cells_equal_budgets_and_reach_k16():
    cfgs = {n: CELLS[f"depo-n{n}"] for n in (1, 2, 4)}
    assert {c.tokens for c in cfgs.values()} == {"150M"}
    for n, cfg in cfgs.items():
        assert cfg.task == "depo" and cfg.task_args == DEPO and cfg.model_config().n_sleep == n
    task_cfg = cfgs[1].task_config()
    assert set(tables.DEPO_K) <= set(range(task_cfg.k_range[0], task_cfg.k_range[1] + 1))
    # T and L close to Rule 110's (100, 24), so the measured Rule 110 tokens/s carries over
    assert cfgs[1].seq_len() == 128 and cfgs[1].model_config().window == 32
    assert task_cfg.context_len // task_cfg.window >= 3      # edges spread over >= 3 evicted windows


POINT = {"loss": 1.0, "per_label": 0.5, "n_sleep": 4, "wall_s": 1.0}


def fake_run(root, cell, points, done=True):
    from sleeplab.train.checkpoint import DONE, METRICS
    d = root / cell
    d.mkdir(parents=True)
    (d / METRICS).write_text("".join(json.dumps(p) + "\n" for p in points))
    if done:
        (d / DONE).write_text("{}")
    return d


def curve_points(step_tokens, accs, **extra):
    return [{"step": i, "tokens": i * step_tokens, "exact": a, **POINT, **extra} for i, a in enumerate(accs)]


@pytest.fixture
def fake_curves(tmp_path):
    """A runs directory as a GPU session leaves it: some cells done, one just started, strays."""
    runs = tmp_path / "runs"
    step = 20.48e6     # so 41 M and 61 M fall on points 2 and 3
    for n, seed, accs in ((1, 0, [0, .2, .5, .6, .9]), (1, 1, [0, .3, .55, .7, .9]), (4, 0, [0, .3, .8, .9, .95]),
                          (4, 2, [0, .25, .7, .85, .9])):
        fake_run(runs, results.cell_name(8, n, seed=seed), curve_points(step, accs))
    fake_run(runs, "rule110-t8-n1-x4tokens", curve_points(step, [0, .2, .5, .6, .75, .8, .82, .85, .87, .88, .9, .9, .91]))
    fake_run(runs, "rule110-t8-n2-hebbian", curve_points(step, [0, .1, .2]), done=False)
    fake_run(runs, "rule110-t8-n2-delta", [])                 # started, no evaluation yet
    per_k = {str(k): 1 / k for k in range(1, 17)}
    fake_run(runs, "depo-n2", curve_points(65536 * 200, [0, .1, .3], per_query=.3, per_k=per_k))
    fake_run(runs, "not-a-cell", curve_points(step, [0, 1]))
    out = tmp_path / "curves.json"
    out.write_text(json.dumps([{"cell": "rule110-t8-n2", "card": "old", "done": True, "config": {},
                                "points": curve_points(step, [0, .4, .7, .8, .97])}]))
    collect(str(runs), str(out), card="test card")
    return results.load_curves(out)


def test_collect_merges_runs_skips_strays_and_empty_runs(fake_curves):
    assert set(fake_curves) == {"rule110-t8-n1", "rule110-t8-n1-seed1", "rule110-t8-n4", "rule110-t8-n4-seed2",
                                "rule110-t8-n1-x4tokens", "rule110-t8-n2-hebbian", "rule110-t8-n2", "depo-n2"}
    assert fake_curves["rule110-t8-n2"]["card"] == "old"                   # kept from the existing file
    hebb = fake_curves["rule110-t8-n2-hebbian"]
    assert hebb["card"] == "test card" and hebb["done"] is False
    assert hebb["config"] == json.loads(json.dumps(CELLS["rule110-t8-n2-hebbian"].to_dict()))
    info = results.cell_info(hebb)
    assert (info["rule"], info["n_sleep"], info["seed"]) == ("hebbian", 2, 0)
    assert results.cell_info(fake_curves["rule110-t8-n1-seed1"])["seed"] == 1


def test_collect_counts_a_run_that_reached_its_last_step_as_done_without_its_done_file(tmp_path):
    """Metrics brought back from a device without the rest of the run directory: the last step
    decides, so a run stopped one evaluation short stays unfinished."""
    cell = "study-t12-n1-paper-s0-400M"
    steps = cell_config(cell).total_steps()
    fake_run(tmp_path / "runs", cell, [{"step": s, "tokens": s * 51200, "exact": .5, **POINT} for s in (0, steps)],
             done=False)
    fake_run(tmp_path / "runs", "study-t12-n4-paper-s0-400M",
             [{"step": s, "tokens": s * 51200, "exact": .5, **POINT} for s in (0, steps - 250)], done=False)
    out = tmp_path / "curves.json"
    collect(str(tmp_path / "runs"), str(out), card="test card")
    curves = results.load_curves(out)
    assert curves[cell]["done"] is True and curves["study-t12-n4-paper-s0-400M"]["done"] is False


def test_collect_keeps_a_cell_run_again_from_scratch_as_an_earlier_run_and_a_resumed_one_as_one_curve(tmp_path):
    cell = "study-t12-n4-paper-s0-400M"
    out = tmp_path / "curves.json"
    def session(name, accs, card):
        fake_run(tmp_path / name, cell, curve_points(51200, accs), done=False)
        collect(str(tmp_path / name), str(out), card=card)
        return results.load_curves(out)[cell]
    session("first", [.1, .2], "H200")
    resumed = session("resumed", [.1, .2, .3], "H200")              # the same records, then more
    assert "earlier" not in resumed and len(resumed["points"]) == 3
    again = session("again", [.1, .25], "H100")                     # restarted from step 0: other records
    assert [e["card"] for e in again["earlier"]] == ["H200"] and again["earlier"][0]["points"][-1]["exact"] == .3
    third = session("third", [.1, .15, .4, .6], "H100")
    assert [len(e["points"]) for e in third["earlier"]] == [3, 2]   # oldest first
    assert [len(r["points"]) for r in results.runs_of(third)] == [3, 2, 4]
    collect(str(tmp_path / "third"), str(out), card="H100")        # collected twice: nothing added
    assert len(results.load_curves(out)[cell]["earlier"]) == 2


def test_seeds_table_and_verdict(fake_curves):
    rows = tables.seeds_table(fake_curves)
    at41 = {(r["cell"], r["budget"]): r for r in rows if r["at"] == 41e6}
    assert {c for c, _ in at41} == {"rule110-t8-n1", "rule110-t8-n1-seed1", "rule110-t8-n4",
                                    "rule110-t8-n4-seed2", "rule110-t8-n1-x4tokens"}
    assert at41[("rule110-t8-n1", "equal")]["exact"] == .5 and at41[("rule110-t8-n1", "equal")]["tokens"] == 40.96e6
    assert at41[("rule110-t8-n1-x4tokens", "x4")]["tokens"] == 163.84e6     # 4x the tokens, nearest point
    assert not [r for r in rows if r["at"] == 100e6]       # no evaluation near 100 M: left out, not misplaced
    v = tables.seeds_verdict(rows)
    assert v[41e6]["seeds"] == (2, 2) and v[41e6]["high_above_low"] is True      # .7 > .55
    assert v[41e6]["high_above_control"] is False                              # .7 < .87 (at 163.84 M)
    assert v[61e6]["high_above_low"] is True and v[61e6]["min_high"] == .85
    assert round(v[41e6]["mean_gap_points"], 6) == 22.5 and v[41e6]["win"] is True  # (.8 + .7) / 2 - (.5 + .55) / 2
    assert tables.seeds_verdict([]) == {}


def test_seed_verdict_needs_the_mean_lead_and_no_overlap():
    def rows(high, low):
        return [{"at": 1, "n_sleep": n, "budget": "equal", "exact": e} for n, es in ((4, high), (1, low)) for e in es]
    assert tables.seeds_verdict(rows([.65, .53, .56], [.55, .47, .48]))[1]["win"] is False   # overlap: .53 < .55
    assert tables.seeds_verdict(rows([.60, .59, .62], [.55, .47, .48]))[1]["win"] is True
    assert tables.seeds_verdict(rows([.58, .57, .59], [.55, .50, .52]))[1]["win"] is False   # lead of 5.7 points


def test_study_seeds_are_read_through_their_own_names(fake_curves):
    from sleeplab.repro.recipes import study_name
    curve = {"points": [{"tokens": 250e6, "exact": .5}]}
    curves = {study_name(12, n, "paper", s): curve for n in (1, 4) for s in (0, 1, 2)}
    rows = tables.study_seeds_table(curves, t=12, tokens=(250e6,))
    assert len(rows) == 6 and {r["cell"] for r in rows} == set(curves)
    fig = figures.t12_study_seeds({c: {**curve, "cell": c, "card": "test card"} for c in curves})
    assert {"N = 1, seed 2", "N = 4, seed 0", "N = 4"} <= {d.name for d in fig.data}


def test_long_study_runs_are_compared_apart_from_the_250M_runs():
    """A 500 M-token run is a run of its own, named so: the t = 16 table reads only the 500 M runs,
    and a 250 M run of the same depth, N and seed never stands in for one."""
    from sleeplab.repro.recipes import study_name
    long = {"points": [{"tokens": t * 1e6, "exact": t / 1000} for t in (100, 250, 500)]}
    short = {"points": [{"tokens": 250e6, "exact": .9}]}
    curves = {study_name(16, 4, "paper", 0, "500M"): long, study_name(16, 1, "paper", 0): short}
    rows = tables.study_seeds_table(curves, t=16, tokens=(250e6, 500e6), run_tokens="500M")
    assert [(r["cell"], r["at"], r["exact"]) for r in rows] == [
        ("study-t16-n4-paper-s0-500M", 250e6, .25), ("study-t16-n4-paper-s0-500M", 500e6, .5)]
    assert tables.seeds_verdict(rows)[500e6]["win"] is None   # no N = 1 500 M run: no verdict either way
    fig = figures.t16_study_seeds({c: {**v, "cell": c, "card": "test card"} for c, v in curves.items()})
    assert "1 seed" in fig.layout.annotations[0].text


def test_t12_400M_verdict_is_read_where_the_slowest_of_the_six_runs_stopped():
    """The sixth session's rule, fixed before its runs: runs stopped by the device time are compared
    at the last evaluation all six N = 1 and N = 4 seeds reached, not at each run's own last point."""
    from sleeplab.repro.recipes import study_name
    step = 12.8e6
    def run(n_points, slope):
        return {"points": [{"tokens": i * step, "exact": min(slope * i, 1.0)} for i in range(n_points)]}
    curves = {study_name(12, 4, "paper", s, "400M"): run(n, .03) for s, n in ((0, 27), (1, 25), (2, 26))}
    curves |= {study_name(12, 1, "paper", s, "400M"): run(32, .02) for s in (0, 1, 2)}
    assert tables.last_common_evaluation(curves, list(curves)) == 24 * step
    rows, at = tables.long12_table(curves)
    assert at == 24 * step and max(r["at"] for r in rows) == at
    assert {r["tokens"] for r in rows if r["at"] == at} == {at}       # N = 1 read there, not at its 400 M
    v = tables.seeds_verdict(rows)[at]
    assert round(v["mean_gap_points"], 6) == 24.0 and v["win"] is True   # 0.72 against 0.48
    del curves[study_name(12, 1, "paper", 2, "400M")]
    rows, at = tables.long12_table(curves)
    assert at is None                                                  # a seed missing: no verdict point
    assert {r["at"] for r in rows if r["n_sleep"] == 4 and r["seed"] == 1} == {100e6, 200e6, 250e6, 300e6}
    assert {r["at"] for r in rows if r["n_sleep"] == 1} == set(tables.LONG12_BUDGETS)
    assert tables.seeds_verdict(rows)[300e6]["seeds"] == (3, 2)
    fig = figures.t12_long_seeds({c: {**v, "cell": c, "card": "test card"} for c, v in curves.items()})
    assert {d.name for d in fig.data} >= {"N = 4, seed 2", "N = 1, seed 1"}
    assert figures.t12_long_seeds({}) is None


def test_a_rerun_of_a_study_cell_is_compared_with_the_first_run_at_equal_tokens():
    from sleeplab.repro.recipes import study_name
    def run(cell, card, exact_at_250):
        return {"cell": cell, "card": card, "points": [{"tokens": 0, "exact": 0}, {"tokens": 250e6, "exact": exact_at_250}]}
    longer = {"cell": "b", "card": "H100", "points": [{"tokens": 0, "exact": 0}, {"tokens": 243.2e6, "exact": .6},
                                                      {"tokens": 256e6, "exact": .68}]}
    curves = {study_name(12, 4, "paper", 1): run("a", "H200", .527), study_name(12, 4, "paper", 1, "400M"): longer,
              study_name(12, 1, "paper", 1): run("c", "H200", .468)}        # no rerun of N = 1 seed 1
    (row,) = tables.rerun_table(curves)
    assert (row["n_sleep"], row["seed"], row["rerun"], row["first_card"], row["rerun_card"]) == (4, 1, 1, "H200", "H100")
    assert round(row["rerun_exact"], 6) == .6425        # read at 250 M: .6 + 6.8 / 12.8 of the way to .68
    assert round(row["difference_points"], 6) == 11.55
    assert row["first_reached"] == pytest.approx(250e6 * .5 / .527) and row["rerun_reached"] == pytest.approx(.5 / .6 * 243.2e6)
    pooled = tables.seeds_verdict(tables.pooled_runs(curves))[250e6]
    assert pooled["seeds"] == (2, 1) and round(pooled["mean_gap_points"], 6) == round(100 * ((.527 + .6425) / 2 - .468), 6)
    # the 400 M cell run again from scratch: its first run is kept as an earlier run, and both are reruns
    longer["earlier"] = [run("b0", "H100", .58)]
    rows = tables.rerun_table(curves)
    assert [(r["rerun"], round(r["rerun_exact"], 6)) for r in rows] == [(1, .58), (2, .6425)]
    assert tables.seeds_verdict(tables.pooled_runs(curves))[250e6]["seeds"] == (3, 1)


def test_seeds_verdict_gives_the_standard_error_of_the_mean_lead():
    rows = [{"at": 1, "n_sleep": n, "budget": "equal", "exact": e} for n, es in ((4, (.6, .7)), (1, (.5, .5, .8)))
            for e in es]
    v = tables.seeds_verdict(rows)[1]
    assert abs(v["se_gap_points"] - 100 * (.005 / 2 + .03 / 3) ** .5) < 1e-9   # sample variances .005 and .03
    assert tables.seeds_verdict(rows[:3])[1]["se_gap_points"] is None           # one N = 1 run: no spread


def test_ablation_and_depo_tables(fake_curves):
    rows = tables.ablation_table(fake_curves)
    assert [r["rule"] for r in rows] == ["gated_delta", "hebbian"]           # delta has no evaluation yet
    assert rows[0]["exact"] == .97 and rows[1]["exact"] == .2
    (depo,) = tables.depo_table(fake_curves)
    assert depo["cell"] == "depo-n2" and depo["per_query"] == .3
    assert depo["k=1"] == 1 and depo["k=16"] == 1 / 16
    assert list(tables.per_k(results.final(fake_curves["depo-n2"]))) == list(range(1, 17))
    text = results.format_table([depo], ("cell", "per_query", "k=1", "k=16"))
    assert "30.0%" in text and "100.0%" in text and "6.2%" in text


def test_depth_table_takes_each_cell_at_its_evaluation_nearest_100M(fake_curves):
    step = 10.24e6       # as the GPU runs evaluate: 102.4 M is nearest 100 M, and the run went on past it
    accs = [0, .1, .2, .3, .4, .5, .6, .7, .8, .9, .55, .95]
    curves = {**fake_curves, **{c: {"cell": c, "points": curve_points(step, accs)}
                                for c in ("rule110-t4-n2", "rule110-t16-n4")}}
    rows = tables.depth_table(curves)
    # the t = 8 cells stop at 81.92 M and t = 12 has none: left out, not placed at another budget
    assert [(r["t"], r["n_sleep"], r["tokens"], r["exact"]) for r in rows] == [(4, 2, 102.4e6, .55),
                                                                               (16, 4, 102.4e6, .55)]
    assert tables.depth_table(curves, tokens=81.92e6, ts=(8,)) == [
        {"cell": f"rule110-t8-n{n}", "t": 8, "n_sleep": n, "tokens": 81.92e6, "exact": e, "per_label": .5}
        for n, e in ((1, .9), (2, .97), (4, .95))]


@pytest.mark.parametrize("above_majority, within", [(.5, False), (.015, True), (-.015, True), (-.03, False)])
def test_eviction_table_measures_the_control_against_input_blind_guesses(above_majority, within):
    base = get_task("rule110").baselines(get_task("rule110").Config(t=8))
    exact = base["majority"] + above_majority
    cell = {"cell": "rule110-t8-transformer-evict", "points": curve_points(10.24e6, [.01, exact])}
    (row,) = tables.eviction_table({"rule110-t8-transformer-evict": cell})     # t = 4, 12, 16 not shipped
    assert (row["t"], row["tokens"], row["exact"], row["per_label"]) == (8, 10.24e6, exact, .5)
    assert (row["chance"], row["majority"]) == (base["chance"], base["majority"]) and base["chance"] == 1 / 16
    assert row["vs_chance"] == round(100 * (exact - 1 / 16), 2)
    assert row["vs_majority"] == pytest.approx(100 * above_majority, abs=0.005)
    assert row["within_2_points"] is within
    assert tables.eviction_table({}) == []


def test_figures_skip_cells_without_data(fake_curves):
    figs = figures.build(fake_curves)
    assert set(figs) == {"rule110_depth_sleep", "rule110_t8_seeds", "rule110_t8_rule_ablation", "depo_per_k",
                         "rule110_compute_matched", "rule110_where_sleep_pays"}
    names = lambda fig: {tr.name for tr in fig.data}
    depth = figs["rule110_depth_sleep"]     # only t = 8 has cells: one panel, not four with three empty
    assert [a.text for a in depth.layout.annotations if a.text.startswith("Rule 110")] == ["Rule 110, t = 8"]
    assert names(depth) == {"N = 1", "N = 2", "N = 4", "N = 1, 4x tokens"}
    majority = get_task("rule110").baselines(get_task("rule110").Config(t=8))["majority"]
    assert [(sh.y0, sh.line.dash) for sh in depth.layout.shapes] == [(majority, "dash")]
    assert "best input-blind guess" in {a.text for a in depth.layout.annotations}
    assert names(figs["rule110_t8_rule_ablation"]) == {"gated delta", "hebbian"}
    assert {"N = 1, seed 1", "N = 4, seed 2", "N = 1, 4x tokens"} <= names(figs["rule110_t8_seeds"])
    k_trace = figs["depo_per_k"].data[0]
    assert list(k_trace.x) == list(range(1, 17)) and k_trace.y[0] == 1
    only_depo = {"depo-n2": fake_curves["depo-n2"]}
    assert set(figures.build(only_depo)) == {"depo_per_k"}
    assert figures.build({}) == {}


def test_tables_command_runs_on_partial_data(fake_curves, tmp_path, capsys):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps([fake_curves["rule110-t8-n2-hebbian"]]))
    main(["tables", "--curves", str(path)])
    out = capsys.readouterr().out
    # no recipe study, t = 12 (250 M and 400 M runs) or t = 16 seeds, depth grid, eviction control, Depo cell,
    # test_time_n/, window_passes/ or query_probe.json beside it, N = 1 and N = 4 pairs by depth, a paper's-recipe grid
    # depth, or a Triton run beside its chunk run
    assert "rule110-t8-n2-hebbian" in out and out.count("(no data yet)") == 14


def test_depo_cell_records_per_k_on_cpu(tmp_path):
    """The Depo recipe, shrunk to two CPU steps, trains, evaluates and reaches curves.json with its
    per-hop-count breakdown (accuracy needs the GPU budget; this checks the plumbing only)."""
    from sleeplab.train import train
    # one thread, as every CPU test's run: under -n the second core is the other worker's
    cfg = replace(CELLS["depo-n2"], device="cpu", fast=False, batch_size=4, tokens=None, steps=2, eval_every=2,
                  eval_size=32, warmup_steps=1, threads=1, model_args={"d_model": 32, "n_heads": 2, "n_sleep": 2},
                  out=str(tmp_path / "runs" / "depo-n2"))
    train(cfg)
    collect(str(tmp_path / "runs"), str(tmp_path / "curves.json"))
    curve = results.load_curves(tmp_path / "curves.json")["depo-n2"]
    by_k = tables.per_k(results.final(curve))
    task_cfg = get_task("depo").Config(**DEPO)
    assert by_k and set(by_k) <= set(range(1, task_cfg.k_max + 1)) and all(0 <= a <= 1 for a in by_k.values())


def test_test_time_n_figure_holds_the_shipped_evaluations():
    """The figure's traces are the numbers of data/results/test_time_n/*.json: x = the N each checkpoint
    was run with, y the exact accuracy at each, error bars one binomial standard error over the report's
    examples, and the N each cell trained with shaded (N ~ U{1..4} for the variable-N models)."""
    reports = tables.load_test_time_n()
    trained = {"rule110-t8-nvar": (1, 4), "rule110-t12-nvar": (1, 4), "rule110-t8-n4-41M": (4, 4),
               "study-t12-n4-paper-s0-400M": (4, 4), "study-t12-n2-paper-s0-400M": (2, 2)}
    assert {"rule110-t8-nvar", "rule110-t12-nvar"} <= set(reports) <= set(trained)
    assert tuple(CELLS["rule110-t8-nvar"].model_args["n_sleep_range"]) == (1, 4)
    fig = figures.build({}, reports)["rule110_test_time_n"]
    assert {tr.name for tr in fig.data} == set(reports)
    for trace in fig.data:
        report = reports[trace.name]
        assert list(trace.x) == sorted(int(n) for n in report["results"]) and len(trace.x) >= 6
        exact = [report["results"][str(n)]["exact"] for n in trace.x]
        assert list(trace.y) == exact
        assert list(trace.error_y.array) == pytest.approx(
            [results.standard_error(p, report["examples"]) for p in exact])
        assert 0 < min(trace.error_y.array) and max(trace.error_y.array) < 0.012    # >= 2,048 examples
    shaded = sorted((sh.x0, sh.x1) for sh in fig.layout.shapes)
    assert shaded == sorted((trained[c][0] - 0.5, trained[c][1] + 0.5) for c in reports)
    # panels ordered by depth t, each titled with its t
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("Rule 110")]
    assert titles[0].startswith("Rule 110, t = 8<br>") and titles[-1].startswith("Rule 110, t = 12<br>")


def test_test_time_n_skipped_or_reported_when_files_missing_or_bad(fake_curves, tmp_path, capsys):
    assert tables.load_test_time_n(tmp_path / "nowhere") == {}
    assert "rule110_test_time_n" not in figures.build(fake_curves, {})
    assert "rule110_test_time_n" not in figures.build(fake_curves)
    folder = tmp_path / "test_time_n"
    folder.mkdir()
    (folder / "rule110-t8-nvar.json").write_text(json.dumps(
        {"checkpoint": "x/rule110-t8-nvar.sleeplab", "examples": 100,
         "results": {"2": {"exact": .5, "examples": 100}, "1": {"exact": .25, "examples": 100}}}))
    rows = tables.table_test_time_n(tables.load_test_time_n(folder))
    assert [(r["n_sleep"], r["exact"]) for r in rows] == [(1, .25), (2, .5)]       # sorted by N as numbers
    assert rows[1]["se"] == pytest.approx(0.05)
    curves = tmp_path / "curves.json"
    curves.write_text(json.dumps([fake_curves["rule110-t8-n2"]]))
    main(["tables", "--curves", str(curves)])                # finds test_time_n/ beside the curves
    out = capsys.readouterr().out
    assert "rule110-t8-nvar  1" in out and "5.00%" in out
    (folder / "bad.json").write_text(json.dumps({"results": {"1": {"per_label": .5}}}))
    with pytest.raises(ValueError, match="bad.json"):
        tables.load_test_time_n(folder)


def test_shipped_table_gives_the_difference_and_its_standard_error_in_points(tmp_path):
    entry = {"cell": "c", "n_sleep": 4, "fresh_minus_heldout_points": -1.0,
             "heldout": {"exact": 0.5, "examples": 10000}, "fresh": {"exact": 0.49, "examples": 10000}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps([entry]))
    (row,) = tables.shipped_table(tmp_path / "MANIFEST.json")
    assert (row["stated"], row["fresh"], row["difference"]) == (50.0, 49.0, -1.0)
    assert row["se_points"] == round(100 * (0.25 / 1e4 + 0.49 * 0.51 / 1e4) ** 0.5, 2)  # 0.71
    assert tables.shipped_table(tmp_path / "missing.json") == []


def test_manifest_sample_size_keeps_the_difference_error_under_its_bound():
    from sleeplab.repro.cells import manifest_eval_size
    for p in (0.0, 0.05, 0.27, 0.5, 0.94, 1.0):
        n = manifest_eval_size(p)
        assert n >= 8192 and n & (n - 1) == 0, "a power of two, at least the floor"
        assert (2 * p * (1 - p) / n) ** 0.5 * 100 <= 0.4
        assert n == 8192 or (2 * p * (1 - p) / (n // 2)) ** 0.5 * 100 > 0.4, "and no larger than needed"
    assert manifest_eval_size(0.27) == 32768
    with pytest.raises(ValueError, match="accuracy must be in \\[0, 1\\], got 1.5"):
        manifest_eval_size(1.5)


def test_recipe_study_figure_and_table_show_each_cell_with_its_passes():
    from sleeplab.repro.recipes import study_config, study_table
    passes = {"h_rms": [1.0, 2.0, 3.0, 4.0], "token_cos": [.3, .4, .5, .6]}
    points = [{**p, "passes": passes} for p in curve_points(12.8e6, [0, .2, .4])]
    curves = {c: {"cell": c, "done": d, "points": points, "config": study_config(c).to_dict()}
              for c, d in (("study-t12-n4-paper-s0", True), ("study-t12-n4-norm-s0", False),
                           ("study-t12-n1-paper-s0", True))}
    fig = figures.build(curves)["rule110_recipe_study"]
    names = {tr.name for tr in fig.data if tr.showlegend is not False}
    assert names == {"paper, N = 4", "norm, N = 4 (stopped)", "paper, N = 1"}
    per_pass = [tr for tr in fig.data if tr.showlegend is False]
    assert len(per_pass) == 2 * 3 and all(list(tr.x) == [1, 2, 3, 4] for tr in per_pass)
    rows = {r["cell"]: r for r in study_table(curves)}
    assert rows["study-t12-n4-norm-s0"]["exact"] == .4 and rows["study-t12-n4-norm-s0"]["done"] is False
    assert (rows["study-t12-n4-paper-s0"]["h_rms_last"], rows["study-t12-n4-paper-s0"]["cos_first"]) == (4.0, .3)
    assert "rule110_recipe_study" not in figures.build({"rule110-t8-n1": curves["study-t12-n4-paper-s0"]})
    deep = {"study-t24-n4-paper-s0-500M": {**curves["study-t12-n4-paper-s0"], "cell": "study-t24-n4-paper-s0-500M"}}
    figs = figures.build(deep)
    assert "rule110_t24_study" in figs and "rule110_t32_study" not in figs and "rule110_recipe_study" not in figs
    blind = get_task("rule110").baselines(get_task("rule110").Config(t=24))["majority"]
    assert [sh.y0 for sh in figs["rule110_t24_study"].layout.shapes] == [blind]
