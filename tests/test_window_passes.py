"""The per-window-N table reads the two planned tests right: passes that serve their own window pass
both, passes that serve every window fail the first, and a missing evaluation is named."""
import pytest

from sleeplab.repro import window_passes

N, WINDOWS = 4, 4
KEYS = ([str(N), "1"] + [window_passes.schedule(N, j, WINDOWS, only) for only in (False, True)
                         for j in range(WINDOWS)])


def report(per_state):
    """A report as ``eval --out`` writes it, each label's accuracy a function of the passes per window."""
    def passes(key):
        return [int(key)] * WINDOWS if "," not in key else [int(n) for n in key.split(",")]
    return {"results": {key: {"exact": 0.0, "per_state": per_state(passes(key))} for key in KEYS}}


def test_schedule_spells_the_flag():
    assert window_passes.schedule(4, 1, 4, only=False) == "4,1,4,4"
    assert window_passes.schedule(2, 3, 4, only=True) == "1,1,1,2"


def test_passes_that_work_on_their_own_window_pass_both_tests():
    own = report(lambda passes: [0.95 if n == N else 0.55 for n in passes])
    rows = window_passes.table({"own": own})
    assert len(rows) == WINDOWS and all(r["own"] and r["suffice"] for r in rows)
    assert all(r["others_moved"] == 0 and r["recovered"] == 1 for r in rows)


def test_passes_that_serve_every_window_fail_the_own_window_test():
    # every label needs all windows' passes: dropping any one drops them all alike
    shared = report(lambda passes: [0.95 if min(passes) == N else 0.55] * WINDOWS)
    rows = window_passes.table({"shared": shared})
    assert not any(r["own"] for r in rows) and not any(r["suffice"] for r in rows)
    assert all(r["others_moved"] == 40.0 for r in rows)


def test_a_missing_evaluation_is_named():
    broken = report(lambda passes: [0.9] * WINDOWS)
    del broken["results"]["4,4,1,4"]
    with pytest.raises(ValueError, match="--n-sleep 4,4,1,4"):
        window_passes.table({"broken": broken})
