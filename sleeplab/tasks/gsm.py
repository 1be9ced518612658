r"""GSM-Infinite-style arithmetic over a hidden computation graph (paper §6.3).

Our own reimplementation of the idea of GSM-Infinite's symbolic subset (that repository has no licence,
so nothing of its code, names or data is used). A problem is a shuffled list of assignment statements;
the question asks for the value of one variable. Values live in 0..modulus-1 and every operation is
taken mod ``modulus``: constant, copy, +1, -1 and the sum of two variables.

* Core: the question variable is the root of an expression tree of exactly ``n_ops`` statements, so
  answering needs every one of them (upstream asks about a random node, which needs only ~ln(op)
  statements). ``tree_shape="chain"`` makes the tree a path: depth = n_ops, the pure depth dial.
* Distractors: statements of the same form that define fresh variables from any earlier variable (core
  or distractor) or from a constant. They are derivable but irrelevant, like the "spider" noise of the
  realistic subsets, so neither their form nor their derivability gives them away; only tracing back
  from the question does. They are added until the problem fills ``problem_windows`` windows: that is
  the memory-load dial.
* The question comes first (as in the paper, so consolidation can be query-aware); with
  ``question_position="end"`` it moves into the prediction window instead (a query-agnostic control).

Layout (defaults: L 64, 4 problem windows, question first), T = 257::

    <pad>.. <q> V 3 1 7 ? V 0 4 2 = V 5 5 1 + 1 . V 3 1 7 = ... .  | ... | ... | ... | <ans>
    \_________________ problem: 4 windows, left-padded, no loss ________________/   ^ target: the answer digit

Renderings share one vocabulary: symbolic "V 0 4 2 = V 5 5 1 + 1 ." (a name is "V" then
``name_digits`` digit tokens, never one token per variable) or words "Ada has 1 more figs than Bo has
pens ." (a variable is a name token and an item token). Generation is per-example Python from a seed
drawn from the torch generator, so each instance is reproducible on its own.
"""
from __future__ import annotations

import bisect
import random
import re
from dataclasses import dataclass

import torch

from ._hash import check_split, combine, hash_int, in_eval, mix32
from .base import Batch, check_choice, check_positive, check_range, render_tokens, score
from .gsm_text import ANS, ID, ITEMS, NAMES, PAD, VOCAB, question, statement

NAME = "gsm"
RENDERINGS = ("symbolic", "words")
SHAPES = ("random", "chain")
POSITIONS = ("start", "end")
OPS = ("const", "copy", "add1", "sub1", "add")     # operands: none (a value), 1, 1, 1, 2
DISTRACTOR_CUM = (0.25, 0.4, 0.55, 0.7, 1.0)         # distractor op mix: .25 .15 .15 .15 .30 (cumulative)


@dataclass
class GSMConfig:
    n_ops: int | tuple = 4             # core statements (= operations); (lo, hi) draws it uniformly
    tree_shape: str = "random"         # "random" expression tree, or "chain" (depth = n_ops)
    rendering: str = "symbolic"        # "symbolic" or "words"
    modulus: int = 10                  # values and arithmetic mod this (<= 10: the answer is one digit)
    question_position: str = "start"   # "start" (paper) or "end" (inside the prediction window)
    window: int = 64                   # L
    problem_windows: int = 4           # the problem (question + statements) fills this many windows
    n_distractors: int | None = None   # None: as many as fit; else exactly this many
    name_digits: int = 3               # symbolic names are "V" + this many digit tokens

    def __post_init__(self):
        if isinstance(self.n_ops, int) and not isinstance(self.n_ops, bool):
            self.n_ops = (self.n_ops, self.n_ops)
        self.n_ops = check_range("n_ops", self.n_ops, minimum=1)
        check_choice("tree_shape", self.tree_shape, SHAPES)
        check_choice("rendering", self.rendering, RENDERINGS)
        check_choice("question_position", self.question_position, POSITIONS)
        check_positive("modulus", self.modulus, minimum=2)
        if self.modulus > 10:
            raise ValueError(f"modulus must be in 2..10 (one answer digit), got {self.modulus}")
        check_positive("window", self.window)
        check_positive("problem_windows", self.problem_windows)
        check_positive("name_digits", self.name_digits)
        if self.name_digits > 6:
            raise ValueError(f"name_digits must be in 1..6 (upstream uses 6), got {self.name_digits}")
        if self.n_distractors is not None:
            check_positive("n_distractors", self.n_distractors, minimum=0)
        lens = [len(statement(self, (0, op, (0,) * _arity(op)))) for op in OPS]
        need = self.n_ops[1] * max(lens) + (self.n_distractors or 0) * max(lens)
        if self.question_position == "start":
            need += self.question_len
        elif self.question_len + 1 > self.window:
            raise ValueError(f"window must hold the question and <ans> ({self.question_len + 1} tokens); "
                             f"got {self.window}")
        if need > self.problem_len:
            raise ValueError(f"problem_windows * window = {self.problem_len} tokens cannot hold {need} "
                             f"(n_ops up to {self.n_ops[1]}, n_distractors {self.n_distractors}); "
                             f"raise window or problem_windows")
        most_vars = self.problem_len // min(lens) + 1
        if most_vars > self.name_space:
            raise ValueError(f"up to {most_vars} variables may be needed but the {self.rendering} rendering "
                             f"has {self.name_space} names; use fewer problem_windows or more name_digits")

    @property
    def problem_len(self) -> int:
        return self.window * self.problem_windows

    @property
    def question_len(self) -> int:
        return len(question(self, 0))

    @property
    def name_space(self) -> int:
        return 10 ** self.name_digits if self.rendering == "symbolic" else len(NAMES) * len(ITEMS)


