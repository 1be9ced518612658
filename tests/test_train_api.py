"""sleeplab.evaluate against a hand count, and sleeplab.load on a trained run."""
import pytest
import torch

import sleeplab
from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.sleep import sleep_forward
from sleeplab.tasks import rule110
from sleeplab.tasks.base import Batch
from sleeplab.train import TrainConfig, train
from sleeplab.train.checkpoint import CHECKPOINT
from sleeplab.device import cpu_threads

TASK = rule110.Config(t=1, n_states=3, width=8)


@pytest.fixture(autouse=True)
def one_thread():  # tiny models: a second thread only adds hand-off cost
    with cpu_threads(1):
        yield


def model_and_batch():
    torch.manual_seed(0)
    model = SleepLM(preset("sleep", vocab_size=len(rule110.vocab(TASK)), d_model=16, n_heads=2, window=8,
                           max_positions=27, n_sleep=2)).double()
    return model, rule110.make_batch(TASK, 4, torch.Generator().manual_seed(3), split="eval")


def test_evaluate_agrees_with_a_hand_count():
    model, batch = model_and_batch()
    with torch.no_grad():
        pred = sleep_forward(model, batch.tokens, batch.loss_mask, n_sleep=3).argmax(-1)
    # targets chosen by hand against the model's own predictions: example 0 all right, example 1 one
    # label wrong, example 2 all right, example 3 all three wrong
    targets = torch.where(batch.loss_mask, pred, 0)
    targets[1, -3] = 1 - pred[1, -3] if pred[1, -3] < 2 else 0
    targets[3, -3:] = torch.where(pred[3, -3:] == 0, 1, 0)
    hand = Batch(batch.tokens, batch.loss_mask, targets, batch.meta)
    model.train()
    out = sleeplab.evaluate(model, hand, n_sleep=3, chunk_size=3)
    assert model.training  # mode restored
    assert out["exact"] == 2 / 4 and out["per_label"] == pytest.approx(8 / 12) and out["n_sleep"] == 3
    assert out["per_state"] == [2 / 4, 3 / 4, 3 / 4]  # rule110 per state: example 1 missed state 0


def test_evaluate_defaults_to_the_models_n_and_plain_batches_use_score():
    model, batch = model_and_batch()
    plain = Batch(batch.tokens, batch.loss_mask, batch.targets)  # no meta: the generic score
    out = sleeplab.evaluate(model, plain)
    with torch.no_grad():
        pred = sleep_forward(model.eval(), batch.tokens, batch.loss_mask, n_sleep=2).argmax(-1)
    right = [(pred[i][batch.loss_mask[i]] == batch.targets[i][batch.loss_mask[i]]).tolist() for i in range(4)]
    assert out["n_sleep"] == 2 and "per_state" not in out
    assert out["exact"] == sum(all(r) for r in right) / 4
    assert out["per_label"] == pytest.approx(sum(sum(r) for r in right) / 12)


def test_load_returns_a_ready_model_with_its_provenance(tmp_path):
    cfg = TrainConfig(task_args={"t": 1, "n_states": 2, "width": 8}, preset="hybrid",
                      model_args={"d_model": 16, "n_heads": 2}, batch_size=8, steps=2, eval_size=8,
                      device="cpu", threads=1, precision="fp32", out=str(tmp_path))
    result = train(cfg)
    rng = torch.get_rng_state()
    model = sleeplab.load(tmp_path / CHECKPOINT)
    assert torch.equal(rng, torch.get_rng_state())  # loading does not disturb the caller's RNG
    assert not model.training and TrainConfig.from_dict(model.train_config) == cfg and model.task == "rule110"
    assert model.task_config == cfg.task_config() and model.manifest["step"] == 2
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    assert result.final["step"] == 2 and [r["step"] for r in result.metrics] == [0, 2]
