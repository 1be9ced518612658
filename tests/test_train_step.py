"""The loss and the eager training step."""
import pytest
import torch
import torch.nn.functional as F

from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.sleep import sleep_forward
from sleeplab.tasks import rule110
from sleeplab.train import EagerStep, WarmupConstant, build_optimizers, masked_cross_entropy, model_loss
from sleeplab.device import cpu_threads
from sleeplab.train.step import make_step

TASK = rule110.Config(t=1, n_states=2, width=8)


@pytest.fixture(autouse=True)
def one_thread():  # tiny models: a second thread only adds hand-off cost
    with cpu_threads(1):
        yield


def setup(name="sleep", **kw):
    torch.manual_seed(0)
    model = SleepLM(preset(name, vocab_size=len(rule110.vocab(TASK)), d_model=16, n_heads=2, window=8,
                           max_positions=18, **kw)).double()
    batch = rule110.make_batch(TASK, 6, torch.Generator().manual_seed(1))
    return model, batch


def test_masked_cross_entropy_is_the_mean_over_scored_positions():
    model, batch = setup()
    logits = torch.randn(*batch.tokens.shape, 11, dtype=torch.float64)
    mask = batch.loss_mask
    expected = F.cross_entropy(logits[mask], batch.targets[mask])
    assert torch.allclose(masked_cross_entropy(logits, batch), expected)


def test_model_loss_n1_fast_path_equals_algorithm_1():
    model, batch = setup("hybrid")
    fast = model_loss(model, batch, 1)
    slow = masked_cross_entropy(sleep_forward(model, batch.tokens, batch.loss_mask, n_sleep=1), batch)
    assert torch.allclose(fast, slow, rtol=1e-10)
    looped = model_loss(model, batch, 3)
    assert not torch.allclose(looped, fast)
    assert torch.allclose(looped, masked_cross_entropy(model(batch.tokens, batch.loss_mask, n_sleep=3), batch))


def test_eager_step_updates_with_the_scheduled_rate_and_learns_a_fixed_batch():
    model, batch = setup()
    opts = build_optimizers(model, muon_lr=2e-2, adam_lr=1e-2)
    step = EagerStep(model, opts, WarmupConstant(2), grad_clip=1.0, precision="fp32")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = step(batch, 2, 0)
    assert first.requires_grad is False and first.dim() == 0
    assert opts[0].param_groups[0]["lr"] == 1e-2  # warm-up: half the base rate at step 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    losses = [step(batch, 2, i).item() for i in range(1, 30)]
    assert losses[-1] < 0.5 * first.item()


def test_make_step_is_eager_on_cpu_and_says_so_when_fast_is_asked():
    model, _ = setup()
    opts = build_optimizers(model)
    assert isinstance(make_step(model, opts, WarmupConstant(1)), EagerStep)
    with pytest.warns(UserWarning, match="fast=True needs a CUDA device"):
        assert isinstance(make_step(model, opts, WarmupConstant(1), fast=True), EagerStep)
