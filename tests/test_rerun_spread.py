"""The rerun-spread study: which runs it trains, and how it summarises them (the training itself is the
package's tested ``train``; one smoke run here on a few steps)."""
import json

import pytest

from sleeplab.repro import rerun_spread


def test_plan_gives_each_n_its_seeds_and_nudged_reruns_of_seed_0():
    todo = rerun_spread.plan(3)
    for n in (1, 4):
        mine = [(s, k) for m, s, k in todo if m == n]
        assert sorted(mine) == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]
    assert len(set(todo)) == len(todo)


def test_summary_separates_seed_spread_from_rerun_spread():
    def run(n, seed, nudge, final):
        return {"n_sleep": n, "seed": seed, "nudge": nudge, "points": [{"step": 0, "exact": 0.0}, {"step": 9, "exact": final}]}
    record = {"runs": [run(1, 0, 0, .9), run(1, 1, 0, .5), run(1, 0, 1, .9),
                       run(4, 0, 0, .3), run(4, 1, 0, .5), run(4, 0, 1, 1.0)]}
    rows = {(r["n_sleep"], r["group"]): r for r in rerun_spread.summary(record)}
    assert rows[1, "seeds"]["finals"] == [90.0, 50.0] and rows[1, "seeds"]["range"] == pytest.approx(40)
    assert rows[1, "nudges of seed 0"]["range"] == 0 and rows[1, "nudges of seed 0"]["sd"] == 0
    assert rows[4, "nudges of seed 0"]["finals"] == [30.0, 100.0] and rows[4, "nudges of seed 0"]["mean"] == pytest.approx(65)


def test_a_short_study_runs_and_writes_its_record(tmp_path, capsys):
    out = tmp_path / "spread.json"
    assert rerun_spread.main(["--runs", "2", "--steps", "4", "--workers", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {(r["n_sleep"], r["seed"], r["nudge"]) for r in record["runs"]} == set(rerun_spread.plan(2))
    assert record["nudge_size"] == 1e-6 and record["recipe"]["steps"] == 4
    assert "N = 4, nudges of seed 0" in capsys.readouterr().out


def test_bad_counts_are_refused_naming_them():
    with pytest.raises(SystemExit, match="--runs must be >= 2, got 1"):
        rerun_spread.main(["--runs", "1"])
