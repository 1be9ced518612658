"""Streaming inference: read tokens as they come, answer each with one pass, sleep when the window fills.

This is the deployment view of the same Algorithm 1 that ``sleep_forward`` runs on whole batches, and
it follows the one rule for a window's role stated in ``sleeplab/sleep.py``'s docstring:

* while awake, each new token (or block of tokens) gets ONE pass of the block stack: attention over the
  live KV cache, fast weights S updated token by token. Latency does not depend on N.
* when the window holds L tokens it is closed. A sleep window (the default) is slept on: N passes over
  the window, starting from S as it was when the window opened. A prediction window keeps the S of its
  one pass and is not slept on. Either way the cache is then evicted (emptied, or cut to L-1 tokens for
  sliding eviction) and only S goes on.

The runner cannot see a loss mask, so it is told: ``feed(tokens, predict=True)`` says these tokens are
scored, which makes every window they fall in a prediction window, as ``sleep.window_plan`` does.
Plain inference (``predict=False`` throughout) sleeps on every full window.

Everything teaching needs is exposed: ``kv_length``, ``sleeps``, and with ``record=True`` a copy of
every fast-weight matrix after every pass of every sleep (``history``), for heatmaps.
"""
from __future__ import annotations

import torch

from .sleep import attention_mask, cache_length, check_n_sleep, check_tokens, evict, sleep_passes


class StreamingRunner:
    def __init__(self, model, n_sleep: int | None = None, batch_size: int = 1, record: bool = False):
        self.model, self.batch_size, self.record = model, batch_size, record
        self.n_sleep = check_n_sleep(model.config.n_sleep if n_sleep is None else n_sleep)
        self.reset()

    def reset(self):
        self.states = self.model.empty_state(self.batch_size)
        self.states_at_window_start = self.states
        self.retained = None        # cache kept from before the current window (sliding / none)
        self.cache = None           # retained + this window's tokens so far
        self.window_tokens: list[torch.Tensor] = []
        self.position = 0           # absolute position of the next token
        self.predicting = False     # the current window holds a scored token: it will not be slept on
        self.sleeps = 0
        self.history: list[dict] = []

    @property
    def kv_length(self) -> int:
        """Tokens whose keys and values are in the attention cache right now."""
        return cache_length(self.cache)

    @property
    def window_fill(self) -> int:
        return sum(t.shape[1] for t in self.window_tokens)

    @torch.no_grad()
    def feed(self, tokens: torch.Tensor, predict: bool = False) -> torch.Tensor:
        """tokens [B, l] (or [l] when batch_size is 1) -> logits [B, l, vocab], one pass each.
        ``predict=True``: these tokens are scored, so each window they fall in is a prediction window."""
        if torch.is_tensor(tokens) and tokens.dim() == 1:
            tokens = tokens[None]
        check_tokens(self.model.config, tokens)
        if tokens.shape[0] != self.batch_size:
            raise ValueError(f"tokens must be [batch_size={self.batch_size}, l], got {tuple(tokens.shape)}")
        tokens = tokens.to(self.model.device)
        outputs, L = [], self.model.config.window
        while tokens.shape[1]:
            piece, tokens = tokens[:, :L - self.window_fill], tokens[:, L - self.window_fill:]
            outputs.append(self._wake(piece))
            self.predicting = self.predicting or bool(predict)
            if self.window_fill == L:
                self._close_window()
        return torch.cat(outputs, 1)

    def _close_window(self):
        if not self.predicting:
            return self.sleep()
        # a prediction window: its one pass already gave S; only the eviction is left
        self.states_at_window_start = self.states
        self.retained = self.cache = evict(self.model.config, self.cache)
        self.window_tokens, self.predicting = [], False

    def _wake(self, piece):
        model = self.model
        e = model.embed(piece, self.position)
        mask = attention_mask(model.config, piece.shape[1], self.kv_length, piece.device)
        h, self.states, self.cache = model.run_blocks(e, self.states, mask, self.cache)
        self.window_tokens.append(piece)
        self.position += piece.shape[1]
        return model.head_logits(h)

    @torch.no_grad()
    def sleep(self):
        """Consolidate the current window into S (N passes), then evict. Called when it fills."""
        if not self.window_tokens:
            raise ValueError("nothing to sleep on: the window is empty")
        model = self.model
        window = torch.cat(self.window_tokens, 1)
        e = model.embed(window, self.position - window.shape[1])
        mask = attention_mask(model.config, window.shape[1], cache_length(self.retained), window.device)
        states, kvs = sleep_passes(model, e, self.states_at_window_start, mask, self.retained,
                                   self.n_sleep, self._on_pass if self.record else None, self.sleeps)
        self.states = self.states_at_window_start = states
        self.retained = self.cache = evict(model.config, kvs)
        self.window_tokens, self.predicting = [], False
        self.sleeps += 1

    def _on_pass(self, sleep_index, pass_index, states, h):
        self.history.append({"sleep": sleep_index, "pass": pass_index,
                             "states": [s.detach().float().cpu().clone() for s in states if s is not None]})
