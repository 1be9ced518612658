"""Rule 110: labels recomputed by a table-driven CA checked against hand-worked evolutions; the depth
dial t is the light-cone radius; layout, partition and baselines as documented."""
import itertools

import os

import pytest
import torch

from sleeplab.tasks import rule110
from sleeplab.tasks.base import window_roles

# Rule 110 written out by hand, (left, self, right) -> new self.
TABLE = {(1, 1, 1): 0, (1, 1, 0): 1, (1, 0, 1): 1, (1, 0, 0): 0,
         (0, 1, 1): 1, (0, 1, 0): 1, (0, 0, 1): 1, (0, 0, 0): 0}

# SLEEPLAB_TEST_DEVICE=cuda runs every check on batches generated on the GPU.
DEVICE = os.environ.get("SLEEPLAB_TEST_DEVICE", "cpu")


def gen(seed):
    return torch.Generator(DEVICE).manual_seed(seed)


def ref_step(cells, boundary="periodic"):
    w = len(cells)
    get = (lambda i: cells[i % w]) if boundary == "periodic" else (lambda i: cells[i] if 0 <= i < w else 0)
    return [TABLE[(get(i - 1), cells[i], get(i + 1))] for i in range(w)]


def ref_evolve(cells, t, boundary="periodic"):
    for _ in range(t):
        cells = ref_step(cells, boundary)
    return cells


def bits(s):
    return [int(c) for c in s]


# An 8-cell ring holding a single 1, stepped by hand (cell 0 first). Rule 110 grows to the LEFT
# (towards lower indices); its mirror image, rule 124, would grow to the right.
HAND_PERIODIC = ["00001000", "00011000", "00111000", "01101000", "11111000", "10001001"]
HAND_ZERO = HAND_PERIODIC[:5] + ["10001000"]   # step 5 differs: cell 7 no longer sees cell 0


@pytest.mark.parametrize("boundary,hand", [("periodic", HAND_PERIODIC), ("zero", HAND_ZERO)])
def test_hand_worked_evolution(boundary, hand):
    for t, expected in enumerate(hand):
        assert ref_evolve(bits(hand[0]), t, boundary) == bits(expected)          # the test's own CA
        x = rule110.pack(torch.tensor(bits(hand[0])))
        got = rule110.unpack(rule110.evolve(x, 8, t, boundary), 8).tolist()    # the generator's CA
        assert got == bits(expected), (t, got)


def test_step_matches_table_on_every_neighbourhood():
    for w in (3, 5, 24):
        for state in itertools.product((0, 1), repeat=min(w, 10)):
            cells = list(state) + [0] * (w - len(state))
            for boundary in ("periodic", "zero"):
                got = rule110.unpack(rule110.step(rule110.pack(torch.tensor(cells)), w, boundary), w).tolist()
                assert got == ref_step(cells, boundary)
            if w == 24 and sum(state) > 3:
                break


@pytest.mark.parametrize("t,boundary,n", [(0, "periodic", 1000), (3, "zero", 1000), (8, "periodic", 1000),
                                          (32, "periodic", 150), (12, "zero", 300)])
def test_labels_recomputed_from_meta(t, boundary, n):
    cfg = rule110.Rule110Config(t=t, boundary=boundary)
    b = rule110.make_batch(cfg, n, gen(t), "train")
    states = b.meta["states"]
    assert states.shape == (n, 4, 24)
    # the tokens are the states, one per window
    assert torch.equal(b.tokens[:, :96].view(n, 4, 24), states)
    for i in range(n):
        for j in range(4):
            label = ref_evolve(states[i, j].tolist(), t, boundary)[0]
            assert b.targets[i, 96 + j].item() == label == b.meta["labels"][i, j].item()


def test_paper_layout():
    cfg = rule110.Rule110Config()
    b = rule110.make_batch(cfg, 8, gen(0))
    assert b.seq_len == 100 and rule110.default_window(cfg) == 24
    assert window_roles(b.loss_mask, 24) == ["consolidate"] * 4 + ["predict"]
    assert b.loss_mask[:, 96:].all() and not b.loss_mask[:, :96].any()
    voc = rule110.vocab(cfg)
    assert [voc[i] for i in b.tokens[0, 96:].tolist()] == ["Q0", "Q1", "Q2", "Q3"]
    assert set(b.tokens[:, :96].unique().tolist()) <= {0, 1}


