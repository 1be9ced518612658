"""A nudged run (TrainConfig.nudge) starts from its seed's weights up to a rounding-level change and
sees the same batches: the control for how much of a run's outcome its seed fixes."""
import pytest
import torch

from sleeplab.seeds import NUDGE
from sleeplab.train.config import TINY_RULE110, TrainConfig, recipe, train_batch
from sleeplab.train.module import SleepModule


def initial_weights(**changes):
    return {k: v.clone() for k, v in SleepModule(recipe(TINY_RULE110, **changes)).model.state_dict().items()}


def relative_change(a, b):
    diff = sum(((a[k] - b[k]) ** 2).sum() for k in a if a[k].is_floating_point())
    size = sum((b[k] ** 2).sum() for k in b if b[k].is_floating_point())
    return float((diff / size).sqrt())


def test_nudge_moves_the_initial_weights_by_about_a_millionth_and_each_nudge_differently():
    base, one, two = initial_weights(), initial_weights(nudge=1), initial_weights(nudge=2)
    assert initial_weights(nudge=0).keys() == base.keys()
    assert relative_change(initial_weights(nudge=0), base) == 0
    assert 0.3 * NUDGE < relative_change(one, base) < 3 * NUDGE
    assert relative_change(one, two) > 0.3 * NUDGE
    assert relative_change(initial_weights(nudge=1), one) == 0       # a nudge is a pure function of (seed, k)


def test_nudge_leaves_the_data_stream_alone():
    plain, nudged = recipe(TINY_RULE110), recipe(TINY_RULE110, nudge=3)
    for step in (0, 7):
        a, b = (train_batch(c, step, torch.device("cpu")) for c in (plain, nudged))
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_nudge_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="nudge must be a non-negative integer"):
        TrainConfig(nudge=bad)
