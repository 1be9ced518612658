"""The recipe study's plan: cell names, what each factor changes, and how the results steer the runner."""
import json

import pytest

from sleeplab.repro.recipes import FACTORS, SCREEN, combine, plan, study_config, study_name


def test_every_factor_changes_the_paper_recipe():
    paper = study_config("study-t12-n4-paper-s0")
    assert (paper.muon_lr, paper.adam_lr) == (2e-3, 5e-5)  # the paper's split, not the old 1e-3 AdamW
    for factor in FACTORS:
        assert study_config(f"study-t12-n4-{factor}-s0").to_dict() != paper.to_dict(), factor


def test_one_pass_cells_share_the_paper_run_unless_the_factor_changes_one_pass():
    assert study_name(12, 1, "norm+muonN", 2) == "study-t12-n1-paper-s2"
    assert study_name(12, 1, "randn", 0) == "study-t12-n1-randn-s0"
    assert study_name(32, 4, "norm", 0, "1B") == "study-t32-n4-norm-s0-1B"
    assert study_config("study-t32-n4-norm-s0-1B").total_steps() == 19532


def test_combined_recipe_carries_both_changes():
    cfg = study_config(f"study-t12-n4-{combine('muonN', 'norm')}-s1")
    assert cfg.model_args["pass_norm"] == "rms" and cfg.muon_lr_n_power == 0.5 and cfg.seed == 1


@pytest.mark.parametrize("bad", ["study-t12-n4-magic-s0", "rule110-t12", "study-t12-n4-norm"])
def test_bad_cell_name_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=bad):
        study_config(bad)


def _finish(runs, name, exact):
    (runs / name).mkdir(parents=True, exist_ok=True)
    (runs / name / "done.json").write_text(json.dumps({"final": {"exact": exact}}))


def test_plan_runs_the_papers_seeds_first_then_the_screen(tmp_path):
    first = plan(tmp_path)
    assert first[3:9] == [f"study-t12-n{n}-paper-s{s}" for s in (0, 1, 2) for n in (4, 1)]
    assert first[9:] == [f"study-t12-n4-{f}-s0" for f in SCREEN]


@pytest.mark.parametrize("paper, deep", [(0.35, "inject"), (0.65, "paper")])
def test_plan_adds_the_deep_grid_then_seeds_once_the_screen_is_done(tmp_path, paper, deep):
    scores = dict(zip(SCREEN, (0.30, 0.45, 0.20, 0.40, 0.10, 0.25)))  # inject best, muonN second
    for factor, exact in {**scores, "paper": paper}.items():
        _finish(tmp_path, study_name(12, 4, factor, 0), exact)
    later = plan(tmp_path)
    assert "study-t12-n4-inject+muonN-s2" in later and "study-t12-n4-muonN-s1" in later
    # the amended order: the deep grid at 500 M tokens comes before the factors' seeds
    assert later.index(f"study-t16-n4-{deep}-s0-500M") < later.index("study-t12-n4-muonN-s1")
    assert f"study-t32-n4-{deep}-s0-1B" in later and "study-t12-n1-paper-s2-400M" in later
    assert later.index(f"study-t32-n4-{deep}-s0-1B") < later.index(f"study-t16-n4-{deep}-s0-500M")  # t = 32 first
    grid_n2 = [study_name(16, 2, deep, 0, "500M"), study_name(24, 2, deep, 0, "500M"), study_name(8, 2, deep, 0)]
    assert later.index(study_name(32, 1, deep, 0, "1B")) < min(map(later.index, grid_n2))   # then the grid's N = 2
    assert max(map(later.index, grid_n2)) < later.index(f"study-t16-n4-{deep}-s0-500M")
    assert not any(c.endswith("-s1-500M") and "-t16-" in c for c in later)  # no t = 16 seeds before a lead
    assert not any(c.endswith("-2B") for c in later)
    _finish(tmp_path, f"study-t16-n4-{deep}-s0-500M", 0.34)
    _finish(tmp_path, "study-t16-n1-paper-s0-500M", 0.27)
    _finish(tmp_path, f"study-t24-n4-{deep}-s0-500M", 0.12)
    _finish(tmp_path, "study-t24-n1-paper-s0-500M", 0.10)   # a 2-point lead: no seeds at t = 24
    after = plan(tmp_path)
    assert f"study-t16-n4-{deep}-s2-500M" in after and "study-t16-n1-paper-s1-500M" in after
    assert not any(c.endswith("-2B") for c in after)         # seed 0 alone does not buy the 2 B run
    assert not any("-t24-" in c and "-s1-" in c for c in after)
    for s, (n4, n1) in {1: (0.25, 0.26), 2: (0.30, 0.26)}.items():  # mean lead +3.3 points
        _finish(tmp_path, f"study-t16-n4-{deep}-s{s}-500M", n4)
        _finish(tmp_path, f"study-t16-n1-paper-s{s}-500M", n1)
    assert not any(c.endswith("-2B") for c in plan(tmp_path))
    _finish(tmp_path, f"study-t16-n4-{deep}-s1-500M", 0.33)           # mean lead +6.0 points
    assert "study-t16-n1-paper-s0-2B" in plan(tmp_path) and "study-t24-n1-paper-s0-2B" not in plan(tmp_path)


