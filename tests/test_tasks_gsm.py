"""GSM-style math: every answer recomputed by parsing the rendered tokens (both renderings) and
evaluating them with a separate evaluator; n_ops / tree_shape set the dependency structure; layout and
bad dials."""
import os

import pytest
import torch

from sleeplab.tasks import gsm
from sleeplab.tasks.base import window_roles

# SLEEPLAB_TEST_DEVICE=cuda runs every check on batches generated on the GPU.
DEVICE = os.environ.get("SLEEPLAB_TEST_DEVICE", "cpu")


def gen(seed):
    return torch.Generator(DEVICE).manual_seed(seed)


def parse_statement(words):
    """-> (target, kind, operands): operands are variable names or an int constant."""
    if "=" in words:                                   # symbolic: V d d d = rhs
        eq = words.index("=")
        name, rhs = "".join(words[:eq]), words[eq + 1:]
        if len(rhs) == 1:
            return name, "const", [int(rhs[0])]
        names, cur, ops = [], [], []
        for w in rhs:
            if w in "+-":
                names.append("".join(cur)) if cur else None
                cur = []
                ops.append(w)
            else:
                cur.append(w)
        names.append("".join(cur))
        if ops == []:
            return name, "copy", names[:1]
        if len(names) == 2 and names[1] == "1":
            return name, "add1" if ops == ["+"] else "sub1", names[:1]
        assert ops == ["+"] and len(names) == 2
        return name, "add", names
    # words: "N has c I", "N has as many I as A has B [and C has D together]", "N has 1 more|fewer I than A has B"
    who = words[0]
    if words[1] == "has" and words[2].isdigit() and words[3] not in ("more", "fewer"):
        return f"{who} {words[3]}", "const", [int(words[2])]
    if words[2] == "as":
        target = f"{who} {words[4]}"
        a = f"{words[6]} {words[8]}"
        if "together" in words:
            return target, "add", [a, f"{words[10]} {words[12]}"]
        return target, "copy", [a]
    target = f"{who} {words[4]}"
    return target, "add1" if words[3] == "more" else "sub1", [f"{words[6]} {words[8]}"]


def parse(b, i):
    voc = b.meta["vocab"]
    toks = [voc[t] for t in b.tokens[i].tolist() if voc[t] != "<pad>"]
    q0, q1 = toks.index("<q>"), toks.index("?")
    qw = toks[q0 + 1:q1]
    question = "".join(qw) if qw[0] == "V" else f"{qw[4]} {qw[2]}"     # how many I does N have
    body = toks[:q0] + toks[q1 + 1:]
    body = body[:body.index("<ans>")]
    stmts, cur = [], []
    for w in body:
        if w == ".":
            stmts.append(parse_statement(cur))
            cur = []
        else:
            cur.append(w)
    assert not cur
    return question, stmts


def evaluate(stmts, modulus):
    """Fixed-point evaluation: keep sweeping until nothing new can be derived."""
    val = {}
    changed = True
    while changed:
        changed = False
        for name, kind, args in stmts:
            if name in val:
                continue
            if kind == "const":
                val[name] = args[0] % modulus
            elif all(a in val for a in args):
                a = [val[x] for x in args]
                val[name] = {"copy": a[0], "add1": a[0] + 1, "sub1": a[0] - 1, "add": sum(a)}[kind] % modulus
            else:
                continue
            changed = True
    return val


def depth(name, defs):
    kind, args = defs[name]
    return 1 + (0 if kind == "const" else max(depth(a, defs) for a in args))


def closure(name, defs):
    kind, args = defs[name]
    out = {name}
    for a in ([] if kind == "const" else args):
        out |= closure(a, defs)
    return out


CASES = [dict(), dict(rendering="words"), dict(n_ops=(1, 8), modulus=7), dict(tree_shape="chain", n_ops=6),
         dict(question_position="end", rendering="words", n_ops=(2, 5)), dict(n_distractors=3, n_ops=3)]


@pytest.mark.parametrize("kw", CASES, ids=[str(c) for c in CASES])
def test_answers_recomputed_by_a_separate_evaluator(kw):
    cfg = gsm.GSMConfig(**kw)
    n = 400
    for split in ("train", "eval"):
        b = gsm.make_batch(cfg, n, gen(11), split)
        for i in range(n):
            pr = b.meta["problems"][i]
            question, stmts = parse(b, i)
            names = [s[0] for s in stmts]
            assert len(set(names)) == len(names)                     # one definition per variable
            defs = {s[0]: (s[1], s[2]) for s in stmts}
            val = evaluate(stmts, cfg.modulus)
            assert set(val) == set(names)                             # everything is derivable
            answer = val[question]
            ans_pos = b.tokens[i].tolist().index(gsm.ANS)
            assert b.loss_mask[i].nonzero().flatten().tolist() == [ans_pos]
            assert b.meta["vocab"][b.targets[i, ans_pos].item()] == str(answer)
            assert answer == pr["answer"] == b.meta["answer"][i].item()
            # the statements marked necessary are exactly what the question depends on
            need = closure(question, defs)
            marked = {stmts[j][0] for j, nec in enumerate(pr["necessary"]) if nec}
            assert marked == need and len(need) == pr["n_ops"] == b.meta["n_ops"][i].item()
            assert evaluate([s for s in stmts if s[0] in need], cfg.modulus)[question] == answer
            assert depth(question, defs) == pr["depth"] == b.meta["depth"][i].item()
            if cfg.n_distractors is not None:
                assert len(stmts) == pr["n_ops"] + cfg.n_distractors


