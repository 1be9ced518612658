"""Reference solution to assignment 3 (sliding-window eviction of the KV cache).

Kept out of the exercise notebook so students don't read it by accident; tests/test_grading.py grades it.
"""
import torch


def sliding_evict(kvs, window):
    keep = window - 1                       # the next window's first query + L - 1 cached keys = a band of L
    kept = []
    for kv in kvs:
        if kv is None or keep == 0:         # a gated-delta block has no cache; with L = 1 nothing is visible
            kept.append(None)
        else:
            k, v = kv                       # [B, H, T, D]: time is dim 2
            kept.append((k[:, :, -keep:], v[:, :, -keep:]))
    return kept


def sliding_mask(q_len, past_len, window):
    q_pos = torch.arange(past_len, past_len + q_len)[:, None]   # absolute positions of the new queries
    k_pos = torch.arange(past_len + q_len)[None, :]            # cached keys first, then the window's own
    return (k_pos <= q_pos) & (q_pos - k_pos < window)          # causal, and at most L keys back