Config = GSMConfig


def vocab(config: GSMConfig) -> list[str]:
    return list(VOCAB)


def default_window(config: GSMConfig) -> int:
    return config.window


def _arity(op: str) -> int:
    return {"const": 1, "add": 2}.get(op, 1)   # const carries its value in the argument slot


def apply(op: str, args, values: dict, modulus: int) -> int:
    """Value of a statement given the values of its operands."""
    if op == "const":
        return args[0] % modulus
    a = values[args[0]]
    return {"copy": a, "add1": a + 1, "sub1": a - 1, "add": a + values[args[-1]]}[op] % modulus


def _core(config: GSMConfig, rng: random.Random, n_ops: int):
    """An expression tree of n_ops statements in dependency order; the last one is asked about."""
    children = [[] for _ in range(n_ops)]
    for j in range(n_ops - 2, -1, -1):            # attach each node below a later node with < 2 children
        if config.tree_shape == "chain":
            parent = j + 1
        else:
            parent = rng.choice([p for p in range(j + 1, n_ops) if len(children[p]) < 2])
        children[parent].append(j)
    names = rng.sample(range(config.name_space), n_ops)
    stmts, depth = [], []
    for j in range(n_ops):
        kids = children[j]
        if not kids:
            op, args = "const", (rng.randrange(config.modulus),)
        elif len(kids) == 1:
            op, args = rng.choice(("copy", "add1", "sub1")), (names[kids[0]],)
        else:
            op, args = "add", (names[kids[0]], names[kids[1]])
        stmts.append((names[j], op, args))
        depth.append(1 + max((depth[k] for k in kids), default=0))
    return stmts, depth[-1]


def core_key(stmts, question: int):
    """Partition key of a problem core: a sum of statement hashes (order-free) mixed with the question.
    A problem is evaluation-only iff key % 10 == 0, whatever its distractors."""
    total = 0
    for x, op, args in stmts:
        h = combine(hash_int(x, salt=5), OPS.index(op))
        for a in args:
            h = combine(h, a)
        total += h
    return mix32((total & 0xFFFFFFFF) ^ hash_int(question, salt=6))


