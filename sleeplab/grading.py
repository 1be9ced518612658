"""Friendly checks for the course assignments (``notebooks/assignments``).

Each ``check_*`` runs the student's function and sleeplab's own implementation on fresh random inputs
(a new seed each call, printed in every message so a failure can be replayed with ``seed=``), and either
prints one success line or raises ``AssertionError`` saying what is wrong: which shape, at which token /
window / pass the first difference appears, by how much (relative error), and, where we can tell, which
common mistake reproduces your numbers.
"""
from __future__ import annotations

import functools
import random

import torch

from .measure import single_thread
from .ops import gated_delta_rule, hebbian_rule
from .sleep import sleep_forward

TOL = 1e-5  # relative error; the checks run in float64, so a right answer is ~1e-15 off


def _single_threaded(check):
    """The checks use tiny float64 tensors: one CPU thread is enough, and on a busy machine it was
    ~50x faster than two threads waiting on each other (see ``sleeplab.measure.single_thread``)."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        with single_thread():
            return check(*args, **kwargs)
    return run


def _seed(seed):
    return random.randrange(2**31) if seed is None else seed


def _rel(a, b) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _call(name, fn, seed, *args, **kwargs):
    """Run the student's function, turning crashes into feedback instead of a bare traceback."""
    try:
        return fn(*args, **kwargs)
    except _Feedback:
        raise
    except NotImplementedError:
        raise AssertionError(f"{name} is not implemented yet: it raised NotImplementedError. "
                             "Replace the `raise NotImplementedError` line with your code.") from None
    except Exception as err:  # noqa: BLE001 - anything the student wrote may raise
        raise AssertionError(f"{name} raised {type(err).__name__}: {err}  (seed={seed})") from err


# ---- assignment 1: the gated delta rule ---------------------------------------------------------------

def _mistake(q, k, v, g, beta, scale, S0, *, read_first=False, decay_last=False, stale_guess=False,
             alpha_is_g=False):
    """The recurrence with one deliberate mistake switched on, to name what a wrong answer did."""
    B, T, H, K = q.shape
    S = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype) if S0 is None else S0.clone()
    out = []
    for t in range(T):
        a = (g[:, t] if alpha_is_g else g[:, t].exp())[..., None, None]
        old = S
        if read_first:
            out.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
        if not decay_last:
            S = a * S
        guess = torch.einsum("bhkv,bhk->bhv", old if stale_guess else S, k[:, t])
        S = S + k[:, t, :, :, None] * (beta[:, t, :, None] * (v[:, t] - guess))[:, :, None, :]
        if decay_last:
            S = a * S
        if not read_first:
            out.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
    return torch.stack(out, 1), S


_HINTS = {
    "scale": "you left out the read-out scale: o_t = scale * S^T q_t (scale defaults to K**-0.5)",
    "no_decay": "the forget gate is missing: multiply S by alpha_t = exp(g_t) before writing",
    "beta": "beta_t is missing: the correction written is beta_t * (v_t - S^T k_t)",
    "hebbian": "this is the Hebbian rule (eq. 3): you add beta v k^T but never subtract the memory's "
               "guess S^T k_t for the key (the 'delta' in the delta rule)",
    "read_first": "you read o_t before writing token t; the rule reads AFTER the write",
    "decay_last": "you decay S after the write; decay first (alpha_t S), then correct and write",
    "stale_guess": "the guess S^T k_t uses S before decay; use the decayed memory alpha_t S_{t-1}",
    "alpha_is_g": "g is the LOG of the forget gate: alpha_t = exp(g_t), not g_t",
    "initial_state": "initial_state is ignored: start from it (zeros only when it is None)",
}


def _gdr_inputs(seed, B=2, T=9, H=3, K=5, V=4, with_state=False):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    q = torch.nn.functional.normalize(r(B, T, H, K), dim=-1)
    k = torch.nn.functional.normalize(r(B, T, H, K), dim=-1)
    g = -torch.nn.functional.softplus(r(B, T, H))              # log decays, <= 0
    beta = torch.sigmoid(r(B, T, H))
    return dict(q=q, k=k, v=r(B, T, H, V), g=g, beta=beta, initial_state=r(B, H, K, V) if with_state else None)


