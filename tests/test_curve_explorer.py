"""Notebook 05's curve explorer: a group shows exactly its runs and the input-blind lines of their depths,
and the compute axis scales each run by the passes it spends a token."""
import pytest

from sleeplab.lab.curve_explorer import X_AXES, CurveExplorer, label
from sleeplab.repro.cells import CELLS
from sleeplab.repro.recipes import study_config


def curve(cell, config, exact=(0.1, 0.5)):
    return {"cell": cell, "card": "test card", "done": True, "config": config.to_dict(),
            "points": [{"step": i, "tokens": 100e6 * i, "exact": e} for i, e in enumerate(exact)]}


@pytest.fixture
def explorer():
    runs = {c: curve(c, CELLS[c]) for c in ("rule110-t12-n1", "rule110-t12-n4", "rule110-t12-n1-x4tokens",
                                              "rule110-t8-n1", "rule110-t8-transformer-evict")}
    runs |= {c: curve(c, study_config(c)) for c in ("study-t16-n4-paper-s0-500M", "study-t16-n1-paper-s0-500M")}
    return CurveExplorer(runs, blind={8: .085, 12: .088, 16: .096})


def test_a_group_shows_its_runs_and_the_input_blind_lines_of_their_depths(explorer):
    fig = explorer.figure()
    assert len(fig.data) == 7 + 3
    explorer.select(fig, "t = 12: compute-matched control", X_AXES[0])
    assert explorer.shown(fig) == ["rule110-t12-n1", "rule110-t12-n1-x4tokens", "rule110-t12-n4"]
    assert explorer.depths_shown(fig) == [12]
    assert fig.layout.title.text.startswith("t = 12: compute-matched control<br><sup>final: t = 12, N = 1: 50%")
    explorer.select(fig, "t = 16: the paper's recipe, 500 M tokens", X_AXES[0])
    assert explorer.shown(fig) == ["study-t16-n1-paper-s0-500M", "study-t16-n4-paper-s0-500M"]
    assert explorer.depths_shown(fig) == [16]
    assert "t = 4 and t = 16: N = 1, 2, 4" not in explorer.groups     # no run of it shipped here


def test_the_compute_axis_scales_each_run_by_its_passes_a_token(explorer):
    fig = explorer.figure()
    explorer.select(fig, "all Rule 110 runs", X_AXES[1])
    ends = explorer.ends(fig)
    assert ends["rule110-t12-n4"] == pytest.approx(100 * 3.88) and ends["rule110-t12-n1"] == pytest.approx(100)
    assert ends["rule110-t8-transformer-evict"] == pytest.approx(100)
    assert fig.layout.xaxis.title.text.startswith("compute")
    with pytest.raises(ValueError, match="'loss'"):
        explorer.select(fig, "t = 12: compute-matched control", "loss")


def test_labels_say_depth_n_and_what_sets_a_run_apart(explorer):
    assert label(explorer.curves["rule110-t12-n1-x4tokens"]) == "t = 12, N = 1, 4x tokens"
    assert label(explorer.curves["study-t16-n4-paper-s0-500M"]) == "t = 16, N = 4, seed 0"
    assert label(explorer.curves["rule110-t8-transformer-evict"]) == "transformer-evict (t = 8)"