def test_wider_window_pads_each_state():
    cfg = rule110.Rule110Config(width=16, window=20, n_states=3, t=2)
    b = rule110.make_batch(cfg, 4, gen(0))
    assert b.seq_len == 3 * 20 + 3
    w = b.tokens[:, :60].view(4, 3, 20)
    assert (w[..., 16:] == rule110.PAD).all() and torch.equal(w[..., :16], b.meta["states"])


@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_depth_dial_is_the_light_cone(boundary):
    """After t steps cell 0 depends on cells within distance t only: flipping a cell at distance t+1
    (either side) never changes the label, flipping cell t (distance t to the right) sometimes does.
    (To the left, rule 110 carries information more slowly: beyond t = 2 cell -t no longer matters.)"""
    w = 24
    x = torch.randint(0, 1 << w, (20000,), generator=gen(1), device=DEVICE)
    for t in range(0, 11):
        label = rule110.evolve(x, w, t, boundary) & 1
        flip = lambda cell: rule110.evolve(x ^ (1 << cell), w, t, boundary) & 1
        far = [t + 1, w - t - 1] if boundary == "periodic" else [t + 1]
        for cell in far:
            assert torch.equal(flip(cell), label), (t, cell)
        assert (flip(t) != label).any(), t


def test_partition_recomputed_with_python_ints():
    cfg = rule110.Rule110Config(t=1, width=12)
    for split, want in (("train", False), ("eval", True)):
        b = rule110.make_batch(cfg, 500, gen(3), split)
        for row in b.meta["states"].view(-1, 12).tolist():
            value = sum(bit << i for i, bit in enumerate(row))
            assert (rule110.state_key(value, 12) % 10 == 0) == want


def test_eval_states_are_exactly_the_reserved_tenth():
    """Every reserved state can be drawn by eval and none by train (W = 8: all 256 states)."""
    cfg = rule110.Rule110Config(t=0, width=8, n_states=1)
    reserved = {v for v in range(256) if rule110.state_key(v, 8) % 10 == 0}
    seen = {s: set(rule110.make_batch(cfg, 4000, gen(5), s).meta["state_int"].flatten().tolist())
            for s in ("train", "eval")}
    assert seen["eval"] == reserved
    assert seen["train"] == set(range(256)) - reserved


def test_baselines_exhaustive_small_ring():
    for t, boundary in ((0, "periodic"), (5, "periodic"), (7, "zero")):
        cfg = rule110.Rule110Config(t=t, width=10, boundary=boundary, window=10)
        for split in ("train", "eval"):
            states = [v for v in range(1024) if (rule110.state_key(v, 10) % 10 == 0) == (split == "eval")]
            ones = sum(ref_evolve([(v >> i) & 1 for i in range(10)], t, boundary)[0] for v in states)
            p = ones / len(states)
            base = rule110.baselines(cfg, split)
            assert base["p_label_one"] == pytest.approx(p, abs=1e-12)
            assert base["per_label"]["majority"] == pytest.approx(max(p, 1 - p))
            assert base["majority"] == pytest.approx(max(p, 1 - p) ** 4)
            assert base["chance"] == 1 / 16


def test_exact_match_per_state():
    cfg = rule110.Rule110Config(t=4)
    b = rule110.make_batch(cfg, 64, gen(0))
    pred = b.targets.clone()
    pred[:, 97] = 1 - pred[:, 97]            # state 1 always wrong
    out = rule110.exact_match(pred, b)
    assert out["exact"] == 0.0 and out["per_label"] == pytest.approx(0.75)
    assert out["per_state"] == pytest.approx([1.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("kw", [dict(t=-1), dict(t=1.5), dict(width=2), dict(width=63), dict(n_states=0),
                                dict(boundary="open"), dict(window=23), dict(width=4, n_states=5, window=4)])
def test_bad_dials(kw):
    with pytest.raises(ValueError, match="|".join(kw)):  # the message names the dial
        rule110.Rule110Config(**kw)


def test_bad_split_and_batch_size():
    cfg = rule110.Rule110Config()
    with pytest.raises(ValueError, match="split"):
        rule110.make_batch(cfg, 4, torch.Generator(), "test")
    with pytest.raises(ValueError, match="batch_size"):
        rule110.make_batch(cfg, 0, torch.Generator())
