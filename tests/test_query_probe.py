"""The read at the query's own key (``sleeplab.lab.query_probe``): it catches the S the sleeps left and
the key the block itself computes, and a probe of a model blind to its input learns nothing from it."""
import pytest
import torch

from sleeplab.lab import probe, query_probe
from sleeplab.sleep import sleep_forward

from test_probe import N, TASK, make, tokens


def test_query_reads_catch_the_state_the_last_sleep_left():
    model, x = make(), tokens()
    caught = query_probe.query_reads(model, x, N)
    trace = probe.pass_trace(model, x, N)
    left = trace["S"][-1, -1].transpose(0, 1)                               # [B, G, H, K, V] after the last pass
    assert torch.allclose(caught["states"], left, atol=1e-6)
    assert torch.allclose(caught["logits"], sleep_forward(model, x, n_sleep=N)[:, -TASK.n_states:], atol=1e-6)


def test_own_read_is_the_blocks_key_applied_to_that_state():
    model, x = make(), tokens()
    caught = query_probe.query_reads(model, x, N)
    B, Q, G, H, K = caught["keys"].shape
    assert (B, Q, G) == (4, TASK.n_states, 2)
    assert torch.allclose(caught["keys"].norm(dim=-1), torch.ones(B, Q, G, H), atol=1e-5)   # unit keys, as the rule
    expected = torch.einsum("bqghk,bghkv->bqghv", caught["keys"], caught["states"]).flatten(2)
    assert torch.allclose(caught["reads"], expected)
    assert not torch.allclose(caught["reads"][:, 0], caught["reads"][:, 1])  # each query has its own key


def test_each_query_reads_with_the_key_its_block_computes():
    model, x = make(), tokens()
    first = next(b.mixer for b in model.blocks if b.kind == "gdn")
    seen = []
    hook = first.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        sleep_forward(model, x, n_sleep=N)
    finally:
        hook.remove()
    q, *_ = first.project(seen[-1])                                          # the prediction pass's input
    key = torch.nn.functional.normalize(torch.nn.functional.silu(q).view(4, TASK.n_states, first.n_heads, -1), dim=-1)
    assert torch.allclose(query_probe.query_reads(model, x, N)["keys"][:, :, 0], key, atol=1e-6)


def test_probe_of_a_model_blind_to_its_input_sits_at_the_majority_baseline():
    model = make()
    with torch.no_grad():
        model.tok_emb.weight.zero_()
    table = query_probe.probe_answer(model, 256, N, task_config=TASK, chunk=64)
    for name in query_probe.READS:
        assert table[name].shape == (TASK.n_states,)
        assert (table[name] - table["majority"]).abs().max() < 0.1


def test_table_applies_the_two_tests_written_before_the_evaluation():
    entry = lambda own, other, random, model: {"n_sleep": 4, "own": [own] * 4, "other": [other] * 4,  # noqa: E731
                                               "random": [random] * 4, "model": [model] * 4, "majority": [0.55] * 4}
    rows = query_probe.table({"models": {"a": entry(0.91, 0.60, 0.60, 0.95), "b": entry(0.83, 0.75, 0.60, 0.95),
                                         "c": entry(0.70, 0.58, 0.65, 0.72)}})
    assert [(r["cell"], r["holds"], r["own_key"]) for r in rows] == [("a", True, True), ("b", False, False),
                                                                    ("c", False, True)]
    assert rows[0]["own"] == pytest.approx(0.91) and query_probe.table({}) == []
