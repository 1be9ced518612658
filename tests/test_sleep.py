"""Invariants of Algorithm 1: what crosses a window boundary, what passes do, where gradients go."""
import pytest
import torch

from sleeplab.model import SleepLM, SleepLMConfig
from sleeplab.presets import preset
from sleeplab.sleep import parallel_forward, sleep_forward, window_plan
from sleeplab.streaming import StreamingRunner

L, T, V = 8, 36, 11  # 4 full windows + a 4-token prediction window (the last 4 positions are scored)


def make(name="sleep", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = preset(name, vocab_size=V, d_model=32, n_heads=2, window=L, max_positions=64, **kw)
    return SleepLM(cfg).double().eval()


def batch(seed=1, B=3):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, -4:] = True
    return tokens, mask


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_window_plan_marks_only_scored_windows_as_prediction():
    _, mask = batch()
    plan = window_plan(mask, T, L)
    assert [(w.start, w.end, w.predict) for w in plan] == [
        (0, 8, False), (8, 16, False), (16, 24, False), (24, 32, False), (32, 36, True)]


@pytest.mark.parametrize("eviction", ["hard", "sliding", "none"])
def test_one_pass_equals_parallel_hybrid(eviction):
    model = make("hybrid", eviction=eviction)
    tokens, mask = batch()
    with torch.no_grad():
        looped = sleep_forward(model, tokens, mask, n_sleep=1)
        plain = parallel_forward(model, tokens)
    assert rel(looped[:, -4:], plain[:, -4:]) < 1e-10


