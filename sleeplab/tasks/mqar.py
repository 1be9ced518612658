"""Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology"), laid out for the sleep loop.

Our own implementation of the idea. An example lists ``n_pairs`` key-value pairs, then asks for the
values of ``n_queries`` of those keys. Keys are distinct within an example, values are uniform and may
repeat. How many pairs a model can recall after the pairs have been evicted measures the capacity of
its fast weights, which is what this task is for.

Layout with the defaults (32 pairs, L 32, 16 queries), T = 80::

    window 0: k v k v ... (16 pairs) | window 1: k v ... (16 pairs) | window 2: q1 q2 ... q16
                                                                      ^ target at qi = value of key qi

The pair part is left-padded to a multiple of L; the query keys form the last (prediction) window, and
the target at each query key is its value. Token ids: 0 is <pad>; then the keys; then the values.
``vocab_size`` counts all of them, so the model's embedding table has exactly vocab_size rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._hash import MASK32, check_split, hash_int, mix32, sample_split
from .base import Batch, check_positive, render_tokens, score

NAME = "mqar"
PAD = 0


@dataclass
class MQARConfig:
    n_pairs: int = 32          # key-value pairs per example: the memory-load dial
    n_queries: int = 16        # keys asked back (distinct, a random subset of the pairs)
    vocab_size: int = 512      # all tokens: <pad>, (vocab_size-1)//2 keys, the rest values
    window: int = 32           # L

    def __post_init__(self):
        check_positive("n_pairs", self.n_pairs)
        check_positive("n_queries", self.n_queries)
        check_positive("vocab_size", self.vocab_size, minimum=3)
        check_positive("window", self.window)
        if self.n_queries > self.n_pairs:
            raise ValueError(f"n_queries must be <= n_pairs={self.n_pairs}, got {self.n_queries}")
        if self.n_keys < self.n_pairs:
            raise ValueError(f"vocab_size={self.vocab_size} gives only {self.n_keys} keys; "
                             f"n_pairs={self.n_pairs} distinct keys need vocab_size >= {2 * self.n_pairs + 1}")
        if self.n_queries > self.window:
            raise ValueError(f"window must hold all {self.n_queries} queries; got {self.window}")

    @property
    def n_keys(self) -> int:
        return (self.vocab_size - 1) // 2

    @property
    def n_values(self) -> int:
        return self.vocab_size - 1 - self.n_keys

    @property
    def context_len(self) -> int:
        return self.window * math.ceil(2 * self.n_pairs / self.window)


Config = MQARConfig


def vocab(config: MQARConfig) -> list[str]:
    return ["<pad>"] + [f"k{i}" for i in range(config.n_keys)] + [f"v{i}" for i in range(config.n_values)]


def default_window(config: MQARConfig) -> int:
    return config.window


def pairs_key(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Partition key of a set of pairs [m, n_pairs]: a sum of pair hashes, so pair order is irrelevant.
    The example is evaluation-only iff key % 10 == 0."""
    pair = mix32(hash_int(keys, salt=3) ^ hash_int(values, salt=4))
    return mix32(pair.sum(1) & MASK32)


def make_batch(config: MQARConfig, batch_size: int, generator: torch.Generator,
               split: str = "train") -> Batch:
    check_positive("batch_size", batch_size)
    check_split(split)
    g, dev = generator, generator.device
    B, P, M = batch_size, config.n_pairs, config.n_queries

    def draw(m):
        keys = torch.rand(m, config.n_keys, generator=g, device=dev).topk(P, dim=1).indices + 1
        values = torch.randint(0, config.n_values, (m, P), generator=g, device=dev) + 1 + config.n_keys
        return keys, values
    keys, values = sample_split(draw, pairs_key, B, split)

    C = config.context_len
    context = torch.full((B, C), PAD, dtype=torch.long, device=dev)
    context[:, C - 2 * P:] = torch.stack([keys, values], 2).flatten(1)         # k v k v ..., left-padded
    asked = torch.rand(B, P, generator=g, device=dev).topk(M, dim=1).indices    # which pairs are queried
    tokens = torch.cat([context, keys.gather(1, asked)], 1)
    loss_mask = torch.zeros_like(tokens, dtype=torch.bool)
    loss_mask[:, C:] = True
    targets = torch.zeros_like(tokens)
    targets[:, C:] = values.gather(1, asked)
    meta = {"task": NAME, "split": split, "config": config, "vocab": vocab(config), "window": config.window,
            "keys": keys, "values": values, "asked": asked, "answers": targets[:, C:]}
    return Batch(tokens, loss_mask, targets, meta)


def partition_key(batch: Batch) -> torch.Tensor:
    return pairs_key(batch.meta["keys"], batch.meta["values"])


def render(batch: Batch, i: int) -> str:
    return render_tokens(batch, i, batch.meta["vocab"], batch.meta["window"])


def exact_match(pred: torch.Tensor, batch: Batch) -> dict:
    """``score``; each query has one answer token, so per-query accuracy is ``per_label``."""
    out = score(pred, batch)
    out["per_query"] = out["per_label"]
    return out


def baselines(config: MQARConfig, split: str = "eval") -> dict:
    """Exact formulas: values are uniform over n_values tokens and independent of keys, so guessing
    uniformly and always giving one fixed value both score 1/n_values per query and (1/n_values)**M per
    example (the hash partition removes a pseudo-random tenth and leaves this unchanged up to noise)."""
    p = 1.0 / config.n_values
    return {"chance": p ** config.n_queries, "majority": p ** config.n_queries,
            "per_label": {"chance": p, "majority": p}, "per_query": {"chance": p, "majority": p},
            "method": "exact formula", "split": split}
