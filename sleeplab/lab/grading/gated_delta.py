"""Assignment 1's check: the student's gated delta rule against ``sleeplab.ops.gated_delta_rule``."""
from __future__ import annotations

import torch

from ...ops import gated_delta, gated_delta_rule, hebbian_rule
from .common import TOL, _call, _rel, _seed, _single_threaded


# ---- assignment 1: the gated delta rule ---------------------------------------------------------------

# sleeplab's implementations of the rule: calling any of them is not writing it
REFERENCES = {"sleeplab.ops.gated_delta_rule": gated_delta_rule,
              "sleeplab.ops.gated_delta._recurrent": gated_delta._recurrent,
              "sleeplab.ops.gated_delta._chunk": gated_delta._chunk}

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
        out = _call("gated_delta_rule", student_fn, seed, scale=scale, refuse=REFERENCES, **x)
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
