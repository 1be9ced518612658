"""MQAR: answers recomputed from the key-value pairs read off the tokens; dials and bad dials."""
import os

import pytest
import torch

from sleeplab.tasks import mqar
from sleeplab.tasks.base import window_roles

# SLEEPLAB_TEST_DEVICE=cuda runs every check on batches generated on the GPU.
DEVICE = os.environ.get("SLEEPLAB_TEST_DEVICE", "cpu")


def gen(seed):
    return torch.Generator(DEVICE).manual_seed(seed)


@pytest.mark.parametrize("kw", [dict(), dict(n_pairs=5, n_queries=5, vocab_size=11, window=8),
                                dict(n_pairs=100, n_queries=30, vocab_size=8192, window=64)])
def test_answers_recomputed_from_the_pairs(kw):
    cfg = mqar.MQARConfig(**kw)
    n = 1000
    b = mqar.make_batch(cfg, n, gen(0))
    C, M = cfg.context_len, cfg.n_queries
    voc = mqar.vocab(cfg)
    assert len(voc) == cfg.vocab_size
    for i in range(n):
        ctx = [voc[t] for t in b.tokens[i, :C].tolist() if t != mqar.PAD]
        assert len(ctx) == 2 * cfg.n_pairs
        table = dict(zip(ctx[0::2], ctx[1::2]))
        assert len(table) == cfg.n_pairs                                   # distinct keys
        assert all(k.startswith("k") and v.startswith("v") for k, v in table.items())
        queries = [voc[t] for t in b.tokens[i, C:].tolist()]
        assert len(set(queries)) == M and set(queries) <= set(table)
        assert [voc[t] for t in b.targets[i, C:].tolist()] == [table[q] for q in queries]
    assert b.loss_mask[:, C:].all() and not b.loss_mask[:, :C].any()


def test_layout_and_capacity_dial():
    for pairs, windows in ((16, 1), (32, 2), (40, 3)):
        cfg = mqar.MQARConfig(n_pairs=pairs)
        b = mqar.make_batch(cfg, 4, gen(0))
        assert window_roles(b.loss_mask, 32) == ["consolidate"] * windows + ["predict"]
        assert b.seq_len == 32 * windows + 16


def test_exact_and_baselines():
    cfg = mqar.MQARConfig(vocab_size=65, n_pairs=8, n_queries=4, window=16)
    b = mqar.make_batch(cfg, 64, gen(0))
    pred = b.targets.clone()
    pred[:, -1] = 0
    out = mqar.exact_match(pred, b)
    assert out["exact"] == 0.0 and out["per_query"] == pytest.approx(0.75)
    base = mqar.baselines(cfg)
    assert base["per_query"]["chance"] == base["per_label"]["majority"] == pytest.approx(1 / 32)
    assert base["chance"] == pytest.approx((1 / 32) ** 4)


def test_values_uniform():
    cfg = mqar.MQARConfig(vocab_size=9, n_pairs=4, n_queries=4, window=8)
    t = mqar.make_batch(cfg, 4000, gen(1)).meta["answers"]
    freq = torch.bincount(t.flatten() - 1 - cfg.n_keys, minlength=cfg.n_values).float() / t.numel()
    assert torch.allclose(freq, torch.full_like(freq, 0.25), atol=0.02)


@pytest.mark.parametrize("kw", [dict(n_pairs=0), dict(n_queries=40), dict(vocab_size=64), dict(vocab_size=2),
                                dict(window=8), dict(window=-1)])
def test_bad_dials(kw):
    with pytest.raises(ValueError, match="|".join(kw)):  # the message names the dial
        mqar.MQARConfig(**kw)
