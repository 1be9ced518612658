"""The contract every task keeps: the module surface, a layout the sleep loop can use (one shared
layout, loss only in the last window), seeded reproducibility, disjoint train/eval by a public hash,
scoring, rendering, baselines; and the device the generator lives on."""
import os

import pytest
import torch

from sleeplab.tasks import TASKS, get_task, held_out, rule110
from sleeplab.tasks.base import Batch, score, window_roles

# SLEEPLAB_TEST_DEVICE=cuda runs every check on batches generated on the GPU.
DEVICE = os.environ.get("SLEEPLAB_TEST_DEVICE", "cpu")

CASES = {
    "rule110": dict(),
    "rule110-zero-small": dict(boundary="zero", t=3, width=12, n_states=6, window=16),
    "depo": dict(preset="tiny"),
    "depo-nosep-kvalues": dict(preset="tiny", edge_sep=False, k_values=(1, 2, 4, 8)),
    "gsm": dict(),
    "gsm-words-end": dict(rendering="words", question_position="end", n_ops=(1, 6)),
    "mqar": dict(),
}


def task_of(case):
    return get_task(case.split("-")[0])


def make(case, n=64, seed=0, split="train", device=DEVICE):
    task = task_of(case)
    cfg = task.Config(**CASES[case])
    return task, cfg, task.make_batch(cfg, n, torch.Generator(device).manual_seed(seed), split)


def test_registry():
    assert sorted(TASKS) == ["depo", "gsm", "mqar", "rule110"]
    for name, mod in TASKS.items():
        assert get_task(name) is mod and mod.NAME == name
        for attr in ("Config", "make_batch", "render", "vocab", "default_window", "baselines",
                     "exact_match", "partition_key"):
            assert callable(getattr(mod, attr)), (name, attr)
    with pytest.raises(ValueError, match="allowed"):
        get_task("sudoku")


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_fits_the_sleep_loop(case):
    task, cfg, b = make(case)
    L = task.default_window(cfg)
    assert b.tokens.dtype == torch.long and b.targets.dtype == torch.long and b.loss_mask.dtype == torch.bool
    V = len(task.vocab(cfg))
    assert 0 <= b.tokens.min() and b.tokens.max() < V and b.targets.max() < V
    assert (b.targets[~b.loss_mask] == 0).all()
    assert b.loss_mask.any(1).all()                       # every example has something to answer
    roles = window_roles(b.loss_mask, L)                  # raises if examples disagree
    assert roles[-1] == "predict" and set(roles[:-1]) == {"consolidate"} and len(roles) >= 2
    last = (len(roles) - 1) * L
    assert not b.loss_mask[:, :last].any() and b.seq_len - last <= L
    # every example has the same length: a second batch with another seed has the same layout
    _, _, b2 = make(case, n=8, seed=1)
    assert b2.seq_len == b.seq_len and window_roles(b2.loss_mask, L) == roles


@pytest.mark.parametrize("case", sorted(CASES))
def test_seeded_reproducibility(case):
    _, _, a = make(case, seed=3)
    _, _, b = make(case, seed=3)
    _, _, c = make(case, seed=4)
    for x, y in ((a.tokens, b.tokens), (a.loss_mask, b.loss_mask), (a.targets, b.targets)):
        assert torch.equal(x, y)
    assert not torch.equal(a.tokens, c.tokens)
    assert len({tuple(r) for r in a.tokens.tolist()}) == a.batch_size      # no repeated instance in a batch


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_and_eval_disjoint_by_the_public_hash(case):
    task, _, train = make(case, n=200, split="train")
    _, _, ev = make(case, n=200, split="eval")
    assert train.meta["split"] == "train" and ev.meta["split"] == "eval"
    assert (task.partition_key(train) % 10 != 0).all()
    assert (task.partition_key(ev) % 10 == 0).all()
    with pytest.raises(ValueError, match="split"):
        make(case, split="validation")


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_and_score(case):
    task, cfg, b = make(case, n=4)
    text = task.render(b, 0)
    assert " | " in text and text.count("[->") == b.loss_mask[0].sum().item()
    perfect = task.exact_match(b.targets.clone(), b)
    assert perfect["exact"] == 1.0 and perfect["per_label"] == 1.0
    wrong = torch.where(b.loss_mask, (b.targets + 1) % len(task.vocab(cfg)), b.targets)
    assert task.exact_match(wrong, b)["exact"] == 0.0 and score(wrong, b)["per_label"] == 0.0


