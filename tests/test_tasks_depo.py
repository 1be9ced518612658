"""Depo: every answer recomputed by parsing the edge list out of the tokens and walking it; the hop
dial is the walk length; presets have the documented layout; bad dials fail."""
import os

import pytest
import torch

from sleeplab.tasks import depo
from sleeplab.tasks.base import window_roles

# SLEEPLAB_TEST_DEVICE=cuda runs every check on batches generated on the GPU.
DEVICE = os.environ.get("SLEEPLAB_TEST_DEVICE", "cpu")


def gen(seed):
    return torch.Generator(DEVICE).manual_seed(seed)


def parse(b, i, cfg):
    """Read example i back from its token strings: the successor map and the queries."""
    voc = depo.vocab(cfg)
    toks = [voc[t] for t in b.tokens[i].tolist()]
    P = cfg.context_len
    final = lambda s: len(s) == 1 and s.isupper() or s.startswith("W")

    def words(seq):
        out, cur = [], []
        for s in seq:
            cur.append(s)
            if final(s):
                out.append(tuple(cur))
                cur = []
        assert not cur, "a word is cut off"
        return out

    ctx = [s for s in toks[:P] if s != "<pad>"]
    succ = {}
    for chunk in " ".join(ctx).split("<edge>"):
        ws = words(chunk.split())
        if ws:
            assert len(ws) == 2, chunk
            assert ws[0] not in succ
            succ[ws[0]] = ws[1]
    queries, pos = [], P
    q = toks[P:]
    j = 0
    while j < len(q) and q[j] != "<pad>":
        k = int(q[j][5:-1])
        start = []
        j += 1
        while q[j] != "<ans>":
            start.append(q[j])
            j += 1
        ans_pos = P + j
        j += 1
        answer = []
        while True:
            answer.append(q[j])
            j += 1
            if final(answer[-1]):
                break
        queries.append((k, tuple(start), tuple(answer), ans_pos))
    return succ, queries


@pytest.mark.parametrize("preset,n,split", [("tiny", 600, "train"), ("tiny", 200, "eval"), ("small", 60, "train"),
                                            ("paper75", 30, "train")])
def test_answers_recomputed_by_walking_the_edges(preset, n, split):
    cfg = depo.DepoConfig(preset)
    b = depo.make_batch(cfg, n, gen(7), split)
    voc = depo.vocab(cfg)
    checked = 0
    for i in range(n):
        succ, queries = parse(b, i, cfg)
        assert len(succ) == b.meta["n"][i].item()
        assert len(set(succ.values())) == len(succ) and set(succ.values()) == set(succ)   # a permutation
        cycle, x = [], next(iter(succ))                                                # ... with one cycle
        while x not in cycle:
            cycle.append(x)
            x = succ[x]
        assert len(cycle) == len(succ)
        assert len(queries) == cfg.n_queries
        assert len({q[1] for q in queries}) == cfg.n_queries                          # distinct starts
        for (k, start, answer, ans_pos), k_meta in zip(queries, b.meta["query_k"][i].tolist()):
            assert k == k_meta
            x, steps = start, 0
            while x != answer:                        # the walk length is exactly the hop count
                x, steps = succ[x], steps + 1
            assert steps == k
            y = start
            for _ in range(k):
                y = succ[y]
            assert y == answer
            # the scored positions: <ans> and every letter of the answer but the last; targets = letters
            scored = [p for p in range(ans_pos, ans_pos + len(answer)) if b.loss_mask[i, p]]
            assert scored == list(range(ans_pos, ans_pos + len(answer)))
            assert tuple(voc[t] for t in b.targets[i, scored].tolist()) == answer
            checked += 1
        assert b.loss_mask[i].sum().item() == sum(len(q[2]) for q in queries)
    assert checked == n * cfg.n_queries


def test_hop_dial_values_and_range():
    cfg = depo.DepoConfig("tiny", k_values=(1, 2, 4, 8))
    k = depo.make_batch(cfg, 500, gen(0)).meta["query_k"]
    assert set(k.unique().tolist()) == {1, 2, 4, 8}
    cfg = depo.DepoConfig("tiny", k_range=(3, 5))
    k = depo.make_batch(cfg, 500, gen(0)).meta["query_k"]
    assert set(k.unique().tolist()) == {3, 4, 5}


