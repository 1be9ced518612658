"""Rule 110 rollout: the paper's cellular-automaton task (its §4 and §6.1).

Each example holds ``n_states`` independent random binary states of ``width`` cells. The label of state
i is cell 0 of that state after ``t`` steps of elementary CA rule 110. Depth is ``t``; memory load
(n_states * width bits) does not change with t, which is the point of the task.

Layout with the defaults (width 24, window L 24, 4 states), T = 100::

    window 0        window 1        window 2        window 3        window 4 (prediction, 4 tokens)
    s0: 24 bits  |  s1: 24 bits  |  s2: 24 bits  |  s3: 24 bits  |  Q0 Q1 Q2 Q3
                                                                    ^ target at Qi = label of state i

The first four windows carry no loss: they are consolidation windows, and the model sleeps on each one
before its keys and values are evicted. The query tokens Qi sit inside the prediction window, so every
label is predicted from a token of that window; the paper leaves this alignment open (its §3.1).
If L > width, each state is followed by <pad> up to the end of its window.

Dynamics: cell i's left neighbour is i-1 and its right neighbour is i+1 (mod width when
``boundary="periodic"``, missing cells read 0 when ``boundary="zero"``). The next value of a cell is bit
``4*left + 2*self + right`` of the number 110 (111->0 110->1 101->1 100->0 011->1 010->1 001->1 000->0).
A state is stored packed in an int64 with bit i = cell i, so one step is a handful of whole-tensor bit
operations for the entire batch; the CA fits any device the generator lives on.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ._hash import check_split, hash_int, in_eval, sample_split
from .base import Batch, check_choice, check_positive, score

NAME = "rule110"
RULE = 110
BOUNDARIES = ("periodic", "zero")
MAX_WIDTH = 62        # a packed state must fit an int64 with room for one left shift
# Making a batch runs t steps of the rule, one tensor op each, so a batch costs time linear in t
# (t = 1024 on 8,192 states: ~0.4 s on a CPU core). The label is cell 0, which depends only on its light
# cone, the ring of ``width`` <= 62 cells: past a few widths more depth only lengthens the rollout.
MAX_T = 1024
PAD = 2               # token ids: "0" -> 0 and "1" -> 1, so a bit is its own token id
Q0 = 3


@dataclass
class Rule110Config:
    t: int = 8                     # rollout steps: the depth dial (paper: 4..16 in Fig. 2a, 32 in Fig. 2b)
    n_states: int = 4              # independent states per example; labels are scored together
    width: int = 24                # cells per state (paper: 24)
    boundary: str = "periodic"     # paper leaves it open; periodic keeps the rule translation-invariant
    window: int | None = None      # L; None means width, i.e. exactly one state per window (paper: 24)

    def __post_init__(self):
        check_positive("t", self.t, minimum=0)
        if self.t > MAX_T:
            raise ValueError(f"t must be <= {MAX_T} (each step of the rollout is paid for every batch; "
                             f"the paper goes to 32), got {self.t}")
        check_positive("n_states", self.n_states)
        check_positive("width", self.width, minimum=3)   # a rule-110 neighbourhood needs 3 cells
        if self.width > MAX_WIDTH:
            raise ValueError(f"width must be <= {MAX_WIDTH} (packed int64 states), got {self.width}")
        check_choice("boundary", self.boundary, BOUNDARIES)
        if self.window is None:
            self.window = self.width
        check_positive("window", self.window)
        if self.window < max(self.width, self.n_states):
            raise ValueError(f"window must hold one state ({self.width} cells) and all {self.n_states} "
                             f"query tokens, so window >= {max(self.width, self.n_states)}; got {self.window}")


Config = Rule110Config


def vocab(config: Rule110Config) -> list[str]:
    # at least 8 query tokens, so configs with up to 8 states share one embedding table
    return ["0", "1", "<pad>"] + [f"Q{i}" for i in range(max(8, config.n_states))]


def default_window(config: Rule110Config) -> int:
    return config.window


def step(x: torch.Tensor, width: int, boundary: str = "periodic") -> torch.Tensor:
    """One rule-110 step on packed states (bit i = cell i)."""
    left = x << 1           # bit i now holds cell i-1
    right = x >> 1          # bit i now holds cell i+1
    if boundary == "periodic":
        left = left | (x >> (width - 1))
        right = right | ((x & 1) << (width - 1))
    # Rule 110 as a formula: the new cell is 1 iff self != right, or self is 1 and left is 0.
    # Check against the table in the docstring: 111->0 (1==1, left 1), 011->1 (self 1, left 0), ...
    return ((x ^ right) | (x & ~left)) & ((1 << width) - 1)


def evolve(x: torch.Tensor, width: int, t: int, boundary: str = "periodic") -> torch.Tensor:
    for _ in range(t):
        x = step(x, width, boundary)
    return x


def unpack(x: torch.Tensor, width: int) -> torch.Tensor:
    """Packed states [...] -> bits [..., width], cell 0 first."""
    return (x.unsqueeze(-1) >> torch.arange(width, device=x.device)) & 1


def pack(bits: torch.Tensor) -> torch.Tensor:
    """Bits [..., width] (cell 0 first) -> packed int64 states [...]."""
    w = bits.shape[-1]
    return (bits.long() << torch.arange(w, device=bits.device)).sum(-1)


def state_key(x: torch.Tensor | int, width: int):
    """Partition key of a packed state; the state is evaluation-only iff key % 10 == 0."""
    return hash_int(x, salt=width)


def make_batch(config: Rule110Config, batch_size: int, generator: torch.Generator,
               split: str = "train") -> Batch:
    check_positive("batch_size", batch_size)
    check_split(split)
    dev = generator.device
    n, w, L = config.n_states, config.width, config.window

    # Every state is drawn uniformly from its split's side of the partition (states are independent).
    def draw(m):
        return (torch.randint(0, 1 << w, (m,), generator=generator, device=dev),)
    (states,) = sample_split(draw, lambda x: state_key(x, w), batch_size * n, split)
    states = states.view(batch_size, n)
    labels = evolve(states, w, config.t, config.boundary) & 1        # cell 0 after t steps

    T = n * L + n
    tokens = torch.full((batch_size, T), PAD, dtype=torch.long, device=dev)
    bits = unpack(states, w)                                          # [B, n, w]
    tokens[:, :n * L].view(batch_size, n, L)[..., :w] = bits
    tokens[:, n * L:] = Q0 + torch.arange(n, device=dev)
    loss_mask = torch.zeros(batch_size, T, dtype=torch.bool, device=dev)
    loss_mask[:, n * L:] = True
    targets = torch.zeros(batch_size, T, dtype=torch.long, device=dev)
    targets[:, n * L:] = labels                                       # token "0"/"1" has id 0/1

    meta = {"task": NAME, "split": split, "t": config.t, "width": w, "boundary": config.boundary,
            "window": L, "states": bits, "state_int": states, "labels": labels}
    return Batch(tokens, loss_mask, targets, meta)


def partition_key(batch: Batch) -> torch.Tensor:
    """Keys [B, n_states]; in an eval batch all are 0 mod 10, in a train batch none is."""
    return state_key(batch.meta["state_int"], batch.meta["width"])


def render(batch: Batch, i: int) -> str:
    m = batch.meta
    n, L = m["state_int"].shape[1], m["window"]
    states = ["".join(str(b) for b in m["states"][i, j].tolist()) for j in range(n)]
    labels = m["labels"][i].tolist()
    queries = " ".join(f"Q{j}[->{labels[j]}]" for j in range(n))
    return " | ".join(states + [queries]) + f"   (t={m['t']}, {m['boundary']}, L={L})"


def exact_match(pred: torch.Tensor, batch: Batch) -> dict:
    """``score`` plus accuracy per state index (is state 0, evicted longest ago, harder?)."""
    out = score(pred, batch)
    n = batch.meta["labels"].shape[1]
    hit = (pred[:, -n:].to(batch.targets.device) == batch.targets[:, -n:]).float().mean(0)
    out["per_state"] = hit.tolist()
    return out


MC_SAMPLES = 1 << 22   # above 2**24 states, the label rate is estimated: standard error <= 0.00025


@functools.lru_cache(maxsize=256)
def label_one_rate(width: int, t: int, boundary: str, split: str) -> float:
    """P(label = 1) for states of ``split``: exact enumeration of all 2**width states when width <= 24,
    else a Monte-Carlo estimate over MC_SAMPLES states drawn by the split's own sampler (seed 0)."""
    want_eval = check_split(split)
    if width <= 24:
        ones = total = 0
        chunk = 1 << 20
        for start in range(0, 1 << width, chunk):
            x = torch.arange(start, min(start + chunk, 1 << width), dtype=torch.long)
            x = x[in_eval(state_key(x, width)) == want_eval]
            ones += int((evolve(x, width, t, boundary) & 1).sum())
            total += x.numel()
        return ones / total
    g = torch.Generator().manual_seed(0)
    cfg = Rule110Config(t=t, n_states=1, width=width, boundary=boundary)
    labels = make_batch(cfg, MC_SAMPLES, g, split).meta["labels"]
    return labels.float().mean().item()


def baselines(config: Rule110Config, split: str = "eval") -> dict:
    """Trivial accuracies for ``score``'s metrics on ``split``.

    chance: guess every label by a fair coin, 1/2 per label, (1/2)**n_states for exact.
    majority: always answer the more frequent label value; labels of different states are independent
    and identically distributed, so exact = max(p, 1-p)**n_states with p = P(label = 1).
    """
    p = label_one_rate(config.width, config.t, config.boundary, split)
    major = max(p, 1.0 - p)
    n = config.n_states
    method = "exhaustive" if config.width <= 24 else f"monte-carlo ({MC_SAMPLES} states)"
    return {"chance": 0.5 ** n, "majority": major ** n,
            "per_label": {"chance": 0.5, "majority": major},
            "p_label_one": p, "method": method, "split": split}