def _gdr_shapes(o, S, x, seed):
    B, T, H, K = x["q"].shape
    V = x["v"].shape[-1]
    if not (isinstance(o, torch.Tensor) and isinstance(S, torch.Tensor)):
        raise AssertionError(f"o and S must be tensors, got {type(o).__name__} and {type(S).__name__}")
    if tuple(o.shape) != (B, T, H, V):
        known = {(B, T, H, K): " (the last dim is K: o_t = S^T q_t lives in the VALUE space, size V)",
                 (B, H, T, V): " (H and T are swapped: stack per-token outputs along dim 1)"}
        raise AssertionError(f"o has shape {tuple(o.shape)}, expected [B, T, H, V] = {(B, T, H, V)}"
                             f"{known.get(tuple(o.shape), '')} (seed={seed})")
    if tuple(S.shape) != (B, H, K, V):
        extra = " (that is the paper's V x K orientation; sleeplab stores S^T, [B, H, K, V], like fla)" \
            if tuple(S.shape) == (B, H, V, K) else ""
        raise AssertionError(f"final state S has shape {tuple(S.shape)}, expected [B, H, K, V] = {(B, H, K, V)}"
                             f"{extra} (seed={seed})")


@_single_threaded
def check_gated_delta_rule(student_fn, seed: int | None = None) -> None:
    """``student_fn(q, k, v, g, beta, scale=None, initial_state=None) -> (o, S_final)``, fla shapes:
    q, k [B, T, H, K]; v [B, T, H, V]; g, beta [B, T, H]; initial_state and S_final [B, H, K, V]."""
    seed = _seed(seed)
    worst = 0.0
    for case, (with_state, scale) in enumerate([(False, None), (True, 0.7), (True, None)]):
        x = _gdr_inputs(seed + case, with_state=with_state)
        before = {n: t.clone() for n, t in x.items() if t is not None}
        out = _call("gated_delta_rule", student_fn, seed, scale=scale, **x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise AssertionError(f"gated_delta_rule must return a pair (o, S_final), got {type(out).__name__}")
        o, S = out
        _gdr_shapes(o, S, x, seed)
        for name, t in before.items():
            if not torch.equal(t, x[name]):
                raise AssertionError(f"your function changed its input {name} in place; work on copies "
                                     "(e.g. S = initial_state.clone())")
        sc = x["q"].shape[-1] ** -0.5 if scale is None else scale
        ref_o, ref_S = gated_delta_rule(**x, scale=scale, output_final_state=True, mode="recurrent")
        o, S = o.detach().double(), S.detach().double()
        per_token = [_rel(o[:, t], ref_o[:, t]) for t in range(o.shape[1])]
        bad = [t for t, e in enumerate(per_token) if e > TOL]
        if bad:
            t = bad[0]
            msg = (f"outputs differ from sleeplab.ops.gated_delta_rule, first at token t={t} (relative error "
                   f"{per_token[t]:.2e}; tokens before it match). Case: "
                   f"{'given initial_state' if with_state else 'initial_state=None'}, scale={scale}. "
                   f"Expected o[0, {t}, 0] = {ref_o[0, t, 0].tolist()}, got {o[0, t, 0].tolist()}.")
            raise AssertionError(msg + _diagnose(o, x, sc) + f" (seed={seed})")
        err_S = _rel(S, ref_S)
        if err_S > TOL:
            raise AssertionError(f"every output o_t matches, but the returned final state is off (relative "
                                 f"error {err_S:.2e}): return S after the LAST token's write (seed={seed})")
        worst = max(worst, max(per_token), err_S)
    print(f"✅ gated_delta_rule matches sleeplab.ops.gated_delta_rule on 3 random cases "
          f"(worst relative error {worst:.1e}, seed={seed})")


def _diagnose(o, x, scale) -> str:
    """Name the mistake whose output reproduces the student's, if one does."""
    q, k, v, g, beta, S0 = x["q"], x["k"], x["v"], x["g"], x["beta"], x["initial_state"]
    candidates = {
        "scale": lambda: gated_delta_rule(q, k, v, g, beta, scale=1.0, initial_state=S0)[0],
        "no_decay": lambda: gated_delta_rule(q, k, v, torch.zeros_like(g), beta, scale=scale, initial_state=S0)[0],
        "beta": lambda: gated_delta_rule(q, k, v, g, torch.ones_like(beta), scale=scale, initial_state=S0)[0],
        "hebbian": lambda: hebbian_rule(q, k, v, g, beta, scale=scale, initial_state=S0, mode="recurrent")[0],
        "initial_state": lambda: gated_delta_rule(q, k, v, g, beta, scale=scale)[0] if S0 is not None else None,
    }
    for flag in ("read_first", "decay_last", "stale_guess", "alpha_is_g"):
        candidates[flag] = lambda f=flag: _mistake(q, k, v, g, beta, scale, S0, **{f: True})[0]
    for name, make in candidates.items():
        guess = make()
        if guess is not None and _rel(o, guess) < TOL:
            return f" Your numbers match a known mistake: {_HINTS[name]}."
    return ""


# ---- assignment 2: the sleep loop ---------------------------------------------------------------------

class _Feedback(AssertionError):
    """Raised from inside the student's run (e.g. the recorder spots a KV cache before it crashes)."""


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
    from . import build_model
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
            logits = _call("sleep_loop", student_fn, seed, mine, tokens, loss_mask, N)
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