def test_plan_waits_for_three_seeds_before_the_compute_matched_run(tmp_path):
    known = {study_name(12, 4, "paper", 0): 0.65, study_name(12, 4, "norm", 0): 0.50,
             "study-t16-n4-paper-s0-500M": 0.344,
             "study-t16-n1-paper-s0-500M": 0.270, "study-t16-n4-paper-s1-500M": 0.251,
             "study-t16-n1-paper-s1-500M": 0.258, "study-t16-n1-paper-s2-500M": 0.261}
    todo = [c for c in plan(tmp_path, known) if c not in known]
    assert "study-t16-n4-paper-s2-500M" in todo and "study-t16-n1-paper-s0-2B" not in todo


def test_plan_runs_t12_seeds_to_400M_first_and_matches_compute_only_on_a_three_seed_lead(tmp_path):
    known = {study_name(12, 4, "paper", 0): 0.65, study_name(12, 4, "norm", 0): 0.50,
             "study-t16-n4-paper-s0-500M": 0.344, "study-t16-n1-paper-s0-500M": 0.270}
    todo = [c for c in plan(tmp_path, known) if c not in known]
    t12 = [f"study-t12-n{n}-paper-s{s}-400M" for s in (0, 1, 2) for n in (4, 1)] + ["study-t12-n2-paper-s0-400M"]
    deep = [c for c in todo if c.endswith(("-400M", "-500M"))]
    assert deep[:7] == t12                               # before t = 16's seeds and t = 24
    assert todo.index("study-t12-n2-paper-s0-400M") < todo.index("study-t16-n4-paper-s1-500M")
    assert not any(c.startswith("study-t12-") and c.endswith("-500M") for c in todo)
    known |= {f"study-t12-n4-paper-s{s}-400M": 0.70 for s in (0, 1, 2)}
    known |= {"study-t12-n1-paper-s0-400M": 0.62, "study-t12-n1-paper-s1-400M": 0.68,
              "study-t12-n1-paper-s2-400M": 0.66}          # mean lead +2.7 points: no compute-matched run
    assert "study-t12-n1-paper-s0-1600M" not in plan(tmp_path, known)
    known["study-t12-n1-paper-s1-400M"] = 0.55             # mean lead +6.0 points
    assert "study-t12-n1-paper-s0-1600M" in plan(tmp_path, known)