def test_depth_follows_the_dial():
    for k in (1, 3, 6, 9):
        chain = gsm.make_batch(gsm.GSMConfig(n_ops=k, tree_shape="chain", problem_windows=6),
                               200, gen(k))
        assert (chain.meta["depth"] == k).all() and (chain.meta["n_ops"] == k).all()
    means = []
    for k in (2, 4, 8, 16):
        b = gsm.make_batch(gsm.GSMConfig(n_ops=k, problem_windows=8), 300, gen(k))
        d = b.meta["depth"]
        assert (d <= k).all() and (d >= k.bit_length()).all()     # a binary tree is >= log2(k+1) deep
        means.append(d.float().mean().item())
    assert means == sorted(means) and means[-1] > means[0] + 2


def test_layout_question_first_and_last():
    cfg = gsm.GSMConfig()
    b = gsm.make_batch(cfg, 16, gen(0))
    assert b.seq_len == 4 * 64 + 1 and gsm.default_window(cfg) == 64
    assert window_roles(b.loss_mask, 64) == ["consolidate"] * 4 + ["predict"]
    for i in range(16):                        # the question comes before every statement
        row = b.tokens[i].tolist()
        first = next(p for p, t in enumerate(row) if t != gsm.PAD)
        assert row[first] == gsm.ID["<q>"]
    end = gsm.GSMConfig(question_position="end", rendering="words")
    b = gsm.make_batch(end, 16, gen(0))
    roles = window_roles(b.loss_mask, 64)
    assert roles == ["consolidate"] * 4 + ["predict"] and (b.tokens[:, 256] == gsm.ID["<q>"]).all()
    assert not (b.tokens[:, :256] == gsm.ID["<q>"]).any()


def test_necessary_windows_and_distractor_fill():
    cfg = gsm.GSMConfig(n_ops=5)
    b = gsm.make_batch(cfg, 100, gen(4))
    for i, pr in enumerate(b.meta["problems"]):
        assert len(pr["necessary_windows"]) == 5
        assert all(0 <= w < cfg.problem_windows for w in pr["necessary_windows"])
        pads = (b.tokens[i, :256] == gsm.PAD).sum().item()
        assert pads < 15                          # filled to within one statement of the length
        assert pr["n_distractors"] > 5


def test_names_are_multi_token_and_vocab_shared():
    assert gsm.vocab(gsm.GSMConfig()) == gsm.vocab(gsm.GSMConfig(rendering="words"))
    b = gsm.make_batch(gsm.GSMConfig(name_digits=4), 4, gen(0))
    voc = b.meta["vocab"]
    row = [voc[t] for t in b.tokens[0].tolist()]
    for p, s in enumerate(row):
        if s == "V":
            assert all(c.isdigit() for c in row[p + 1:p + 5]) and not row[p + 5].isdigit()


def test_partition_key_and_split():
    cfg = gsm.GSMConfig(n_ops=(1, 4))
    for split, want in (("train", False), ("eval", True)):
        b = gsm.make_batch(cfg, 300, gen(9), split)
        assert ((gsm.partition_key(b) % 10 == 0) == want).all()


def test_exact_match_per_op():
    b = gsm.make_batch(gsm.GSMConfig(n_ops=(2, 3)), 100, gen(1))
    pred = b.targets.clone()
    pred[(b.meta["n_ops"] == 3).unsqueeze(1) & b.loss_mask] = gsm.PAD
    out = gsm.exact_match(pred, b)
    assert out["per_op"] == {2: 1.0, 3: 0.0}
    assert gsm.baselines(gsm.GSMConfig(modulus=7))["chance"] == pytest.approx(1 / 7)


@pytest.mark.parametrize("kw", [dict(rendering="latex"), dict(tree_shape="star"), dict(modulus=11),
                                dict(modulus=1), dict(n_ops=0), dict(n_ops=(3, 2)), dict(n_ops=-1),
                                dict(window=16, problem_windows=1), dict(question_position="middle"),
                                dict(name_digits=0), dict(n_distractors=-1), dict(n_distractors=100),
                                dict(problem_windows=0), dict(window=8, question_position="end"),
                                dict(rendering="words", window=512, problem_windows=8)])
def test_bad_dials(kw):
    with pytest.raises(ValueError, match="|".join(kw)):  # the message names the dial
        gsm.GSMConfig(**kw)
