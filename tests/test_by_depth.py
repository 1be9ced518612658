"""The where-sleep-pays summary (``sleeplab.repro.by_depth``): each depth read at the last evaluation all
of its paired runs reached, N = 4 minus N = 1 at equal tokens and at equal compute, unpaired seeds left
out."""
import copy

import pytest

from sleeplab.repro import by_depth
from sleeplab.repro.compute import passes_per_token
from sleeplab.repro.results import load_curves
from sleeplab.repro.recipes import study_name


@pytest.fixture(scope="module")
def shipped():
    return load_curves()


def line(curve: dict, end: float, start_exact: float, end_exact: float, every: float = 50e6) -> dict:
    """``curve`` (a shipped run, for its config) with made-up evaluations: exact rising linearly to ``end``."""
    out = copy.deepcopy(curve)
    steps = int(end / every)
    out["points"] = [{"tokens": i * every, "exact": start_exact + (end_exact - start_exact) * i / steps}
                     for i in range(steps + 1)]
    return out


def test_each_depth_is_read_where_its_shortest_paired_run_ends(shipped):
    n1, n4 = (study_name(32, n, "paper", 0, "1B") for n in (1, 4))
    curves = {n1: line(shipped[n1], 1000e6, 0.10, 0.20), n4: line(shipped[n4], 800e6, 0.10, 0.50)}
    (row,) = [r for r in by_depth.leads(curves) if r["t"] == 32]
    assert row["tokens"] == 800e6                               # N = 4 stopped first: both read there
    assert row["n1"] == pytest.approx(0.18) and row["n4"] == pytest.approx(0.50)
    assert row["lead_tokens"] == pytest.approx(32.0)
    # equal compute: N = 4 read at 1 / 3.88 of N = 1's tokens, where its line stood lower
    price = passes_per_token(curves[n4])
    assert price == pytest.approx(3.88)
    assert row["n4_equal_compute"] == pytest.approx(0.10 + 0.40 * (800e6 / price) / 800e6, abs=1e-3)
    assert row["lead_compute"] == pytest.approx(100 * (row["n4_equal_compute"] - 0.18))


def test_seeds_without_both_runs_are_left_out(shipped):
    rows = [r for r in by_depth.leads(shipped) if r["t"] == 16]
    assert study_name(16, 1, "paper", 2, "500M") in shipped and study_name(16, 4, "paper", 2, "500M") not in shipped
    assert sorted(r["seed"] for r in rows) == [0, 1]
    paired = [shipped[study_name(16, n, "paper", s, "500M")] for n in (1, 4) for s in (0, 1)]
    assert {r["tokens"] for r in rows} == {min(c["points"][-1]["tokens"] for c in paired)}


def test_figure_draws_one_point_per_seed_and_read(shipped):
    rows = by_depth.leads(shipped)
    fig = by_depth.figure(shipped)
    assert [len(trace.x) for trace in fig.data] == [len(rows), len(rows)]
    assert list(fig.data[0].y) == [r["lead_tokens"] for r in rows]
    assert list(fig.data[1].y) == [r["lead_compute"] for r in rows]
    assert by_depth.figure({}) is None


@pytest.mark.parametrize("n2, place", [(28.5, "between and with N = 1"), (31.0, "between"), (24.0, "unresolved"),
                                       (34.0, "with N = 4"), (27.6, "with N = 1")])
def test_n2_place_follows_the_rule_written_before_the_runs(n2, place):
    assert by_depth.n2_place(27.0, n2, 34.4) == place


def test_n2_place_names_both_when_n1_and_n4_are_close():
    assert by_depth.n2_place(12.5, 13.0, 13.6) == "with N = 1 and with N = 4"


def test_grid_reads_each_depth_where_its_shortest_run_ends(shipped):
    names = [study_name(16, n, "paper", 0, "500M") for n in (1, 2, 4)]
    curves = {name: line(shipped[names[0]], end, 0.10, top)
              for name, end, top in zip(names, (500e6, 400e6, 500e6), (0.30, 0.415, 0.50))}
    (row,) = by_depth.grid(curves)
    assert row["t"] == 16 and row["tokens"] == 400e6             # N = 2 stopped first: all three read there
    assert (row["n1"], row["n2"], row["n4"]) == pytest.approx((26.0, 41.5, 42.0))
    assert row["n2_place"] == "with N = 4"
    assert by_depth.grid({names[0]: curves[names[0]]}) == []   # a depth missing a run is left out


def test_tables_print_every_grid_row(shipped, capsys):
    from sleeplab.repro.__main__ import main

    main(["tables"])
    out = capsys.readouterr().out.split("the paper's-recipe grid")[1].split("\n\n")[0]
    rows = by_depth.grid(shipped)
    assert rows and len(out.strip().splitlines()) == 3 + len(rows)         # title, header, rule, one line a depth
    for r in rows:
        assert any(line.split()[:5] == [str(r["t"]), f"{r['tokens'] / 1e6:.0f}M", f"{r['n1']:.1f}%", f"{r['n2']:.1f}%",
                                        f"{r['n4']:.1f}%"] and line.rstrip().endswith(r["n2_place"])
                   for line in out.splitlines())


@pytest.mark.parametrize("n4_ends, call", [((0.80, 0.82, 0.84), "holds"), ((0.64, 0.67, 0.70), "no early lead"),
                                            ((0.70, 0.75, 0.80), "a smaller lead"), ((0.90, 0.90, 0.64), "a smaller lead")])
def test_early_t8_call_follows_the_rule_written_before_the_seeds(shipped, n4_ends, call):
    base = shipped[study_name(8, 4, "paper", 0)]
    curves = {}
    for seed, n4_end in enumerate(n4_ends):    # N = 1 of every seed reads 65 % at 41 M, N = 4 its n4_end
        curves[study_name(8, 1, "paper", seed)] = line(base, 100e6, 0.65, 0.65)
        curves[study_name(8, 4, "paper", seed)] = line(base, 100e6, n4_end, n4_end)
    result = by_depth.early_t8_call(curves)
    assert result["call"] == call and len(result["leads"]) == 3
    assert result["mean"] == pytest.approx(100 * (sum(n4_ends) / 3 - 0.65))


def test_early_t8_call_waits_for_three_seeds(shipped):
    partial = {study_name(8, n, "paper", 0): line(shipped[study_name(8, 4, "paper", 0)], 100e6, 0.6, 0.7)
               for n in (1, 4)}
    assert by_depth.early_t8_call(partial) is None