def test_plan_runs_the_deep_grid_before_the_screens_unfinished_runs(tmp_path):
    known = {study_name(12, 4, "paper", 0): 0.65, study_name(12, 4, "norm", 0): 0.50}
    cells = plan(tmp_path, known)
    assert cells.index("study-t16-n4-paper-s0-500M") < cells.index("study-t12-n4-muonN-s0")
    assert not any("norm" in c and "-s1" in c for c in cells)   # no factor seeds until the screen is done
    known |= {"study-t16-n4-paper-s0-500M": 0.34, "study-t16-n1-paper-s0-500M": 0.27,
              "study-t16-n4-paper-s1-500M": 0.33, "study-t16-n1-paper-s1-500M": 0.26,
              "study-t16-n4-paper-s2-500M": 0.33, "study-t16-n1-paper-s2-500M": 0.26}
    cells = plan(tmp_path, known)
    assert cells.index("study-t16-n4-paper-s1-500M") < cells.index("study-t16-n1-paper-s0-2B") < cells.index(
        "study-t24-n4-paper-s0-500M")


def test_plan_runs_the_t8_rows_seeds_after_its_seed_0_and_before_the_deep_grid_seeds(tmp_path):
    known = {study_name(12, 4, "paper", 0): 0.65, study_name(12, 4, "norm", 0): 0.50}
    cells = plan(tmp_path, known)
    row = [study_name(8, n, "paper", s) for s in (0, 1, 2) for n in (1, 2, 4) if n != 2 or s == 0]
    assert all(c in cells for c in row)
    assert max(cells.index(study_name(8, n, "paper", 0)) for n in (1, 2, 4)) < min(
        cells.index(study_name(8, n, "paper", s)) for s in (1, 2) for n in (1, 4))
    assert cells.index(study_name(8, 1, "paper", 2)) < cells.index("study-t16-n4-paper-s0-500M")
    assert study_name(8, 2, "paper", 1) not in cells                  # N = 2 stays one seed


