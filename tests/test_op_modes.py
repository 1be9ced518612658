"""The speed work's before/after read (``sleeplab.repro.op_modes``): each Triton run against the chunk
run of its seed at the planned points, and the call by the rule written before the runs."""
import pytest

from sleeplab.repro import op_modes
from sleeplab.repro.recipes import study_config, study_name


def curve(cell: str, exact_at: dict[float, float]) -> dict:
    return {"cell": cell, "points": [{"tokens": x, "exact": e} for x, e in sorted(exact_at.items())]}


def runs(triton_minus_chunk: dict[int, list[float]]) -> dict[str, dict]:
    """Chunk runs of t = 8 whose seeds sit 0.5 points apart, and Triton runs off them by the given points."""
    out = {}
    for n, diffs in triton_minus_chunk.items():
        for seed, d in zip(op_modes.SEEDS[n], diffs):
            chunk = {0: 0.0, 70e6: 0.90 + 0.005 * seed, 100e6: 0.95 + 0.005 * seed, 250e6: 0.99}
            out[study_name(8, n, "paper", seed)] = curve(study_name(8, n, "paper", seed), chunk)
            cell = study_name(8, n, "triton", seed, "100M")
            out[cell] = curve(cell, {x: e + d / 100 for x, e in chunk.items() if x <= 100e6})
    return out


def test_the_triton_cell_runs_the_kernels_at_n4_and_is_the_papers_rerun_at_n1():
    cfg = study_config(study_name(8, 4, "triton", 1, "100M"))
    assert cfg.model_args["op_mode"] == "triton" and cfg.seed == 1 and cfg.total_steps() == 1954
    assert cfg.to_dict() | {"model_args": None} == study_config("study-t8-n4-paper-s1-100M").to_dict() | {"model_args": None}
    assert study_name(8, 1, "triton", 0, "100M") == "study-t8-n1-paper-s0-100M"   # the same computation at N = 1


def test_small_differences_read_unchanged_and_large_ones_changed():
    verdict = op_modes.call(runs({4: [0.5, -1.0, 1.5], 1: [-1.9]}))
    assert verdict[4]["call"] == verdict[1]["call"] == "unchanged within noise"
    assert verdict[4]["mean"]["76.8M"] == pytest.approx(1.0 / 3)
    assert verdict[4]["chunk_span"]["89.6M"] == pytest.approx(1.0)   # seeds 0.5 points apart
    assert verdict[1]["chunk_span"]["76.8M"] is None
    verdict = op_modes.call(runs({4: [3.0, 2.0, 2.5], 1: [2.1]}))
    assert verdict[4]["call"] == verdict[1]["call"] == "changed"


def test_no_call_until_every_planned_seed_has_both_runs():
    curves = runs({4: [0.0, 0.0, 0.0]})
    del curves[study_name(8, 4, "triton", 2, "100M")]
    assert op_modes.call(curves) == {}
    assert [r["seed"] for r in op_modes.pairs(curves)] == [0, 1]


def test_a_run_stopped_before_a_read_point_is_not_read():
    curves = runs({1: [0.0]})
    cell = study_name(8, 1, "triton", 0, "100M")
    curves[cell]["points"] = [p for p in curves[cell]["points"] if p["tokens"] <= 70e6]
    (row,) = op_modes.pairs(curves)
    assert row["diff_76.8M"] is None and op_modes.call(curves) == {}