BASELINE_CASES = {"rule110": dict(width=12, window=12, t=6), "depo": dict(preset="tiny"), "gsm": dict(),
                  "mqar": dict()}


@pytest.mark.parametrize("name", sorted(BASELINE_CASES))
def test_majority_per_label_baseline_matches_a_fresh_sample(name):
    """The stated per-label majority against the most frequent target of a fresh held-out sample
    (another seed than any baseline uses), within 5 standard errors: the maximum over several
    near-equal frequencies sits a little above each of them."""
    task = get_task(name)
    cfg = task.Config(**BASELINE_CASES[name])
    base = task.baselines(cfg, samples=256) if name == "depo" else task.baselines(cfg)
    sample = held_out(name, cfg, 2048, seed=7)
    scored = sample.targets[sample.loss_mask]
    top = scored.unique(return_counts=True)[1].max().item() / scored.numel()
    p = base["per_label"]["majority"]
    assert abs(top - p) < 5 * (p * (1 - p) / scored.numel()) ** 0.5 + 1e-9, (top, p)


def test_rule110_baselines_equal_a_brute_force_count():
    """Every eval-split state of width 12 rolled out by a rule-110 table written from the rule's
    number (not the generator's bit formula): P(label = 1), chance and majority follow from it."""
    cfg = rule110.Config(**BASELINE_CASES["rule110"])
    w, table = cfg.width, {tuple(int(b) for b in f"{n:03b}"): (110 >> n) & 1 for n in range(8)}
    keys = rule110.state_key(torch.arange(1 << w), w)
    ones = total = 0
    for x in range(1 << w):
        if int(keys[x]) % 10:  # train split: not in the eval baselines
            continue
        cells = [(x >> i) & 1 for i in range(w)]
        for _ in range(cfg.t):  # neighbourhood (left, self, right) = cells (i-1, i, i+1), periodic
            cells = [table[(cells[(i - 1) % w], cells[i], cells[(i + 1) % w])] for i in range(w)]
        ones, total = ones + cells[0], total + 1
    p = ones / total
    base = rule110.baselines(cfg)
    assert base["p_label_one"] == pytest.approx(p, abs=1e-12)
    assert base["chance"] == 0.5 ** cfg.n_states
    assert base["majority"] == pytest.approx(max(p, 1 - p) ** cfg.n_states, abs=1e-12)


def test_score_and_window_roles_helpers():
    tokens = torch.zeros(2, 6, dtype=torch.long)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 4:] = True
    targets = torch.zeros(2, 6, dtype=torch.long)
    targets[:, 4:] = torch.tensor([[1, 2], [3, 4]])
    b = Batch(tokens, mask, targets)
    pred = targets.clone()
    pred[1, 5] = 0
    assert score(pred, b) == {"exact": 0.5, "per_label": 0.75}
    assert window_roles(mask, 2) == ["consolidate", "consolidate", "predict"]
    mask[1, 1] = True
    with pytest.raises(ValueError, match=r"window 0 \(positions 0-1\) is scored by 1 of 2 examples"):
        window_roles(mask, 2)
    with pytest.raises(ValueError, match=r"pred has shape \(2, 3\), targets \(2, 6\)"):
        score(pred[:, :3], b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_tensors_live_on_the_generator_device(case):
    _, _, b = make(case, n=4, device="cpu")
    assert b.tokens.device.type == b.loss_mask.device.type == b.targets.device.type == "cpu"
    if not torch.cuda.is_available():
        pytest.skip("no CUDA here; CPU placement checked")
    _, _, g = make(case, n=64, device="cuda")
    assert g.tokens.is_cuda and g.loss_mask.is_cuda and g.targets.is_cuda
    assert torch.equal(g.to("cpu").tokens, make(case, n=64, device="cuda")[2].tokens.cpu())   # seeded on GPU too