def test_study_is_reached_through_the_one_entry_point(capsys, tmp_path, monkeypatch):
    from sleeplab.repro import recipes
    from sleeplab.train.cli import main
    monkeypatch.setattr(recipes, "shipped", lambda: {})
    assert main(["repro", "study", "plan", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rule110-t8-n1-41M"


def test_plan_on_a_fresh_machine_starts_after_what_the_shipped_curves_finished(capsys, tmp_path):
    from sleeplab.repro import recipes
    known = recipes.shipped()
    assert known                                     # the repository ships finished study runs
    assert recipes.main(["plan", "--out", str(tmp_path)]) == 0
    todo = capsys.readouterr().out.split()
    assert todo and not set(todo) & set(known)        # nothing shipped as finished runs again
    assert todo[0] == next(c for c in plan(tmp_path, known) if c not in known)


def test_queue_runs_given_cells_in_order_and_skips_finished_ones(tmp_path, monkeypatch):
    from sleeplab.repro import recipes
    started = []

    class FinishAtOnce:  # stands in for a training subprocess: the run is done when it starts
        def __init__(self, argv, **_):
            started.append(argv[argv.index("run") + 1])
            _finish(tmp_path, started[-1], 0.5)
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(recipes.subprocess, "Popen", FinishAtOnce)
    _finish(tmp_path, "study-t12-n1-paper-s1", 0.4)
    wanted = ["study-t16-n4-paper-s0", "study-t12-n1-paper-s1", "study-t12-n2-paper-s0"]
    recipes.queue(tmp_path, parallel=1, poll_s=0, cells=wanted)
    assert started == ["study-t16-n4-paper-s0", "study-t12-n2-paper-s0"]


def test_queue_does_not_restart_a_run_that_was_stopped_unfinished(tmp_path, monkeypatch):
    """A run killed on purpose saves and exits 0 without done.json: the queue leaves it for the next
    queue instead of starting it again at once (and goes on with the other cells)."""
    from sleeplab.repro import recipes
    started = []

    class StopsUnfinished:
        def __init__(self, argv, **_):
            name = argv[argv.index("run") + 1]
            assert name not in started, f"{name} restarted after it stopped"
            started.append(name)
            if started[-1] == "study-t12-n2-paper-s0":
                _finish(tmp_path, started[-1], 0.5)
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(recipes.subprocess, "Popen", StopsUnfinished)
    recipes.queue(tmp_path, parallel=1, poll_s=0, cells=["study-t16-n4-paper-s0", "study-t12-n2-paper-s0"])
    assert started == ["study-t16-n4-paper-s0", "study-t12-n2-paper-s0"]


STOPPABLE_QUEUE = """
import subprocess, sys
from pathlib import Path
from sleeplab.repro import recipes
runs, real = Path(sys.argv[1]), subprocess.Popen
RUN = ("import signal, sys, time; from pathlib import Path; "
       "signal.signal(signal.SIGTERM, lambda *_: (Path(sys.argv[1]).write_text('saved'), sys.exit(0))); "
       "Path(sys.argv[1]).write_text('started'); time.sleep(120)")   # 'started' once it can save
# each run: a process that, like a training run, saves and stops on SIGTERM
recipes.subprocess.Popen = lambda argv, **kw: real([sys.executable, "-c", RUN, str(runs / "run-state")], **kw)
recipes.queue(runs, 1, poll_s=0.05, cells=["study-t12-n4-paper-s0"])
"""


def test_sigterm_to_the_queue_stops_its_runs_with_a_save(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    queue = subprocess.Popen([sys.executable, "-c", STOPPABLE_QUEUE, str(tmp_path)])
    state = tmp_path / "run-state"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.read_text() == "started"
    queue.send_signal(signal.SIGTERM)        # as `kill PID` would: to the queue alone
    assert queue.wait(timeout=30) == 143
    assert state.read_text() == "saved"      # the run was told to stop, and had stopped when the queue returned
    assert not (tmp_path / "study-t12-n4-paper-s0" / "failed").exists()


def test_t12_verdict_runs_count_as_finished_at_the_verdict_point_and_a_win_there_asks_for_compute_matched_n1(tmp_path):
    """The sixth session's plan: N = 4 runs stopped by the device time are read where the slowest of the
    six stopped; they are not restarted, and a lead there decides the N = 1 run on N = 4's compute."""
    from sleeplab.repro import recipes

    def curve(n_points, slope, done):
        return {"done": done, "points": [{"step": 250 * i, "tokens": 12.8e6 * i, "exact": min(slope * i, 1.0)}
                                         for i in range(n_points)]}
    curves = {study_name(12, 4, "paper", 0): curve(3, .3, True), study_name(12, 4, "norm", 0): curve(3, .2, True)}
    curves |= {study_name(12, 4, "paper", s, "400M"): curve(25 + s, .03, False) for s in (0, 1, 2)}
    curves |= {study_name(12, 1, "paper", s, "400M"): curve(32, .025, True) for s in (0, 1, 2)}
    known = recipes.shipped(curves)
    assert known[study_name(12, 4, "paper", 2, "400M")] == pytest.approx(.72)   # read at the 25th evaluation
    assert known[study_name(12, 1, "paper", 0, "400M")] == pytest.approx(.60)   # there too, not at its end
    todo = plan(tmp_path, known)
    assert "study-t12-n1-paper-s0-1600M" in todo                                # mean lead 12 points
    assert not {study_name(12, n, "paper", s, "400M") for n in (1, 4) for s in (0, 1, 2)} & {
        c for c in todo if c not in known}                                      # none of the six restarts
    del curves[study_name(12, 1, "paper", 2, "400M")]
    known = recipes.shipped(curves)
    assert study_name(12, 4, "paper", 0, "400M") not in known                   # no verdict point: unfinished
    assert "study-t12-n1-paper-s0-1600M" not in plan(tmp_path, known)
