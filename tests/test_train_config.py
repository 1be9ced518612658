"""Run configs: budgets, validation, and the data stream's fairness rule (same batches for every N)."""
import pytest
import torch

from sleeplab.train import TINY_RULE110, TrainConfig, parse_count, recipe
from sleeplab.sleep import draw_n_sleep
from sleeplab.tasks import held_out
from sleeplab.train.config import train_batch

CPU = torch.device("cpu")


def tiny(**kw):
    base = dict(task="rule110", task_args={"t": 1, "n_states": 2, "width": 8}, preset="hybrid",
                model_args={"d_model": 16, "n_heads": 2}, batch_size=8, steps=4, eval_size=16, device="cpu")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("text, count", [("40k", 40_000), ("500M", 500_000_000), ("2.5B", 2_500_000_000),
                                         (1234, 1234), ("7", 7), ("1.5m", 1_500_000)])
def test_parse_count(text, count):
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["lots", "5T", "-3", "0", "1e9"])
def test_parse_count_rejects_with_examples(text):
    with pytest.raises(ValueError, match="500M|at least 1"):
        parse_count(text)


@pytest.mark.parametrize("kw, message", [
    (dict(precision="fp16"), "allowed: \\('bf16', 'fp32'\\)"),
    (dict(preset="gpt"), "preset 'gpt' is not known; allowed"),
    (dict(task="chess"), "unknown task 'chess'; allowed"),
    (dict(task_args={"depth": 3}), "has no dials \\['depth'\\]; allowed"),
    (dict(task_args={"t": -1}), "t must be"),
    (dict(steps=3, tokens="1M"), "not both"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(device="tpu"), "allowed: 'auto', 'cpu'"),
    (dict(grad_clip=0), "grad_clip must be None"),
])
def test_bad_config_names_the_problem(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


def test_model_config_follows_the_task():
    cfg = tiny()
    model_cfg = cfg.model_config()
    task = cfg.task_module()
    assert model_cfg.vocab_size == len(task.vocab(cfg.task_config()))
    assert model_cfg.window == 8 and model_cfg.max_positions == cfg.seq_len() == 2 * 8 + 2
    assert tiny(model_args={"window": 4, "d_model": 16, "n_heads": 2}).model_config().window == 4


def test_budget_in_tokens_rounds_up_to_whole_steps():
    cfg = tiny(steps=None, tokens="1k")  # 8 examples x 18 tokens = 144 tokens a step
    assert cfg.tokens_per_step() == 144 and cfg.total_steps() == 7
    assert tiny(steps=None).total_steps() == -(-40_000_000 // 144)  # DEFAULT_TOKENS


def test_data_order_is_identical_across_n_sleep():
    """The paper's fairness rule: runs differing only in N see exactly the same batches."""
    a, b = tiny(model_args={"n_sleep": 1}), tiny(model_args={"n_sleep": 4}, preset="sleep")
    for step in range(3):
        ba, bb = train_batch(a, step, CPU), train_batch(b, step, CPU)
        assert torch.equal(ba.tokens, bb.tokens) and torch.equal(ba.targets, bb.targets)
    assert not torch.equal(train_batch(a, 0, CPU).tokens, train_batch(a, 1, CPU).tokens)
    assert not torch.equal(train_batch(a, 0, CPU).tokens, train_batch(tiny(seed=1), 0, CPU).tokens)


def test_variable_n_is_a_function_of_seed_and_step():
    cfg = tiny(model_args={"n_sleep_range": (1, 4), "d_model": 16, "n_heads": 2}).model_config()
    draws = [draw_n_sleep(cfg, 0, step) for step in range(40)]
    assert draws == [draw_n_sleep(cfg, 0, step) for step in range(40)]
    assert set(draws) == {1, 2, 3, 4}
    assert draw_n_sleep(tiny().model_config(), 0, 5) == 1  # fixed N without a range


def test_held_out_set_is_fixed_and_from_the_eval_split():
    cfg = tiny()
    one, two = held_out("rule110", cfg.task_config(), 16), held_out("rule110", cfg.task_config(), 16)
    assert torch.equal(one.tokens, two.tokens) and one.meta["split"] == "eval"


def test_larger_held_out_sets_start_with_the_smaller_and_another_seed_draws_a_fresh_one():
    cfg = TrainConfig(task_args={"t": 2}).task_config()
    small, large = held_out("rule110", cfg, 64), held_out("rule110", cfg, 256)
    assert torch.equal(large.tokens[:64], small.tokens), "the training-time set is the start of a larger one"
    fresh = held_out("rule110", cfg, 256, seed=20261126)
    shared = {tuple(r) for r in fresh.tokens.tolist()} & {tuple(r) for r in large.tokens.tolist()}
    assert len(shared) < 3, "another seed, other examples (up to chance collisions)"


def test_recipe_copies_never_share_dicts():
    copy = recipe(seed=3)
    copy.task_args["t"] = 9
    assert TINY_RULE110.task_args["t"] == 2 and copy.seed == 3
    assert TrainConfig.from_dict(TINY_RULE110.to_dict()) == TINY_RULE110
    with pytest.raises(ValueError, match="does not know: \\['colour'\\]"):
        TrainConfig.from_dict({**TINY_RULE110.to_dict(), "colour": "red"})
