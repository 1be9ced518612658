"""Depo's graphs: cycle sizes and the distinct words that name their nodes, drawn as upstream Depo draws
them, and the partition key that keeps train and eval graphs apart. ``depo.py`` lays them out as
sequences."""
from __future__ import annotations

import functools
import math

import torch

from ._hash import MASK32, hash_int, mix32


def n_probs(config) -> torch.Tensor:
    """P(n) over n = n_min .. n_nodes."""
    n = torch.arange(config.n_min, config.n_nodes + 1, dtype=torch.float64)
    p = 1.0 / (n + math.sqrt(config.n_nodes)) if config.n_dist == "inverse" else torch.ones_like(n)
    return p / p.sum()


def word_ids(lens, codes, config):
    """A distinct integer per word: offset of its length + its letters read in base V."""
    V, (lo, hi) = config.vocab_size, config.word_len
    offsets = torch.tensor([sum(V ** m for m in range(lo, l)) for l in range(lo, hi + 1)], device=lens.device)
    place = V ** torch.arange(hi, device=lens.device)
    return offsets[lens - lo] + (codes * place).sum(-1)


DENSE = 8   # with fewer than DENSE * n_nodes possible words, repeats are common: sample from the full list


@functools.lru_cache(maxsize=16)
def universe(V: int, lo: int, hi: int, device: torch.device):
    """Every possible word: lengths [U], letters [U, hi], and log P(word) under "length uniform in
    word_len, letters uniform" (upstream's word distribution)."""
    lens, codes = [], []
    for l in range(lo, hi + 1):
        c = (torch.arange(V ** l, device=device).unsqueeze(-1) // V ** torch.arange(hi, device=device)) % V
        codes.append(c * (torch.arange(hi, device=device) < l))
        lens.append(torch.full((V ** l,), l, device=device))
    lens, codes = torch.cat(lens), torch.cat(codes)
    logp = -(lens.double() * math.log(V) + math.log(hi - lo + 1))
    return lens, codes, logp.float()


def draw_graphs(config, m: int, g: torch.Generator):
    """m candidate graphs: cycle sizes [m] and N distinct words each (letters [m, N, hi], lengths [m, N]).

    Words follow upstream Depo: length uniform in word_len, letters uniform, and a word that repeats an
    earlier one is redrawn. That is sampling without replacement, done here in one shot when repeats
    would be common (Gumbel top-k on log P(word) over all possible words), else by redrawing repeats
    until none is left.
    """
    dev, N, V, (lo, hi) = g.device, config.n_nodes, config.vocab_size, config.word_len
    n = torch.multinomial(n_probs(config).float().to(dev), m, replacement=True, generator=g) + config.n_min
    if config.n_words_possible < DENSE * N:
        u_lens, u_codes, logp = universe(V, lo, hi, torch.device(dev))
        gumbel = -torch.log(-torch.log(torch.rand(m, len(logp), generator=g, device=dev).clamp(min=1e-12)))
        idx = (logp + gumbel).topk(N, dim=1).indices
        return n, u_lens[idx], u_codes[idx]
    lens = torch.randint(lo, hi + 1, (m, N), generator=g, device=dev)
    codes = torch.randint(0, V, (m, N, hi), generator=g, device=dev)
    while True:
        codes = codes * (torch.arange(hi, device=dev) < lens.unsqueeze(-1))
        ids, order = word_ids(lens, codes, config).sort(dim=1, stable=True)
        dup_sorted = torch.cat([torch.zeros_like(ids[:, :1], dtype=torch.bool), ids[:, 1:] == ids[:, :-1]], 1)
        dup = torch.zeros_like(dup_sorted).scatter(1, order, dup_sorted)
        k = int(dup.sum())
        if k == 0:
            return n, lens, codes
        lens[dup] = torch.randint(lo, hi + 1, (k,), generator=g, device=dev)
        codes[dup] = torch.randint(0, V, (k, hi), generator=g, device=dev)


def graph_key(n, lens, codes, config) -> torch.Tensor:
    """Partition key of a graph: a sum of edge hashes, so it does not depend on how nodes are labelled
    or how the edges are ordered. A graph is evaluation-only iff key % 10 == 0."""
    ids = word_ids(lens, codes, config)
    nxt = ids.gather(1, (torch.arange(ids.shape[1], device=ids.device) + 1) % n.unsqueeze(1))
    edge = mix32(hash_int(ids, salt=1) ^ hash_int(nxt, salt=2))
    edge = edge * (torch.arange(ids.shape[1], device=ids.device) < n.unsqueeze(1))
    return mix32(edge.sum(1) & MASK32)
