r"""Depo: k-hop retrieval on a shuffled directed cycle (Allen-Zhu, Physics of LMs 4.1; paper §6.2).

Our own implementation of the idea (no upstream code): an example is a directed cycle over n distinct
"words". Its n edges are written in random order, then ``n_queries`` questions "which word is k hops
after word x?" are answered. Reasoning depth is k; the edges fill several windows that are evicted
before the queries arrive, so consolidation must organise them without knowing the queries.

Words: ``word_len`` = (lo, hi) letters from an alphabet of ``vocab_size``; the last letter of a word is
written in its "final" form (upper case in ``render``), so words delimit themselves. Words are
distinct within an example. Cycle sizes n are drawn from n_min..n_nodes; the upstream protocol trains
on that mix with k ~ U[1, K] and evaluates at n = N and k in {1, 2, 4, ..., K}: for that, evaluate with
``DepoConfig(preset, n_min=N, k_values=(1, 2, 4, 8, 16))``.

Layout (the "tiny" preset: N=16, words of 2-3 letters, L=32, 4 queries), T = 160::

    <pad> .. <pad> <edge> u1 v1 <edge> u2 v2 ... <edge> un vn | <hop_k> x <ans> y  <hop_k'> x' <ans> y' ... <pad>
    \_____ edge part: left-padded to P = 4 windows (128) ____/   \___ query part: one prediction window ___/

The edge part is left-padded to P tokens, a multiple of L that holds the largest graph and spans at
least ``min_context_windows`` windows; the query part (M queries, right-padded) is the last, partial,
window. Loss: at <ans> the target is the first letter of y; at letter j of y the target is letter j+1;
so every letter of the answer word is scored (teacher forcing: all right <=> greedy decoding is right).

Node j's successor is node (j+1) mod n in meta; the words are random, so this labelling is invisible in
the tokens. k < n_min always, so a k-hop walk never wraps around and its length really is k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._hash import check_split, sample_split
from .base import Batch, check_choice, check_positive, check_range, score
from .depo_graphs import draw_graphs, graph_key, n_probs, word_ids

NAME = "depo"
N_DISTS = ("uniform", "inverse")
PAD, EDGE, ANS, HOP1 = 0, 1, 2, 3   # <hop_k> has id HOP1 + k - 1; word letters follow the hop tokens

COMMON = dict(n_dist="inverse", edge_sep=True, min_context_windows=3)
PRESETS = {
    # CPU unit tests and quick demos
    "tiny": dict(n_nodes=16, n_min=9, k_range=(1, 8), n_queries=4, vocab_size=3, word_len=(2, 3),
                 window=32),
    # teaching runs (the default)
    "small": dict(n_nodes=48, n_min=17, k_range=(1, 16), n_queries=10, vocab_size=3, word_len=(3, 4),
                  window=128),
    # upstream Depo2 word format ("paper-like"): ~1.5k context tokens over 6 windows
    "paper": dict(n_nodes=100, n_min=17, k_range=(1, 16), n_queries=10, vocab_size=3, word_len=(5, 7),
                  window=256),
    # the sleep paper's reported sizes: <= 75 nodes, edges padded to 300 tokens = 4 windows of 75
    "paper75": dict(n_nodes=75, n_min=17, k_range=(1, 16), n_queries=10, vocab_size=100, word_len=(1, 1),
                    window=75, min_context_windows=4),
}


@dataclass
class DepoConfig:
    """Dials left at None take the value of ``preset`` (see PRESETS), e.g. DepoConfig("tiny", window=64)."""
    preset: str = "small"
    n_nodes: int | None = None            # N: the largest cycle
    n_min: int | None = None              # the smallest cycle; must exceed every k so walks never wrap
    n_dist: str | None = None             # "inverse": P(n) ∝ 1/(n + sqrt(N)) (upstream's easy-to-hard mix)
                                          # or "uniform" over n_min..N
    k_range: tuple | None = None          # hop count k ~ U[lo, hi] (paper: U[1, 16] in training)
    k_values: tuple | None = None         # if given, k is drawn uniformly from these (e.g. (1, 2, 4, 8, 16))
    n_queries: int | None = None          # M queries per example, on distinct start words
    vocab_size: int | None = None         # V letters; each has a plain and a word-final form
    word_len: tuple | None = None         # letters per word, uniform in [lo, hi]
    edge_sep: bool | None = None          # write <edge> before each edge (words delimit themselves anyway)
    window: int | None = None             # L
    min_context_windows: int | None = None  # the edge part is padded to at least this many windows

    def __post_init__(self):
        check_choice("preset", self.preset, PRESETS)
        for name, value in {**COMMON, **PRESETS[self.preset]}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_positive("n_nodes", self.n_nodes, minimum=2)
        check_positive("n_min", self.n_min, minimum=2)
        if self.n_min > self.n_nodes:
            raise ValueError(f"n_min must be <= n_nodes={self.n_nodes}, got {self.n_min}")
        check_choice("n_dist", self.n_dist, N_DISTS)
        self.k_range = check_range("k_range", self.k_range, minimum=1)
        if self.k_values is not None:
            if (not isinstance(self.k_values, (tuple, list)) or not self.k_values
                    or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.k_values)):
                raise ValueError(f"k_values must be a non-empty list of integers >= 1, got {self.k_values!r}")
            self.k_values = tuple(self.k_values)
        if self.k_max >= self.n_min:
            raise ValueError(f"largest hop count k={self.k_max} must be smaller than the smallest cycle "
                             f"n_min={self.n_min} (a walk must not wrap around); lower k or raise n_min")
        check_positive("n_queries", self.n_queries)
        if self.n_queries > self.n_min:
            raise ValueError(f"n_queries must be <= n_min={self.n_min} (distinct start words), "
                             f"got {self.n_queries}")
        check_positive("vocab_size", self.vocab_size)
        self.word_len = check_range("word_len", self.word_len, minimum=1)
        if self.vocab_size ** self.word_len[1] >= 2 ** 40:
            raise ValueError(f"vocab_size**word_len[1] must be < 2**40, got {self.vocab_size}**{self.word_len[1]}")
        if self.n_words_possible < self.n_nodes:
            raise ValueError(f"only {self.n_words_possible} distinct words exist for vocab_size="
                             f"{self.vocab_size}, word_len={self.word_len}; need >= n_nodes={self.n_nodes}")
        if not isinstance(self.edge_sep, bool):
            raise ValueError(f"edge_sep must be True or False, got {self.edge_sep!r}")
        check_positive("window", self.window)
        check_positive("min_context_windows", self.min_context_windows)
        if self.window < self.query_len:
            raise ValueError(f"window must hold the whole query part ({self.n_queries} queries of up to "
                             f"{2 + 2 * self.word_len[1]} tokens = {self.query_len}); got {self.window}")

    @property
    def k_max(self) -> int:
        return max(self.k_values) if self.k_values is not None else self.k_range[1]

    @property
    def n_words_possible(self) -> int:
        return sum(self.vocab_size ** l for l in range(self.word_len[0], self.word_len[1] + 1))

    @property
    def query_len(self) -> int:
        return self.n_queries * (2 + 2 * self.word_len[1])

    @property
    def context_len(self) -> int:
        most = self.n_nodes * (int(self.edge_sep) + 2 * self.word_len[1])
        return self.window * max(math.ceil(most / self.window), self.min_context_windows)


Config = DepoConfig


def n_hop_tokens(config: DepoConfig) -> int:
    return max(32, config.k_max)     # hop tokens up to 32 are reserved even if training uses fewer


def word_base(config: DepoConfig) -> int:
    return HOP1 + n_hop_tokens(config)


def vocab(config: DepoConfig) -> list[str]:
    V = config.vocab_size
    if V <= 26:
        plain = [chr(ord("a") + i) for i in range(V)]
        final = [chr(ord("A") + i) for i in range(V)]
    else:
        plain, final = [f"w{i}" for i in range(V)], [f"W{i}" for i in range(V)]
    hops = [f"<hop_{k}>" for k in range(1, n_hop_tokens(config) + 1)]
    return ["<pad>", "<edge>", "<ans>"] + hops + plain + final


def default_window(config: DepoConfig) -> int:
    return config.window


def _compact(seg, valid, length, left_pad):
    """Write the valid entries of seg [B, S] contiguously into a row of ``length`` (padded with PAD)."""
    B = seg.shape[0]
    total = valid.sum(1, keepdim=True)
    pos = valid.long().cumsum(1) - 1 + ((length - total) if left_pad else 0)
    pos = torch.where(valid, pos, length)            # invalid entries go to a dump column
    out = torch.full((B, length + 1), PAD, dtype=seg.dtype, device=seg.device)
    return out.scatter_(1, pos, seg)[:, :length], pos


def make_batch(config: DepoConfig, batch_size: int, generator: torch.Generator,
               split: str = "train") -> Batch:
    check_positive("batch_size", batch_size)
    check_split(split)
    g, dev = generator, generator.device
    B, N, M, V, hi = batch_size, config.n_nodes, config.n_queries, config.vocab_size, config.word_len[1]
    n, lens, codes = sample_split(lambda m: draw_graphs(config, m, g),
                                  lambda *c: graph_key(*c, config), B, split)

    # Letters -> token ids; the last letter of each word takes its word-final form.
    slot = torch.arange(hi, device=dev)
    in_word = slot < lens.unsqueeze(-1)                                      # [B, N, hi]
    words = codes + word_base(config) + V * (slot == (lens - 1).unsqueeze(-1))
    words = torch.where(in_word, words, PAD)

    def pick(x, idx):   # x [B, N, hi], idx [B, K] -> [B, K, hi]
        return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, hi))

    # Edge part: edge u -> u+1 (mod n), listed in a random order; slots j >= n are empty.
    node_ok = torch.arange(N, device=dev) < n.unsqueeze(1)
    order = (torch.rand(B, N, generator=g, device=dev) + 2.0 * ~node_ok).argsort(dim=1)
    succ = (order + 1) % n.unsqueeze(1)
    sep = torch.full((B, N, 1), EDGE, device=dev)
    seg = torch.cat([sep, pick(words, order), pick(words, succ)], 2)
    ok = torch.cat([node_ok.unsqueeze(-1) & config.edge_sep, pick(in_word, order), pick(in_word, succ)], 2)
    ok = ok & node_ok.unsqueeze(-1)
    context, _ = _compact(seg.flatten(1), ok.flatten(1), config.context_len, left_pad=True)

    # Query part: <hop_k> x <ans> y for M distinct start words.
    start = torch.rand(B, N, generator=g, device=dev).masked_fill(~node_ok, -1.0).topk(M, dim=1).indices
    if config.k_values is not None:
        kv = torch.tensor(config.k_values, device=dev)
        k = kv[torch.randint(0, len(kv), (B, M), generator=g, device=dev)]
    else:
        k = torch.randint(config.k_range[0], config.k_range[1] + 1, (B, M), generator=g, device=dev)
    answer = (start + k) % n.unsqueeze(1)
    hop = (HOP1 + k - 1).unsqueeze(-1)
    qseg = torch.cat([hop, pick(words, start), torch.full_like(hop, ANS), pick(words, answer)], 2)
    one = torch.ones_like(hop, dtype=torch.bool)
    qok = torch.cat([one, pick(in_word, start), one, pick(in_word, answer)], 2)
    ans_len = lens.gather(1, answer).unsqueeze(-1)
    scored = torch.zeros_like(qok)
    scored[..., hi + 1] = True                                   # at <ans>: predict the first letter
    scored[..., hi + 2:] = slot < ans_len - 1                    # at letter j: predict letter j+1
    nxt = torch.cat([qseg[..., 1:], torch.full_like(hop, PAD)], 2)
    qid = torch.arange(M, device=dev).view(1, M, 1).expand_as(qseg)
    Q = config.query_len
    query, pos = _compact(qseg.flatten(1), qok.flatten(1), Q, left_pad=False)

    def place(x, fill):
        out = torch.full((B, Q + 1), fill, dtype=x.dtype, device=dev)
        return out.scatter_(1, pos, x.flatten(1))[:, :Q]
    q_mask = place(scored & qok, False)
    q_tgt = place(torch.where(scored, nxt, 0), 0)
    q_of = torch.where(q_mask, place(qid, -1), -1)

    P = config.context_len
    tokens = torch.cat([context, query], 1)
    loss_mask = torch.cat([torch.zeros(B, P, dtype=torch.bool, device=dev), q_mask], 1)
    targets = torch.cat([torch.zeros(B, P, dtype=torch.long, device=dev), q_tgt], 1)
    query_of = torch.cat([torch.full((B, P), -1, dtype=torch.long, device=dev), q_of], 1)
    # meta: node j -> node (j+1) mod n; edge_order[j] = the node whose edge is listed j-th; answers are
    # node indices; query_of marks which query each scored position belongs to (-1 elsewhere).
    meta = {"task": NAME, "split": split, "config": config, "vocab": vocab(config), "window": config.window,
            "n": n, "words": words, "word_len": lens, "letters": codes, "edge_order": order,
            "query_start": start, "query_k": k, "answer": answer, "query_of": query_of}
    return Batch(tokens, loss_mask, targets, meta)


def partition_key(batch: Batch) -> torch.Tensor:
    """Keys [B]; in an eval batch all are 0 mod 10, in a train batch none is."""
    m = batch.meta
    return graph_key(m["n"], m["word_len"], m["letters"], m["config"])


def exact_match(pred: torch.Tensor, batch: Batch) -> dict:
    """``score`` plus per-query accuracy (all letters of the answer word right) overall and per k."""
    out = score(pred, batch)
    mask, q_of, k = batch.loss_mask, batch.meta["query_of"], batch.meta["query_k"]
    M = k.shape[1]
    wrong = (pred.to(mask.device) != batch.targets) & mask
    errs = torch.zeros(mask.shape[0], M + 1, device=mask.device).scatter_add_(
        1, torch.where(mask, q_of, M), wrong.float())[:, :M]
    right = errs == 0
    out["per_query"] = right.float().mean().item()
    out["per_k"] = {int(v): right[k == v].float().mean().item() for v in k.unique().tolist()}
    return out


def render(batch: Batch, i: int) -> str:
    """Letters of a word are written together (upper case = word-final), <edge> as ";"."""
    voc, L = batch.meta["vocab"], batch.meta["window"]
    names = ["" if v == "<pad>" else ";" if v == "<edge>" else v for v in voc]
    letter = [len(v) == 1 and v.isalpha() for v in voc]
    tok, mask, tgt = batch.tokens[i].tolist(), batch.loss_mask[i].tolist(), batch.targets[i].tolist()
    windows = []
    for s in range(0, len(tok), L):
        text = ""
        for p in range(s, min(s + L, len(tok))):
            prev = tok[p - 1] if p > s else PAD
            glue = "" if letter[tok[p]] and letter[prev] and voc[prev].islower() else " "
            text += (glue + names[tok[p]]) if names[tok[p]] else ""
            if mask[p]:
                text += f"[->{names[tgt[p]]}]"
        windows.append(" ".join(text.split()))
    return " | ".join(windows)


def baselines(config: DepoConfig, split: str = "eval", samples: int = 4096) -> dict:
    """Trivial accuracies for ``score`` (per example) and ``exact_match``'s per-query metric.

    chance (exact formula): guess uniformly among the n-1 other words of the graph: per query
    E[1/(n-1)], per example E[(1/(n-1))**M]; per letter 1/(2V). majority: always answer the single most
    frequent answer word (letter), estimated on ``samples`` generated examples (seed 0); the standard
    error is below 0.5/sqrt(samples * n_queries).
    """
    pn = n_probs(config)
    n = torch.arange(config.n_min, config.n_nodes + 1, dtype=torch.float64)
    chance_q = float((pn / (n - 1)).sum())
    chance_ex = float((pn / (n - 1) ** config.n_queries).sum())
    b = make_batch(config, samples, torch.Generator().manual_seed(0), split)
    m = b.meta
    ids = word_ids(m["word_len"].gather(1, m["answer"]),
                    m["letters"].gather(1, m["answer"].unsqueeze(-1).expand(-1, -1, config.word_len[1])),
                    config)
    values, counts = ids.flatten().unique(return_counts=True)
    top = values[counts.argmax()]
    letters = b.targets[b.loss_mask]
    maj_l = letters.unique(return_counts=True)[1].max().item() / letters.numel()
    return {"chance": chance_ex, "majority": (ids == top).all(1).float().mean().item(),
            "per_label": {"chance": 1.0 / (2 * config.vocab_size), "majority": maj_l},
            "per_query": {"chance": chance_q, "majority": counts.max().item() / ids.numel()},
            "method": f"chance exact; majority estimated on {samples} examples (seed 0)", "split": split}
