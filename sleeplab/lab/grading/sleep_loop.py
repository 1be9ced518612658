"""Assignment 2's check: the student's sleep loop against ``sleeplab.sleep.sleep_forward``."""
from __future__ import annotations

import torch

from ... import sleep as _sleep
from ...sleep import sleep_forward
from ...streaming import StreamingRunner
from .common import TOL, _call, _Feedback, _rel, _seed, _single_threaded


# ---- assignment 2: the sleep loop ---------------------------------------------------------------------

# sleeplab's own sleep loops: the model's forward and sleeplab.evaluate reach sleep_forward too
REFERENCES = {"sleeplab.sleep_forward": sleep_forward, "sleeplab.sleep.sleep_passes": _sleep.sleep_passes,
              "sleeplab.sleep._checkpointed_sleep": _sleep._checkpointed_sleep,
              "sleeplab.parallel_forward": _sleep.parallel_forward, "sleeplab.StreamingRunner": StreamingRunner}

class _Recorder:
    """Stands in for the model: forwards the three verbs and writes down every call, so the student's
    loop and sleeplab's can be compared call by call."""

    def __init__(self, model):
        self._model, self.calls = model, []

    def __getattr__(self, name):  # config, training, blocks, device, ...
        return getattr(self._model, name)

    def empty_state(self, batch):
        return self._model.empty_state(batch)

    def embed(self, tokens, start=0):
        self.calls.append(dict(kind="embed", start=int(start), length=tokens.shape[1]))
        return self._model.embed(tokens, start)

    def run_blocks(self, h, states, mask, past_kvs=None):
        if past_kvs is not None and any(p is not None for p in past_kvs):
            raise _Feedback("you passed a KV cache to run_blocks. With hard eviction the cache is emptied "
                            "at every window boundary and every pass attends only to the window itself: "
                            "call model.run_blocks(h, S, mask) and drop the third output")
        out = self._model.run_blocks(h, states, mask, past_kvs)
        self.calls.append(dict(kind="pass", h=h.detach().clone(), states=[None if s is None else s.detach().clone()
                                                                         for s in states],
                               out=out[0].detach().clone()))
        return out

    def head_logits(self, h):
        self.calls.append(dict(kind="head"))
        return self._model.head_logits(h)

    def windows(self):
        """[(start, length, passes, heads)] in call order, passes as a list of pass records."""
        out = []
        for c in self.calls:
            if c["kind"] == "embed":
                out.append(dict(start=c["start"], length=c["length"], passes=[], heads=0))
            elif out:
                if c["kind"] == "pass":
                    out[-1]["passes"].append(c)
                else:
                    out[-1]["heads"] += 1
        return out


def _sleep_case(seed, n_sleep, T, scored):
    from ... import build_model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("sleep", vocab_size=13, d_model=32, n_heads=2, window=6, max_positions=32,
                            n_sleep=n_sleep).double().eval()
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 13, (2, T), generator=gen)
    loss_mask = torch.zeros(2, T, dtype=torch.bool)
    for s, e in scored:
        loss_mask[:, s:e] = True
    return model, tokens, loss_mask


