"""Sleep: Algorithm 1 of the paper, in one place.

    S <- 0                                            fast weights, zero for every sequence
    for each window c of <= L tokens:
        h <- Embed(c)                                 embedded once
        if c carries no loss:                         consolidation ("sleep")
            repeat N times:  h, S <- Blocks(h, S)     S and h carried from pass to pass
        else:                                         prediction ("wake")
            h, S <- Blocks(h, S);  loss on Head(h)    a single ordinary pass
        drop h and the KV cache                       only S crosses the window boundary

With sliding eviction the cache keeps the newest L-1 keys/values (those of the last pass) instead of
being cleared; with ``eviction="none"`` it keeps everything (the no-eviction upper bound).

Gradients flow through every pass and window by default (full back-propagation through time): the
features of a sleep are thrown away, so the only road from an early window to the loss is through S.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

from .layers import band_mask, block_causal_mask

OnPass = Callable[[int, int, list, torch.Tensor], None]  # (window index, pass index, states, h [B, T, d]) -> None


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    predict: bool  # True: one wake pass with the head; False: N sleep passes, no head


def window_plan(loss_mask: torch.Tensor | None, seq_len: int, window: int) -> tuple[Window, ...]:
    """Cut [0, seq_len) into windows of ``window`` tokens and give each its role.

    A window is a prediction window when any example of the batch scores a position in it (all
    sleeplab tasks share one layout across a batch). Without a loss mask (plain inference over a
    sequence) the last window predicts and every earlier one sleeps.
    """
    starts = range(0, seq_len, window)
    if loss_mask is None:
        scored = [s + window >= seq_len for s in starts]
    else:
        per_pos = loss_mask.detach().any(0).cpu()  # one host sync, once per batch layout
        scored = [bool(per_pos[s:s + window].any()) for s in starts]
    return tuple(Window(s, min(s + window, seq_len), p) for s, p in zip(starts, scored))


def attention_mask(config, q_len: int, past_len: int, device) -> torch.Tensor:
    """Mask for ``q_len`` new queries after ``past_len`` cached keys. Sliding eviction also limits
    every query to the newest L keys, so a window's first tokens cannot see more than L back."""
    band = config.window if config.eviction == "sliding" else None
    return band_mask(q_len, past_len + q_len, band, device)


def evict(config, kvs: list):
    """What the KV cache keeps across a window boundary."""
    if config.eviction == "hard":
        return None
    if config.eviction == "sliding":
        keep = config.window - 1
        return [None if kv is None else (kv[0][:, :, -keep:], kv[1][:, :, -keep:]) if keep else None
                for kv in kvs]
    return kvs


def cache_length(cache) -> int:
    for kv in cache or ():
        if kv is not None:
            return kv[0].shape[2]
    return 0


def resolve_n_sleep(config, training: bool, n_sleep: int | None, generator=None) -> int:
    """Explicit n_sleep wins; in training a configured range draws N per batch; else config.n_sleep."""
    if n_sleep is not None:
        if not isinstance(n_sleep, int) or n_sleep < 1:
            raise ValueError(f"n_sleep must be a positive integer, got {n_sleep!r}")
        return n_sleep
    if training and config.n_sleep_range is not None:
        lo, hi = config.n_sleep_range
        return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())
    return config.n_sleep


def sleep_passes(model, e, states, mask, cache, n_sleep, on_pass: OnPass | None = None, window_index=0):
    """N passes of the block stack over one window (lines 6-8). Returns (S, this window's KV)."""
    config, h, kvs = model.config, e, None
    for n in range(n_sleep):
        tracked = config.grad_passes is None or n >= n_sleep - config.grad_passes
        x = h + e if (config.reinject_input and n > 0) else h
        with torch.set_grad_enabled(tracked and torch.is_grad_enabled()):
            h, states, kvs = model.run_blocks(x, states, mask, cache)
        if on_pass is not None:
            on_pass(window_index, n, states, h)
    return states, kvs  # h is dropped here: refined features never leave the sleep


def _checkpointed_sleep(model, e, states, mask, cache, n_sleep):
    """Same as sleep_passes, but its activations are recomputed in backward (memory for compute)."""
    gdn = [i for i, s in enumerate(states) if s is not None]
    attn = [i for i, b in enumerate(model.blocks) if b.kind == "attn"]

    def run(e, *s):
        st = list(states)
        for i, si in zip(gdn, s):
            st[i] = si
        st, kvs = sleep_passes(model, e, st, mask, cache, n_sleep)
        return tuple(st[i] for i in gdn) + tuple(t for i in attn for t in kvs[i])

    flat = checkpoint(run, e, *(states[i] for i in gdn), use_reentrant=False)
    new_states, kvs = list(states), [None] * len(states)
    for j, i in enumerate(gdn):
        new_states[i] = flat[j]
    for j, i in enumerate(attn):
        kvs[i] = (flat[len(gdn) + 2 * j], flat[len(gdn) + 2 * j + 1])
    return new_states, kvs


def sleep_forward(model, tokens, loss_mask=None, n_sleep=None, generator=None, plan=None,
                  on_pass: OnPass | None = None):
    """Algorithm 1 for a batch. tokens [B, T] -> logits [B, T, vocab].

    Logits exist only in prediction windows; consolidation positions are filled with zeros (no head
    is run there). ``plan`` skips the host sync of :func:`window_plan` when the layout is known.
    """
    config = model.config
    B, T = tokens.shape
    N = resolve_n_sleep(config, model.training, n_sleep, generator)
    plan = plan or window_plan(loss_mask, T, config.window)
    states, cache, pieces = model.empty_state(B), None, []
    for index, w in enumerate(plan):
        e = model.embed(tokens[:, w.start:w.end], w.start)
        mask = attention_mask(config, w.end - w.start, cache_length(cache), tokens.device)
        if w.predict:
            h, states, kvs = model.run_blocks(e, states, mask, cache)
            pieces.append(model.head_logits(h))
        else:
            if config.checkpoint_windows and torch.is_grad_enabled() and on_pass is None:
                states, kvs = _checkpointed_sleep(model, e, states, mask, cache, N)
            else:
                states, kvs = sleep_passes(model, e, states, mask, cache, N, on_pass, index)
            pieces.append(w.end - w.start)  # placeholder: no logits while asleep
        cache = evict(config, kvs)
    like = next((p for p in pieces if torch.is_tensor(p)), None)
    if like is None:
        raise ValueError("no window carries a loss position: nothing to predict (check loss_mask)")
    return torch.cat([p if torch.is_tensor(p) else like.new_zeros(B, p, like.shape[-1]) for p in pieces], 1)


def parallel_forward(model, tokens):
    """The plain hybrid (N = 1) over the whole sequence at once: window-local attention through a
    mask, fast weights carried straight through. Equal to ``sleep_forward`` with N = 1 at every
    prediction position, and much faster, since windows need not run one after another."""
    config = model.config
    B, T = tokens.shape
    if config.eviction == "hard":
        mask = block_causal_mask(T, config.window, tokens.device)
    else:
        mask = attention_mask(config, T, 0, tokens.device)
    h, _, _ = model.run_blocks(model.embed(tokens), model.empty_state(B), mask)
    return model.head_logits(h)
