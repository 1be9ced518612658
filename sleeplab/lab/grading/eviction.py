"""Assignment 3's check: the student's sliding-window eviction (what the KV cache keeps across a window
boundary) and the attention mask of the next window, against ``sleeplab.sleep.evict`` and
``sleeplab.layers.band_mask`` on random caches."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from ... import layers
from ... import sleep as _sleep
from .common import _call, _seed, _single_threaded

# sleeplab's own eviction and masks: calling any of them is not writing them
REFERENCES = {"sleeplab.sleep.evict": _sleep.evict, "sleeplab.sleep.attention_mask": _sleep.attention_mask,
              "sleeplab.layers.band_mask": layers.band_mask,
              "sleeplab.layers.block_causal_mask": layers.block_causal_mask}


def _cache(gen, pattern, B, H, T, D):
    """One entry per block: (k, v) [B, H, T, D] for attention, None for a gated-delta block."""
    return [(torch.randn(B, H, T, D, generator=gen), torch.randn(B, H, T, D, generator=gen)) if kind == "attn"
            else None for kind in pattern]


def _check_evict(student_fn, seed, window, T, pattern):
    gen = torch.Generator().manual_seed(seed)
    kvs = _cache(gen, pattern, 2, 3, T, 4)
    copies = [None if kv is None else (kv[0].clone(), kv[1].clone()) for kv in kvs]
    got = _call("sliding_evict", student_fn, seed, kvs, window, refuse=REFERENCES)
    want = _sleep.evict(SimpleNamespace(eviction="sliding", window=window), copies)
    case = f"window L={window}, cache of T={T} tokens, blocks {pattern} (seed={seed})"
    if not isinstance(got, (list, tuple)) or len(got) != len(want):
        raise AssertionError(f"sliding_evict must return a list with one entry per block ({len(want)}), got "
                             f"{type(got).__name__}{'' if not hasattr(got, '__len__') else f' of {len(got)}'}; {case}")
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            why = ("block {i} is a gated-delta block: it has no KV cache, its entry stays None"
                   if pattern[i] == "gdn" else "with L=1 no key of this window is visible to the next one: "
                   "keep nothing (None)").format(i=i)
            if g is not None:
                raise AssertionError(f"{why}; you returned {type(g).__name__}; {case}")
            continue
        if not (isinstance(g, (tuple, list)) and len(g) == 2):
            raise AssertionError(f"block {i}: return a pair (keys, values), got {type(g).__name__}; {case}")
        for part, a, b in (("keys", g[0], w[0]), ("values", g[1], w[1])):
            if not isinstance(a, torch.Tensor) or a.dim() != 4:
                raise AssertionError(f"block {i} {part}: expected a [B, H, T, D] tensor, got "
                                     f"{getattr(a, 'shape', type(a).__name__)}; {case}")
            if a.shape[2] != b.shape[2]:
                raise AssertionError(f"block {i} {part}: you kept {a.shape[2]} of {T} positions, expected "
                                     f"{b.shape[2]} = min(T, L - 1): the next window's first query plus the "
                                     f"L - 1 newest cached keys fill the band of L; {case}")
            if a.shape != b.shape:
                raise AssertionError(f"block {i} {part}: shape {tuple(a.shape)}, expected {tuple(b.shape)}: cut "
                                     f"the TIME axis (dim 2) only; {case}")
            if not torch.equal(a, b):
                hint = (" You kept the OLDEST positions; keep the newest (the end of the time axis)."
                        if torch.equal(a, copies[i][0 if part == "keys" else 1][:, :, :b.shape[2]]) else "")
                if part == "values" and torch.equal(a, w[0]):
                    hint = " You returned the keys as values."
                raise AssertionError(f"block {i} {part}: right shape, wrong entries.{hint} {case}")


def _check_mask(student_fn, seed, q_len, past_len, window):
    got = _call("sliding_mask", student_fn, seed, q_len, past_len, window, refuse=REFERENCES)
    want = layers.band_mask(q_len, past_len + q_len, window)
    case = f"q_len={q_len}, past_len={past_len}, L={window}"
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"sliding_mask must return a [q_len, past_len + q_len] = {tuple(want.shape)} tensor, "
                             f"got {getattr(got, 'shape', type(got).__name__)} ({case})")
    got = got.bool()
    if not torch.equal(got, want):
        i, j = (got != want).nonzero()[0].tolist()
        pos = past_len + i
        why = ("is in the future of the query" if j > pos else
               f"is {pos - j} positions back, and a query sees only itself and the L - 1 = {window - 1} before it"
               if not want[i, j] else f"is {pos - j} positions back, within the band of L = {window}")
        raise AssertionError(f"mask entry [query {i}, key {j}] is {bool(got[i, j])}, expected {bool(want[i, j])}: "
                             f"query {i} sits at position {pos} (after {past_len} cached keys) and key {j} "
                             f"{why} ({case})")


@_single_threaded
def check_sliding_eviction(evict_fn, mask_fn, seed: int | None = None) -> None:
    """``evict_fn(kvs, window) -> kept`` (a list, one entry per block: None, or (k, v) [B, H, T, D] cut
    to the newest min(T, L - 1) positions) and ``mask_fn(q_len, past_len, window) -> bool [q_len,
    past_len + q_len]`` (causal, each query seeing itself and the L - 1 keys before it)."""
    seed = _seed(seed)
    cases = [(6, 6, ("attn", "gdn", "attn", "gdn")), (6, 11, ("attn", "gdn")), (5, 3, ("gdn", "attn")),
             (1, 4, ("attn",)), (8, 15, ("attn", "attn", "gdn"))]
    for n, (window, T, pattern) in enumerate(cases):
        _check_evict(evict_fn, seed + n, window, T, pattern)
    for q_len, past_len, window in [(6, 0, 6), (6, 5, 6), (3, 5, 6), (4, 7, 8), (1, 3, 4), (5, 0, 2)]:
        _check_mask(mask_fn, seed, q_len, past_len, window)
    print(f"✅ sliding_evict and sliding_mask match sleeplab's sliding eviction on {len(cases)} random caches "
          f"and 6 masks (seed={seed})")
