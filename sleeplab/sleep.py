"""Sleep: Algorithm 1 of the paper, in one place.

    S <- 0                                            fast weights, zero for every sequence
    for each window c of <= L tokens:
        h <- Embed(c)                                 embedded once
        if c carries no loss:                         consolidation ("sleep")
            repeat N times:  h, S <- Blocks(h, S)     S and h carried from pass to pass
        else:                                         prediction ("wake")
            h, S <- Blocks(h, S);  loss on Head(h)    a single ordinary pass
        drop h and the KV cache                       only S crosses the window boundary

The one rule for a window's role, followed by ``sleep_forward``, ``parallel_forward`` (N = 1) and the
streaming runner alike: a window is EITHER slept on (N passes, no head) OR predicted on (one pass with
the head), never both. A window is a prediction window when it holds a scored position (every example
of a batch must agree, see :func:`window_plan`); without a loss mask the last window predicts. After a
prediction window that is followed by more tokens, its KV (from its one pass) is evicted by the same
rule as after a sleep and S goes on as that one pass left it: no extra sleep passes are run over it.

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
from .seeds import derive_seed

OnPass = Callable[[int, int, list, torch.Tensor], None]  # (window, pass, states, h [B, T, d] of the pass) -> None


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    predict: bool  # True: one wake pass with the head; False: N sleep passes, no head


def window_plan(loss_mask: torch.Tensor | None, seq_len: int, window: int) -> tuple[Window, ...]:
    """Cut [0, seq_len) into windows of ``window`` tokens and give each its role.

    A window is a prediction window when the examples of the batch score a position in it. The role
    is per window and per batch, so every example must agree: a window some examples score and others
    do not is refused (ValueError naming it). Without a loss mask (plain inference over a sequence)
    the last window predicts and every earlier one sleeps.
    """
    starts = range(0, seq_len, window)
    if loss_mask is None:
        scored = [s + window >= seq_len for s in starts]
    else:
        if loss_mask.dim() != 2 or loss_mask.shape[1] != seq_len:
            raise ValueError(f"loss_mask must be [batch, {seq_len}], got {tuple(loss_mask.shape)}")
        B = loss_mask.shape[0]
        per_example = scored_windows(loss_mask, window).cpu()  # one host sync, once per batch layout
        scored = per_example.any(0).tolist()
        mixed = [i for i, (a, b) in enumerate(zip(per_example.all(0).tolist(), scored)) if b and not a]
        if mixed:
            i = mixed[0]
            raise ValueError(
                f"window {i} (positions {starts[i]}-{min(starts[i] + window, seq_len) - 1}) is scored by "
                f"{int(per_example[:, i].sum())} of {B} examples; a window's role (sleep or predict) is one "
                "per batch, so all examples must score a window or none")
    return tuple(Window(s, min(s + window, seq_len), p) for s, p in zip(starts, scored))


def scored_windows(loss_mask: torch.Tensor, window: int) -> torch.Tensor:
    """[B, T] loss mask -> [B, windows] bool: does example b score a position in window w. On the
    mask's device, with no host sync."""
    B, T = loss_mask.shape
    n = -(-T // window)
    padded = torch.nn.functional.pad(loss_mask.detach().bool(), (0, n * window - T))
    return padded.view(B, n, window).any(2)


def check_tokens(config, tokens) -> None:
    """Refuse what would crash deep inside torch: tokens must be an integer [B, T] tensor of ids in
    [0, vocab_size). The range check reads the values, a host sync, so it is skipped for CUDA tensors
    under autograd (training batches come from the task generators); inference always checks."""
    if not torch.is_tensor(tokens) or tokens.dtype.is_floating_point or tokens.dtype.is_complex \
            or tokens.dtype == torch.bool:
        what = tokens.dtype if torch.is_tensor(tokens) else type(tokens).__name__
        raise ValueError(f"tokens must be an integer tensor of token ids, got {what}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, seq_len], got shape {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.device.type == "cpu" or not torch.is_grad_enabled()):
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is outside the vocabulary: allowed 0..{config.vocab_size - 1}")


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


def check_n_sleep(n_sleep) -> int:
    """``n_sleep`` itself if it is a valid N (a positive integer), else ValueError naming it."""
    if not isinstance(n_sleep, int) or n_sleep < 1:
        raise ValueError(f"n_sleep must be a positive integer, got {n_sleep!r}")
    return n_sleep


def ramped_n_sleep(target: int, step: int, ramp_steps: int) -> int:
    """The N curriculum: N rises linearly from 1 at step 0 to ``target`` at ``ramp_steps`` (0: no ramp).
    Shallow sleeps first give the blocks a working single pass before gradients must cross N of them."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return target
    return 1 + (target - 1) * step // ramp_steps


def resolve_n_sleep(config, training: bool, n_sleep: int | None, generator=None) -> int:
    """Explicit n_sleep wins; in training a configured range draws N per batch; else config.n_sleep."""
    if n_sleep is not None:
        return check_n_sleep(n_sleep)
    if training and config.n_sleep_range is not None:
        lo, hi = config.n_sleep_range
        return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())
    return config.n_sleep


def window_passes(config, plan, training: bool, n_sleep, generator=None) -> list[int]:
    """N for each sleeping window of ``plan``: one N for all (``n_sleep`` an int, or None for
    :func:`resolve_n_sleep`'s choice), or ``n_sleep`` a tuple with one N per sleeping window. The tuple
    is a test-time intervention: N passes on every window but one, say, asks whose sleep needs them."""
    sleeping = sum(not w.predict for w in plan)
    if isinstance(n_sleep, tuple):
        if len(n_sleep) != sleeping:
            raise ValueError(f"n_sleep={n_sleep!r} gives {len(n_sleep)} N's for {sleeping} sleeping "
                             "windows: give one per sleeping window, or one int for all")
        return [check_n_sleep(n) for n in n_sleep]
    return [resolve_n_sleep(config, training, n_sleep, generator)] * sleeping


def draw_n_sleep(config, seed: int, step: int, ramp_steps: int = 0) -> int:
    """N for training step ``step`` of a run seeded ``seed``: :func:`resolve_n_sleep` in training, with
    a generator seeded by (seed, step), so a resumed or data-parallel run draws the same N; capped by
    the N curriculum (:func:`ramped_n_sleep`) while ``step < ramp_steps``."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "n_sleep", step))
    top = config.n_sleep if config.n_sleep_range is None else config.n_sleep_range[1]
    return min(resolve_n_sleep(config, True, None, generator), ramped_n_sleep(top, step, ramp_steps))


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the feature axis: [..., d] -> [..., 1]."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 up, float64 kept
    return wide.square().mean(-1, keepdim=True).add(1e-12).sqrt().to(x.dtype)


def pass_input(model, h, e, e_rms, n: int, n_sleep: int) -> torch.Tensor:
    """What pass ``n`` (from 0) of a sleep reads: the window's embedding e, then the features h of
    the pass before, changed only by the options of the config (the paper: plain h). ``e_rms`` is
    ``rms(e)``, which the caller computes once per window.

    The blocks are pre-norm residual, so each pass only adds to h: left alone its scale grows pass
    after pass while the embedding the prediction pass reads stays small, and the blocks' writes
    shrink in relative terms until tokens look alike. The options:

    * ``grad_passes=k``: h entering passes 1 .. N-k is detached, so gradient flows through the
      features of the last k passes only; S stays tracked through every pass and window.
    * ``pass_norm="rms"``: h is rescaled token by token to the RMS of that token's embedding, the
      scale the first pass (and the prediction pass) is fed.
    * ``inject``: the embedding comes back in. ``add``: h + e (at its own, small scale); ``scaled``:
      h + e rescaled to h's RMS, an equal share; ``adapter``: a learned W [h, e at h's scale],
      starting as the ``scaled`` sum.
    * ``feed="embedding"``: no features cross from pass to pass; every pass reads e, as the first
      does. S still carries over, so a sleep is N rounds of writes from (nearly) the same features:
      the ablation that tells what the fed-back features add from what the repeated writes do.
    """
    config = model.config
    if n == 0 or config.feed == "embedding":
        return e
    if config.grad_passes is not None and n <= n_sleep - config.grad_passes:
        h = h.detach()
    if config.pass_norm == "rms":
        h = h * (e_rms / rms(h))
    if config.inject == "add":
        return h + e
    if config.inject in ("scaled", "adapter"):
        e_at_h = e * (rms(h) / e_rms)
        return h + e_at_h if config.inject == "scaled" else model.adapter(torch.cat([h, e_at_h], -1))
    return h


def sleep_passes(model, e, states, mask, cache, n_sleep, on_pass: OnPass | None = None, window_index=0):
    """N passes of the block stack over one window (lines 6-8). Returns (S, this window's KV)."""
    h, kvs = e, None
    e_rms = rms(e)  # every pass re-reads the same embedding: its scale is measured once per window
    for n in range(n_sleep):
        h, states, kvs = model.run_blocks(pass_input(model, h, e, e_rms, n, n_sleep), states, mask, cache)
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
    """Algorithm 1 for a batch. tokens [B, T] -> logits [B, T, vocab]. ``n_sleep``: N for every
    sleeping window, or a tuple with one N per sleeping window (:func:`window_passes`).

    Logits exist only in prediction windows; consolidation positions are filled with zeros (no head
    is run there). ``plan`` skips the host sync of :func:`window_plan` when the layout is known.
    """
    config = model.config
    check_tokens(config, tokens)
    B, T = tokens.shape
    if loss_mask is not None and loss_mask.shape != tokens.shape:
        raise ValueError(f"loss_mask must have the shape of tokens {tuple(tokens.shape)}, "
                         f"got {tuple(loss_mask.shape)}")
    plan = plan or window_plan(loss_mask, T, config.window)
    passes = iter(window_passes(config, plan, model.training, n_sleep, generator))
    states, cache, pieces = model.empty_state(B), None, []
    for index, w in enumerate(plan):
        e = model.embed(tokens[:, w.start:w.end], w.start)
        mask = attention_mask(config, w.end - w.start, cache_length(cache), tokens.device)
        if w.predict:
            h, states, kvs = model.run_blocks(e, states, mask, cache)
            pieces.append(model.head_logits(h))
        else:
            N = next(passes)
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
    check_tokens(config, tokens)
    B, T = tokens.shape
    if config.eviction == "hard":
        mask = block_causal_mask(T, config.window, tokens.device)
    else:
        mask = attention_mask(config, T, 0, tokens.device)
    h, _, _ = model.run_blocks(model.embed(tokens), model.empty_state(B), mask)
    return model.head_logits(h)
