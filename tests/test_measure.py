"""Measurement helpers: the quantities notebooks 01 and 03 plot and assert on."""
import time

import pytest
import torch

from sleeplab import device
from sleeplab.lab import measure


def test_loglog_slope_recovers_exponents():
    xs = [1, 2, 4, 8]
    assert measure.loglog_slope(xs, [x ** 2 for x in xs]) == pytest.approx(2)
    assert measure.loglog_slope(xs, [3.0] * 4) == pytest.approx(0)
    with pytest.raises(ValueError, match="two different x"):
        measure.loglog_slope([2, 2], [1, 4])


def test_time_call_returns_the_fastest_timed_run_after_the_warmup(monkeypatch):
    """On a fake clock each call takes a known time: the warm-up is not timed, the minimum is kept."""
    clock, durations = [0.0], iter([100.0, 100.0, 5.0, 3.0, 4.0])
    monkeypatch.setattr(measure.time, "perf_counter", lambda: clock[0])

    def call():
        clock[0] += next(durations)
    assert measure.time_call(call, torch.device("cpu"), repeats=3, warmup=2, min_total_s=0) == 3.0


def test_time_call_never_reports_less_than_the_call_takes():
    assert measure.time_call(lambda: time.sleep(0.02), torch.device("cpu"), repeats=2, warmup=0,
                             min_total_s=0) >= 0.02


def test_single_thread_restores_thread_count():
    before = torch.get_num_threads()
    with device.single_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_attention_cost_memory_kv_linear_state_constant():
    rows = measure.attention_cost([32, 64, 128], d_model=32, n_heads=2, window=16, repeats=1,
                                  device=torch.device("cpu"))
    assert [r["T"] for r in rows] == [32, 64, 128]
    # K and V of every token, float32: 2 * T * d_model * 4 bytes
    assert [r["kv_bytes"] for r in rows] == [2 * T * 32 * 4 for T in (32, 64, 128)]
    assert {r["window_kv_bytes"] for r in rows} == {2 * 16 * 32 * 4}
    assert {r["state_bytes"] for r in rows} == {2 * 16 * 16 * 4}   # heads x K x V floats
    assert all(r[k] > 0 for r in rows for k in ("attn_s", "window_s", "gdn_s"))


def test_orthogonal_keys_are_recalled_exactly_by_both_rules():
    g = torch.Generator().manual_seed(0)
    keys = measure.random_keys(8, 8, g, orthogonal=True)
    values = measure.random_keys(8, 8, g)
    for rule in ("hebbian", "delta"):
        r = measure.recall(measure.write_pairs(keys, values, rule), keys, values)
        assert r["accuracy"] == 1.0 and r["mean_rel_error"] < 1e-10


def test_delta_rule_overwrites_where_hebbian_piles_up():
    g = torch.Generator().manual_seed(1)
    keys = measure.random_keys(2, 8, g)
    k = torch.cat([keys[:1], keys[:1]])                   # the same key written twice
    v = measure.random_keys(2, 8, g)                      # with two different values
    for rule, expect_new in (("delta", True), ("hebbian", False)):
        out = measure.read(measure.write_pairs(k, v, rule), keys[:1])[0]
        assert torch.allclose(out, v[1], atol=1e-10) == expect_new


def test_sleep_passes_make_delta_rule_exact_and_hebbian_collapses_with_overlap():
    g = torch.Generator().manual_seed(2)
    keys = measure.random_keys(8, 16, g, overlap=0.6)
    values = measure.random_keys(8, 16, g)
    one = measure.recall(measure.write_pairs(keys, values, "delta", passes=1), keys, values)
    many = measure.recall(measure.write_pairs(keys, values, "delta", passes=32), keys, values)
    hebb = measure.recall(measure.write_pairs(keys, values, "hebbian"), keys, values)
    assert many["mean_rel_error"] < 0.05 < one["mean_rel_error"]
    assert hebb["mean_rel_error"] > 1.0


def test_capacity_grows_with_state_size():
    assert measure.capacity(4, "delta", passes=4, trials=4) < measure.capacity(16, "delta", passes=4, trials=4)


def test_write_trajectory_over_passes():
    g = torch.Generator().manual_seed(3)
    keys, values = measure.random_keys(5, 6, g, overlap=0.5), measure.random_keys(5, 6, g)
    states, errors = measure.write_trajectory(keys, values, "delta", passes=20)
    assert len(states) == 100 and states[0].shape == (6, 6)
    assert all(len(e) == 5 for e in errors)
    assert errors[0][0] < 1e-10                           # beta = 1: the pair just written is exact
    assert max(errors[-1]) < 0.01 < max(errors[4])        # passes converge (5 pairs < 6 dims)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="orthogonal directions"):
        measure.random_keys(5, 4, orthogonal=True)
    with pytest.raises(ValueError, match="rule 'oja'"):
        measure.write_pairs(torch.eye(2), torch.eye(2), "oja")


def test_extrapolate_follows_the_fitted_power_law():
    rows = [dict(T=T, a=T ** 2 * 1e-6) for T in (100, 200, 400, 800)]
    assert measure.extrapolate(rows, "a", 1600) == pytest.approx(1600 ** 2 * 1e-6)


def test_influence_is_exactly_zero_across_a_hard_eviction_boundary():
    from sleeplab import build_model
    torch.manual_seed(0)
    kw = dict(vocab_size=7, d_model=16, n_heads=2, window=4, max_positions=16)
    tokens = torch.randint(0, 7, (12,))
    hard = measure.influence(build_model("transformer-evict", **kw).eval(), tokens)
    hybrid = measure.influence(build_model("hybrid", **kw).eval(), tokens)
    assert hard.shape == (12, 12)
    assert (hard[:8, 8:] == 0).all()                                         # blind to earlier windows
    last = hard[8:, 8:]
    assert (last[torch.ones(4, 4, dtype=torch.bool).triu()] > 0).all()      # sees its own window
    assert (hybrid[:8, 8:] > 1e-4).all()                                    # S carries them over
    assert (hybrid.tril(-1) < 1e-6).all()   # causal (the chunked GDN form leaves ~1e-8 rounding noise)


def test_context_swap_cannot_move_an_evicting_transformer():
    from sleeplab import build_model
    from sleeplab.tasks import get_task
    rule110 = get_task("rule110")
    cfg = rule110.Config(t=1, n_states=2)
    batch = rule110.make_batch(cfg, 8, torch.Generator().manual_seed(0), "eval")
    kw = dict(vocab_size=len(rule110.vocab(cfg)), window=24, max_positions=batch.seq_len, d_model=16, n_heads=2)
    torch.manual_seed(0)
    blind = measure.context_swap(build_model("transformer-evict", **kw).eval(), batch)
    seeing = measure.context_swap(build_model("hybrid", **kw).eval(), batch)
    assert blind["max_change"] == 0.0 and blind["exact_true"] == blind["exact_swapped"]
    assert seeing["max_change"] > 1e-4