def _compare_windows(mine, ref, N, L, seed) -> None:
    def where(w):
        return f"window {w} (tokens {ref[w]['start']}..{ref[w]['start'] + ref[w]['length'] - 1})"

    got = [(w["start"], w["length"]) for w in mine]
    want = [(w["start"], w["length"]) for w in ref]
    if len(got) > len(want) and set(got) == set(want):
        raise AssertionError(f"you called model.embed {len(got)} times for {len(want)} windows: embed each "
                             f"window ONCE; later passes take the h the previous pass returned (seed={seed})")
    if got != want:
        raise AssertionError(f"you embedded windows (start, length) = {got}, expected {want}: split the tokens "
                             f"into chunks of L={L} and call model.embed(chunk, start) with the chunk's absolute "
                             f"start position (seed={seed})")
    for w, (a, b) in enumerate(zip(mine, ref)):
        role = "has no loss positions, so it sleeps" if b["heads"] == 0 else "carries loss, so it gets ONE pass"
        if len(a["passes"]) != len(b["passes"]):
            raise AssertionError(f"{where(w)} {role}: expected {len(b['passes'])} pass(es) of run_blocks with "
                                 f"N={N}, you ran {len(a['passes'])} (seed={seed})")
        if a["heads"] != b["heads"]:
            raise AssertionError(f"{where(w)} {role}: model.head_logits should be called {b['heads']} time(s) "
                                 f"there, you called it {a['heads']} time(s) (seed={seed})")
        for n, (p, r) in enumerate(zip(a["passes"], b["passes"])):
            at = f"{where(w)}, pass {n + 1} of {len(b['passes'])}"
            e = _rel(p["h"], r["h"])
            if e > TOL:
                why = ("the first pass starts from model.embed(chunk, start)" if n == 0 else
                       "each pass must start from the h the previous pass returned (embed once per window)")
                raise AssertionError(f"{at}: the features h fed in differ (relative error {e:.2e}): {why} "
                                     f"(seed={seed})")
            for i, (s, rs) in enumerate(zip(p["states"], r["states"])):
                if rs is None:
                    continue
                if s is None or s.shape != rs.shape:
                    e = float("inf")
                else:  # S starts at exactly zero: compare absolutely there
                    e = _rel(s, rs) if rs.norm() > 0 else s.norm().item()
                if e > TOL:
                    why = ("S starts at zero for every sequence (model.empty_state)" if w == 0 and n == 0 else
                           "S must be carried from the previous window: only S crosses the boundary" if n == 0 else
                           "S must be carried from the previous pass, not reset or reused from before it")
                    raise AssertionError(f"{at}: the fast weights S of block {i} going in differ (relative "
                                         f"error {e:.2e}): {why} (seed={seed})")
            e = _rel(p["out"], r["out"])
            if e > TOL:
                raise AssertionError(f"{at}: same h and S going in, different h coming out (relative error "
                                     f"{e:.2e}): the attention mask must be causal within the window, "
                                     f"e.g. sleeplab.layers.band_mask(l, l, None) (seed={seed})")


@_single_threaded
def check_sleep_loop(student_fn, seed: int | None = None) -> None:
    """``student_fn(model, tokens, loss_mask, n_sleep) -> logits [B, T, vocab]``: Algorithm 1 with hard
    eviction, using only ``model.empty_state``, ``model.embed``, ``model.run_blocks``, ``model.head_logits``
    and ``model.config.window``. Only positions in prediction windows are compared."""
    seed = _seed(seed)
    cases = [(3, 22, [(8, 12), (19, 22)]), (2, 24, [(20, 24)]), (1, 18, [(15, 18)])]
    for case, (N, T, scored) in enumerate(cases):
        model, tokens, loss_mask = _sleep_case(seed + case, N, T, scored)
        mine, ref = _Recorder(model), _Recorder(model)
        with torch.no_grad():
            logits = _call("sleep_loop", student_fn, seed, mine, tokens, loss_mask, N, refuse=REFERENCES)
            want = sleep_forward(ref, tokens, loss_mask, n_sleep=N)
        if not isinstance(logits, torch.Tensor) or logits.shape != want.shape:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise AssertionError(f"sleep_loop must return logits [B, T, vocab] = {tuple(want.shape)}, got "
                                 f"{shape}: concatenate per-window outputs along dim 1, zeros while asleep "
                                 f"(seed={seed})")
        _compare_windows(mine.windows(), ref.windows(), N, model.config.window, seed)
        L, scored_windows = model.config.window, {s // model.config.window for s, _ in scored}
        for w in sorted(scored_windows):
            span = slice(w * L, min((w + 1) * L, T))
            e = _rel(logits[:, span].double(), want[:, span])
            if e > TOL:
                raise AssertionError(f"the passes match, but the logits of prediction window {w} differ "
                                     f"(relative error {e:.2e}): return model.head_logits(h) of that window's "
                                     f"single pass (seed={seed})")
    print(f"✅ sleep_loop matches sleeplab.sleep_forward pass by pass on {len(cases)} random models "
          f"(N = 3, 2, 1; seed={seed})")