def _problem(config: GSMConfig, seed: int, want_eval: bool) -> dict:
    rng = random.Random(seed)
    n_ops = rng.randint(*config.n_ops)
    while True:                                     # redraw the core until it lies on our split's side
        core, depth = _core(config, rng, n_ops)
        if in_eval(core_key(core, core[-1][0])) == want_eval:
            break
    values = {}
    for x, op, args in core:
        values[x] = apply(op, args, values, config.modulus)
    question = core[-1][0]

    # Distractors: fresh variables computed from earlier ones, until the problem is full.
    used, defined, extra = set(values), list(values), []
    texts = {st: statement(config, st) for st in core}
    room = config.problem_len - sum(len(t) for t in texts.values())
    room -= config.question_len if config.question_position == "start" else 0
    while config.n_distractors is None or len(extra) < config.n_distractors:
        op = OPS[bisect.bisect(DISTRACTOR_CUM, rng.random())]
        x = rng.randrange(config.name_space)
        while x in used:
            x = rng.randrange(config.name_space)
        args = ((rng.randrange(config.modulus),) if op == "const"
                else tuple(rng.choice(defined) for _ in range(_arity(op))))
        st = (x, op, args)
        text = statement(config, st)
        if len(text) > room:
            st = (x, "const", (rng.randrange(config.modulus),))
            text = statement(config, st)
            if len(text) > room:
                break
        used.add(x)
        defined.append(x)
        values[x] = apply(st[1], st[2], values, config.modulus)
        extra.append(st)
        texts[st] = text
        room -= len(text)

    order = core + extra
    rng.shuffle(order)
    necessary = set(core)
    return {"statements": order, "necessary": [s in necessary for s in order], "values": values,
            "texts": [texts[s] for s in order],
            "question": question, "answer": values[question], "n_ops": n_ops, "depth": depth,
            "n_distractors": len(extra)}


def make_batch(config: GSMConfig, batch_size: int, generator: torch.Generator,
               split: str = "train") -> Batch:
    check_positive("batch_size", batch_size)
    want_eval = check_split(split)
    dev, L, P = generator.device, config.window, config.problem_len
    seeds = torch.randint(0, 2 ** 62, (batch_size,), generator=generator, device=dev).tolist()
    rows, problems = [], []
    for seed in seeds:
        pr = _problem(config, seed, want_eval)
        q = question(config, pr["question"])
        body, starts = (list(q) if config.question_position == "start" else []), []
        for text in pr.pop("texts"):
            starts.append(len(body))
            body.extend(text)
        pad = P - len(body)
        pr["necessary_windows"] = [(pad + s) // L for s, nec in zip(starts, pr["necessary"]) if nec]
        tail = ([] if config.question_position == "start" else q) + ["<ans>"]
        rows.append([PAD] * pad + [ID[s] for s in body + tail])
        problems.append(pr)
    tokens = torch.tensor(rows, dtype=torch.long, device=dev)
    loss_mask = tokens == ANS
    targets = torch.zeros_like(tokens)
    answers = torch.tensor([pr["answer"] for pr in problems], dtype=torch.long, device=dev)
    targets[loss_mask] = answers + ID["0"]
    meta = {"task": NAME, "split": split, "config": config, "vocab": vocab(config), "window": L,
            "problems": problems, "answer": answers,
            "n_ops": torch.tensor([pr["n_ops"] for pr in problems], device=dev),
            "depth": torch.tensor([pr["depth"] for pr in problems], device=dev)}
    return Batch(tokens, loss_mask, targets, meta)


def partition_key(batch: Batch) -> torch.Tensor:
    keys = []
    for pr in batch.meta["problems"]:
        core = [s for s, nec in zip(pr["statements"], pr["necessary"]) if nec]
        keys.append(core_key(core, pr["question"]))
    return torch.tensor(keys, dtype=torch.long)


def render(batch: Batch, i: int) -> str:
    text = render_tokens(batch, i, batch.meta["vocab"], batch.meta["window"])
    return re.sub(r"V((?: \d)+)", lambda m: "V" + m.group(1).replace(" ", ""), text)


def exact_match(pred: torch.Tensor, batch: Batch) -> dict:
    """``score`` (one answer token per problem, so exact == per_label) plus accuracy per op count."""
    out = score(pred, batch)
    right = ((pred.to(batch.targets.device) == batch.targets) | ~batch.loss_mask).all(1)
    ops = batch.meta["n_ops"]
    out["per_op"] = {int(o): right[ops == o].float().mean().item() for o in ops.unique().tolist()}
    return out


def baselines(config: GSMConfig, split: str = "eval") -> dict:
    """Exact formula: the answer is a constant plus a sum of independent uniform constants mod m, hence
    uniform on 0..m-1; chance and majority are both 1/m (the hash partition keeps a pseudo-random subset
    and leaves this unchanged up to noise). One scored token per problem: per_label = exact."""
    p = 1.0 / config.modulus
    return {"chance": p, "majority": p, "per_label": {"chance": p, "majority": p},
            "method": "exact formula", "split": split}