def test_node_count_dial():
    fixed = depo.DepoConfig("tiny", n_min=16)
    assert (depo.make_batch(fixed, 100, gen(0)).meta["n"] == 16).all()
    g = gen(0)
    for dist in ("inverse", "uniform"):      # the sampled sizes follow P(n) (upstream: ∝ 1/(n + sqrt N))
        cfg = depo.DepoConfig("small", n_dist=dist)
        expect = float(depo.n_probs(cfg) @ torch.arange(cfg.n_min, cfg.n_nodes + 1).double())
        assert depo.make_batch(cfg, 600, g).meta["n"].float().mean().item() == pytest.approx(expect, abs=1.5)
    assert depo.n_probs(depo.DepoConfig("small"))[0] > 2 * depo.n_probs(depo.DepoConfig("small"))[-1]


@pytest.mark.parametrize("preset", sorted(depo.PRESETS))
def test_preset_layouts(preset):
    cfg = depo.DepoConfig(preset)
    L = depo.default_window(cfg)
    b = depo.make_batch(cfg, 8, gen(0))
    assert cfg.context_len % L == 0 and cfg.context_len // L >= 3
    roles = window_roles(b.loss_mask, L)
    assert roles == ["consolidate"] * (cfg.context_len // L) + ["predict"]
    assert b.seq_len == cfg.context_len + cfg.query_len and cfg.query_len <= L
    # the largest graph fits: no edge was dropped
    assert (b.tokens[:, :cfg.context_len] == depo.EDGE).sum(1).tolist() == b.meta["n"].tolist()
    if preset == "paper75":
        assert (cfg.context_len, L, b.seq_len) == (300, 75, 340)


def test_words_distinct_and_self_delimiting():
    cfg = depo.DepoConfig("tiny")
    m = depo.make_batch(cfg, 300, gen(2)).meta
    for i in range(300):
        n = m["n"][i].item()
        ws = {tuple(m["words"][i, j, :m["word_len"][i, j]].tolist()) for j in range(n)}
        assert len(ws) == n
    first_final = depo.word_base(cfg) + cfg.vocab_size
    last = m["words"].gather(2, (m["word_len"] - 1).unsqueeze(-1)).squeeze(-1)
    assert (last >= first_final).all()


def test_exact_match_per_query_and_k():
    cfg = depo.DepoConfig("tiny", k_values=(1, 8))
    b = depo.make_batch(cfg, 50, gen(0))
    pred = b.targets.clone()
    out = depo.exact_match(pred, b)
    assert out["exact"] == 1.0 and out["per_query"] == 1.0 and set(out["per_k"]) == {1, 8}
    # break the first letter of every 8-hop answer
    hop8 = (b.meta["query_k"] == 8)
    first = b.loss_mask & (b.tokens == depo.ANS)
    q = torch.where(first, b.meta["query_of"], 0)
    wrong = first & hop8.gather(1, q)
    pred[wrong] = depo.PAD
    out = depo.exact_match(pred, b)
    assert out["per_k"][1] == 1.0 and out["per_k"][8] == 0.0
    assert out["per_query"] == pytest.approx(1 - hop8.float().mean().item())


def test_baselines():
    cfg = depo.DepoConfig("tiny", n_min=16)
    base = depo.baselines(cfg, samples=512)
    assert base["per_query"]["chance"] == pytest.approx(1 / 15)
    assert base["chance"] == pytest.approx((1 / 15) ** 4)
    assert 0 < base["per_query"]["majority"] < 0.2 and 0 <= base["majority"] <= base["per_query"]["majority"]
    assert base["per_label"]["chance"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("kw", [dict(k_range=(1, 9)), dict(k_range=(0, 4)), dict(k_range=(5, 4)),
                                dict(k_values=(1, 9)), dict(k_values=()), dict(n_min=17), dict(n_min=1),
                                dict(n_nodes=-3), dict(window=31), dict(vocab_size=2, word_len=(1, 2)),
                                dict(word_len=(0, 2)), dict(n_queries=10), dict(n_dist="zipf"),
                                dict(preset="huge"), dict(min_context_windows=0), dict(edge_sep="yes")])
def test_bad_dials(kw):
    with pytest.raises(ValueError, match="|".join(kw) + "|largest hop count k="):  # the message names the dial
        depo.DepoConfig(**{"preset": "tiny", **kw})