def test_evicted_tokens_cannot_change_transformer_output_exactly():
    model = make("transformer-evict")
    tokens, mask = batch()
    other = tokens.clone()
    other[:, :32] = torch.randint(0, V, (3, 32), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.equal(model(tokens, mask)[:, -4:], model(other, mask)[:, -4:])


@pytest.mark.parametrize("name", ["hybrid", "sleep", "transformer-full"])
def test_models_with_memory_do_see_evicted_tokens(name):
    model = make(name)
    tokens, mask = batch()
    other = tokens.clone()
    other[:, :8] = (other[:, :8] + 1) % V  # only the first window changes
    with torch.no_grad():
        assert not torch.allclose(model(tokens, mask)[:, -4:], model(other, mask)[:, -4:])


def test_only_fast_weights_cross_the_boundary():
    """The prediction window's output is a function of S at the boundary and its own tokens alone."""
    model = make("sleep", n_sleep=3)
    tokens, mask = batch()
    seen = {}
    with torch.no_grad():
        logits = sleep_forward(model, tokens, mask, on_pass=lambda w, n, s, h: seen.__setitem__("S", s))
        from sleeplab.sleep import attention_mask
        e = model.embed(tokens[:, 32:], 32)
        h, _, _ = model.run_blocks(e, seen["S"], attention_mask(model.config, 4, 0, tokens.device))
        assert torch.equal(model.head_logits(h), logits[:, 32:])


def test_cache_empty_after_sleep_with_hard_eviction():
    runner = StreamingRunner(make("sleep"))
    runner.feed(torch.randint(0, V, (L - 1,)))
    assert runner.kv_length == L - 1 and runner.sleeps == 0
    runner.feed(torch.randint(0, V, (1,)))
    assert runner.kv_length == 0 and runner.sleeps == 1


def test_sliding_cache_keeps_window_minus_one_after_sleep():
    runner = StreamingRunner(make("swa-hybrid", n_sleep=2))
    runner.feed(torch.randint(0, V, (3 * L,)))
    assert runner.sleeps == 3 and runner.kv_length == L - 1


def test_passes_really_chain():
    model = make("sleep")
    tokens, mask = batch()
    finals = {}
    with torch.no_grad():
        for n in (1, 2, 3):
            out = sleep_forward(model, tokens, mask, n_sleep=n,
                                on_pass=lambda w, p, s, h, n=n: finals.__setitem__(n, [x.clone() for x in s if x is not None]))
            finals[f"logits{n}"] = out[:, -4:]
    assert not torch.allclose(finals["logits1"], finals["logits2"])
    assert not torch.allclose(finals[1][0], finals[2][0])  # S after the last sleep depends on N
    assert not torch.allclose(finals[2][0], finals[3][0])


def test_one_n_per_window_equal_everywhere_is_that_n():
    model, (tokens, mask) = make("sleep"), batch()
    with torch.no_grad():
        assert torch.equal(sleep_forward(model, tokens, mask, n_sleep=(3, 3, 3, 3)),
                           sleep_forward(model, tokens, mask, n_sleep=3))


def test_window_schedule_gives_each_window_its_own_passes():
    model, (tokens, mask) = make("sleep"), batch()
    passes, last_S = [], {}
    with torch.no_grad():
        for schedule in ((3, 3, 3, 3), (3, 3, 1, 3)):
            record = lambda w, n, s, h, key=schedule: (passes.append((key, w, n)),
                                                       last_S.__setitem__((key, w), s[1].clone()))
            sleep_forward(model, tokens, mask, n_sleep=schedule, on_pass=record)
    counts = [sum(1 for key, w, _ in passes if key == (3, 3, 1, 3) and w == window) for window in range(4)]
    assert counts == [3, 3, 1, 3]
    # windows before the changed one are untouched; from it on, S differs
    assert torch.equal(last_S[(3, 3, 3, 3), 1], last_S[(3, 3, 1, 3), 1])
    assert not torch.allclose(last_S[(3, 3, 3, 3), 2], last_S[(3, 3, 1, 3), 2])


@pytest.mark.parametrize("schedule, match", [((3, 3, 3), r"n_sleep=\(3, 3, 3\) gives 3 N's for 4 sleeping"),
                                             ((3, 0, 3, 3), "positive integer, got 0")])
def test_bad_window_schedule_is_refused_naming_it(schedule, match):
    model, (tokens, mask) = make("sleep"), batch()
    with pytest.raises(ValueError, match=match):
        sleep_forward(model, tokens, mask, n_sleep=schedule)


def _first_window_grads(model, n_sleep):
    """Gradient of the loss w.r.t. each window's input embedding."""
    outs = []
    handle = model.tok_emb.register_forward_hook(lambda m, i, o: outs.append(o))
    tokens, mask = batch()
    logits = sleep_forward(model, tokens, mask, n_sleep=n_sleep)
    handle.remove()
    grads = torch.autograd.grad(logits[:, -4:].square().sum(), outs, allow_unused=True)
    return [None if g is None or g.abs().max() == 0 else g for g in grads]


def test_gradients_reach_first_window_through_fast_weights():
    grads = _first_window_grads(make("sleep").train(), n_sleep=3)
    assert all(g is not None for g in grads)


def test_transformer_evict_sends_no_gradient_to_evicted_windows():
    grads = _first_window_grads(make("transformer-evict").train(), n_sleep=1)
    assert all(g is None for g in grads[:4]) and grads[4] is not None


def test_truncated_passes_keep_s_gradient():
    # grad_passes cuts the features' road between passes, never S's: every window still gets gradient
    grads = _first_window_grads(make("sleep", grad_passes=1).train(), n_sleep=3)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    full = _first_window_grads(make("sleep").train(), n_sleep=3)
    assert rel(grads[0], full[0]) > 1e-6  # ... but not the same gradient: the features' road is cut
    deep = _first_window_grads(make("sleep", grad_passes=3).train(), n_sleep=3)
    assert all(rel(a, b) < 1e-12 for a, b in zip(deep, full))  # k >= N truncates nothing


def test_checkpointed_windows_give_identical_gradients():
    tokens, mask = batch()
    grads = []
    for ckpt in (False, True):
        model = make("sleep", checkpoint_windows=ckpt).train()
        sleep_forward(model, tokens, mask)[:, -4:].square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert rel(grads[1], grads[0]) < 1e-12


def test_streaming_one_token_at_a_time_matches_batch_forward():
    model = make("sleep", n_sleep=3)
    tokens, mask = batch(B=2)
    runner = StreamingRunner(model, batch_size=2, record=True)
    streamed = torch.cat([runner.feed(tokens[:, i:i + 1]) for i in range(T)], 1)
    with torch.no_grad():
        ref = model(tokens, mask)
    assert rel(streamed[:, -4:], ref[:, -4:]) < 1e-10
    assert runner.sleeps == 4 and len(runner.history) == 4 * 3  # a record after every pass of every sleep


def test_streaming_with_one_pass_equals_plain_hybrid_everywhere():
    model = make("swa-hybrid")
    tokens, _ = batch(B=2)
    streamed = StreamingRunner(model, batch_size=2).feed(tokens)
    with torch.no_grad():
        assert rel(streamed, parallel_forward(model, tokens)) < 1e-10


def test_random_n_sleep_is_drawn_per_batch_and_seeded():
    from sleeplab.sleep import resolve_n_sleep
    cfg = SleepLMConfig(n_sleep_range=(1, 4))

    def draws(seed):
        g = torch.Generator().manual_seed(seed)
        return [resolve_n_sleep(cfg, True, None, g) for _ in range(40)]
    assert set(draws(0)) == {1, 2, 3, 4} and draws(5) == draws(5) and draws(5) != draws(6)
    assert resolve_n_sleep(cfg, False, None) == cfg.n_sleep  # evaluation uses the fixed N


def test_seeded_training_is_bit_for_bit_repeatable():
    def run():
        model = make("sleep", seed=3).float().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tokens, mask = batch()
        for _ in range(3):
            loss = sleep_forward(model, tokens, mask)[:, -4:].logsumexp(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(run(), run())


@pytest.mark.parametrize("bad, match", [
    (dict(eviction="fifo"), "eviction"), (dict(pattern="attn,mamba"), "mamba"),
    (dict(n_sleep=0), "n_sleep"), (dict(d_model=30, n_heads=4), "divisible"),
    (dict(n_sleep_range=(3, 2)), "n_sleep_range"), (dict(rule="oja"), "oja"),
])
def test_bad_config_is_refused_with_a_clear_message(bad, match):
    with pytest.raises(ValueError, match=match):
        SleepLM(SleepLMConfig(**bad))


def test_positions_past_the_table_are_refused():
    model = make("hybrid")
    with pytest.raises(ValueError, match="max_positions"):
        model.embed(torch.zeros(1, 4, dtype=torch.long), start=62)
