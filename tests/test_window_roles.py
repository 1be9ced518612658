"""One rule for a window's role (sleep.py's docstring): slept on (N passes) or predicted on (one pass),
never both. sleep_forward, parallel_forward (N = 1) and the streaming runner must agree on it, and
sleep_forward must agree with a token-by-token oracle written from the definition of eviction."""
import pytest
import torch

from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.sleep import pass_input, parallel_forward, rms, sleep_forward, window_plan
from sleeplab.streaming import StreamingRunner

L, T, V = 6, 30, 11
# scored 8-12 (windows 1 and 2 predict), then a sleep window, then the last window scored again
SCORED = list(range(8, 13)) + [27, 28, 29]


def make(name, eviction, n_sleep=1, seed=0):
    torch.manual_seed(seed)
    cfg = preset(name, vocab_size=V, d_model=32, n_heads=2, window=L, max_positions=64,
                 eviction=eviction, n_sleep=n_sleep)
    return SleepLM(cfg).double().eval()


def batch(B=2, seed=1):
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, SCORED] = True
    return tokens, mask


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def looped(model, tokens, mask, n):
    """sleep_forward's logits and the S after every sleep pass, in order."""
    seen = []
    with torch.no_grad():
        logits = sleep_forward(model, tokens, mask, n_sleep=n,
                               on_pass=lambda w, p, s, h: seen.append([x.clone() for x in s if x is not None]))
    return logits, seen


def streamed(model, tokens, mask, n, one_at_a_time):
    runner = StreamingRunner(model, n_sleep=n, batch_size=tokens.shape[0], record=True)
    if one_at_a_time:
        out = [runner.feed(tokens[:, i:i + 1], predict=bool(mask[0, i])) for i in range(T)]
    else:  # runs of equal role, fed whole
        cuts = [0] + [i for i in range(1, T) if mask[0, i] != mask[0, i - 1]] + [T]
        out = [runner.feed(tokens[:, a:b], predict=bool(mask[0, a])) for a, b in zip(cuts, cuts[1:])]
    return torch.cat(out, 1), runner


def test_a_middle_scored_window_is_a_prediction_window():
    _, mask = batch()
    assert [w.predict for w in window_plan(mask, T, L)] == [False, True, True, False, True]


@pytest.mark.parametrize("one_at_a_time", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("eviction", ["hard", "sliding", "none"])
def test_streaming_equals_sleep_forward_with_a_middle_prediction_window(eviction, n, one_at_a_time):
    model = make("sleep", eviction, n_sleep=n)
    tokens, mask = batch()
    ref, ref_states = looped(model, tokens, mask, n)
    out, runner = streamed(model, tokens, mask, n, one_at_a_time)
    assert rel(out[mask], ref[mask]) < 1e-10
    # two windows slept on (0 and 3), N passes each; S after every pass is the same, so is the S the
    # prediction windows carried onward into window 3
    assert runner.sleeps == 2 and len(runner.history) == len(ref_states) == 2 * n
    for record, states in zip(runner.history, ref_states):
        assert all(rel(a, b.float()) < 1e-6 for a, b in zip(record["states"], states))  # history is float32


@pytest.mark.parametrize("eviction", ["hard", "sliding", "none"])
def test_one_pass_equals_parallel_forward_with_a_middle_prediction_window(eviction):
    model = make("hybrid", eviction)
    tokens, mask = batch()
    ref, _ = looped(model, tokens, mask, 1)
    with torch.no_grad():
        plain = parallel_forward(model, tokens)
    assert rel(ref[mask], plain[mask]) < 1e-10


def oracle(model, tokens, mask, n_sleep):
    """Algorithm 1 token by token, from the definition, sharing no mask with sleep.py: the query at
    position p attends to the keys of positions [p-L+1, p] (sliding), [window start, p] (hard) or
    [0, p] (none); keys of an earlier window are those of the last pass run over it. S runs on
    token by token, and from pass to pass of a sleep."""
    cfg, B = model.config, tokens.shape[0]
    attn = [i for i, b in enumerate(model.blocks) if b.kind == "attn"]
    final_kv = {}  # (block, position) -> (k, v) of the last pass over that position's window
    states, logits = model.empty_state(B), torch.zeros(B, T, V, dtype=torch.float64)
    for start in range(0, T, L):
        end = min(start + L, T)
        predict = bool(mask[:, start:end].any())
        e = model.embed(tokens[:, start:end], start)
        h_prev, passes = None, 1 if predict else n_sleep
        for n in range(passes):
            x = pass_input(model, h_prev, e, rms(e), n, passes)
            pass_kv, outs = {}, []
            for p in range(start, end):
                first = {"sliding": p - L + 1, "hard": start, "none": 0}[cfg.eviction]
                seen = [q for q in range(max(first, 0), p)]
                kv_of = lambda i, q: pass_kv[i, q] if q >= start else final_kv[i, q]
                cache = [None] * len(model.blocks)
                for i in attn:
                    if seen:
                        cache[i] = tuple(torch.cat([kv_of(i, q)[j] for q in seen], 2) for j in (0, 1))
                allow = torch.ones(1, len(seen) + 1, dtype=torch.bool)
                h, states, kvs = model.run_blocks(x[:, p - start:p - start + 1], states, allow, cache)
                for i in attn:
                    pass_kv[i, p] = (kvs[i][0][:, :, -1:], kvs[i][1][:, :, -1:])
                outs.append(h)
            h_prev = torch.cat(outs, 1)
        final_kv.update(pass_kv)
        if predict:
            logits[:, start:end] = model.head_logits(h_prev)
    return logits


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("eviction", ["sliding", "hard"])
def test_sleep_forward_equals_a_token_by_token_oracle(eviction, n):
    model = make("sleep", eviction, n_sleep=n)
    tokens, mask = batch()
    with torch.no_grad():
        ref = oracle(model, tokens, mask, n)
        got = sleep_forward(model, tokens, mask, n_sleep=n)
    assert rel(got[mask], ref[mask]) < 1e-10


def test_a_window_scored_by_only_some_examples_is_refused():
    tokens, mask = batch()
    mask[1, 27:] = False  # example 1 no longer scores window 4
    with pytest.raises(ValueError, match=r"window 4 \(positions 24-29\) is scored by 1 of 2 examples"):
        window_plan(mask, T, L)
