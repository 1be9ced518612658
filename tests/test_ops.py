"""Invariants of the fast-weight ops: chunked == recurrent (values, states, grads), the oracles match
the paper's matrix definition, states chain, decay corners stay finite, bad inputs fail loudly."""
import math
import zlib

import pytest
import torch
import torch.nn.functional as F

from sleeplab.ops import RULES, delta_rule, gated_delta_rule, hebbian_rule
from sleeplab.ops._chunk import unit_lower_inverse

# (B, T, H, K, V, chunk_size): T both a multiple and not a multiple of the chunk, T < chunk, H > 1, K != V.
SHAPES = {
    "T37-c16-H2-K16-V8": (2, 37, 2, 16, 8, 16),
    "T5-c64-H1-K8-V8": (1, 5, 1, 8, 8, 64),
    "T64-c64-H2-K8-V12": (2, 64, 2, 8, 12, 64),
    "T100-c32-H3-K4-V6": (1, 100, 3, 4, 6, 32),
    "T9-c1-H2-K4-V4": (2, 9, 2, 4, 4, 1),
}


def make_inputs(seed, B, T, H, K, V, dtype=torch.float64, g_fill=None, state=True, grad=False):
    """Inputs as the model makes them: L2-normalised q/k, beta = sigmoid(.), g = -softplus(.) <= 0."""
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
    q = F.normalize(rnd(B, T, H, K), dim=-1)
    k = F.normalize(rnd(B, T, H, K), dim=-1)
    v = rnd(B, T, H, V)
    g = -F.softplus(rnd(B, T, H)) if g_fill is None else torch.full((B, T, H), float(g_fill), dtype=torch.float64)
    beta = torch.sigmoid(rnd(B, T, H))
    s0 = rnd(B, H, K, V) if state else None
    out = [x.to(dtype) if x is not None else None for x in (q, k, v, g, beta, s0)]
    if grad:
        for x in out:
            if x is not None:
                x.requires_grad_(True)
    return out


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def run_both(rule, inputs, chunk_size):
    q, k, v, g, beta, s0 = inputs
    kw = dict(initial_state=s0, output_final_state=True)
    chunk = RULES[rule](q, k, v, g, beta, mode="chunk", chunk_size=chunk_size, **kw)
    recur = RULES[rule](q, k, v, g, beta, mode="recurrent", **kw)
    return chunk, recur


def check_chunked_equals_recurrent(rule, with_state, shape, dtype, tol):
    B, T, H, K, V, C = shape
    (o1, s1), (o2, s2) = run_both(rule, make_inputs(zlib.crc32(f"{rule}{shape}".encode()), B, T, H, K, V, dtype,
                                                    state=with_state), C)
    assert o1.shape == (B, T, H, V) and o1.dtype == dtype and s1.dtype == dtype
    assert rel(o1, o2) <= tol and rel(s1, s2) <= tol


CASES = [pytest.mark.parametrize("rule", list(RULES)),
         pytest.mark.parametrize("with_state", [True, False], ids=["s0", "no-s0"]),
         pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())]


def parametrized(fn):
    for mark in CASES:
        fn = mark(fn)
    return fn


@parametrized
def test_chunked_equals_recurrent_float64(rule, with_state, shape):
    check_chunked_equals_recurrent(rule, with_state, shape, torch.float64, 1e-10)


@parametrized
def test_chunked_equals_recurrent_float32(rule, with_state, shape):
    check_chunked_equals_recurrent(rule, with_state, shape, torch.float32, 1e-5)


# ---- the oracles themselves, against the paper's matrix form (S in R^{V x K}) -------------------


def paper_matrix_form(rule, q, k, v, g, beta, s0, scale):
    """Deliberately naive: one (batch, head) at a time, explicit V x K matrices, the identity spelled out."""
    B, T, H, K = q.shape
    o = torch.zeros(B, T, H, v.shape[-1], dtype=q.dtype)
    final = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype)
    eye = torch.eye(K, dtype=q.dtype)
    for b in range(B):
        for h in range(H):
            M = s0[b, h].T.clone()  # paper orientation V x K
            for t in range(T):
                kt, vt, bt = k[b, t, h], v[b, t, h], beta[b, t, h]
                alpha = 1.0 if rule == "delta" else math.exp(g[b, t, h].item())
                if rule == "hebbian":
                    M = alpha * M + bt * torch.outer(vt, kt)
                else:
                    M = M @ (alpha * (eye - bt * torch.outer(kt, kt))) + bt * torch.outer(vt, kt)
                o[b, t, h] = scale * M @ q[b, t, h]
            final[b, h] = M.T
    return o, final


@pytest.mark.parametrize("rule", list(RULES))
def test_recurrent_oracle_matches_paper_matrix_form(rule):
    q, k, v, g, beta, s0 = make_inputs(1, 2, 3, 2, 3, 4)
    o, s = RULES[rule](q, k, v, g, beta, scale=0.7, initial_state=s0, output_final_state=True, mode="recurrent")
    o_ref, s_ref = paper_matrix_form(rule, q, k, v, g, beta, s0, 0.7)
    assert rel(o, o_ref) <= 1e-12 and rel(s, s_ref) <= 1e-12


@pytest.mark.parametrize("rule,expected_coeffs", [("gated_delta", (0.125, 0.5)), ("delta", (0.25, 0.5)),
                                                  ("hebbian", (0.25, 0.5))])
def test_two_token_example_worked_by_hand(rule, expected_coeffs):
    """k1 = k2 = q2 = e1, beta = 1/2, alpha_2 = 1/2, S0 = 0, scale 1. By hand (paper orientation):
    M1 = v1 e1^T / 2.  delta-style: M2 = alpha M1 (I - e1 e1^T / 2) + v2 e1^T / 2, so o2 = alpha v1 / 4 + v2 / 2;
    hebbian: M2 = alpha M1 + v2 e1^T / 2, so o2 = alpha v1 / 2 + v2 / 2. "delta" ignores g (alpha = 1)."""
    e1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    k = e1.expand(1, 2, 1, 3).clone()
    v = torch.tensor([[1.0, 2.0], [-3.0, 5.0]], dtype=torch.float64).view(1, 2, 1, 2)
    g = torch.tensor([0.0, math.log(0.5)], dtype=torch.float64).view(1, 2, 1)
    beta = torch.full((1, 2, 1), 0.5, dtype=torch.float64)
    expected = expected_coeffs[0] * v[0, 0, 0] + expected_coeffs[1] * v[0, 1, 0]
    for mode in ("recurrent", "chunk"):
        o, _ = RULES[rule](k, k, v, g, beta, scale=1.0, mode=mode)
        torch.testing.assert_close(o[0, 1, 0], expected, rtol=0, atol=1e-14)


# ---- corners ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("g_fill", [0.0, -30.0], ids=["no-decay", "strong-decay"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_decay_corners_are_finite_and_match(rule, g_fill, dtype, tol):
    inputs = make_inputs(2, 2, 70, 2, 8, 8, dtype, g_fill=g_fill, grad=True)
    (o1, s1), (o2, s2) = run_both(rule, inputs, 32)
    assert torch.isfinite(o1).all() and torch.isfinite(s1).all()
    assert rel(o1, o2) <= tol and rel(s1, s2) <= tol
    # exp of the masked upper triangle must not leak inf * 0 = nan into the backward
    grads = torch.autograd.grad(o1.square().sum() + s1.square().sum(), [x for x in inputs if x is not None],
                                allow_unused=True)
    for name, gr in zip("q k v g beta initial_state".split(), grads):
        if rule == "delta" and name == "g":
            assert gr is None  # the ungated rule ignores g
            continue
        # every input the rule reads gets a finite gradient; it may vanish only where strong decay
        # makes it exp(-30)-small (g and S0: in float32 that rounds to 0)
        assert gr is not None and torch.isfinite(gr).all(), name
        assert gr.abs().max() > 0 or (g_fill < 0 and name in ("g", "initial_state")), name


@pytest.mark.parametrize("rule", list(RULES))
def test_gradients_chunk_equal_recurrent_float64(rule):
    inputs = make_inputs(3, 2, 21, 2, 6, 5, grad=True)
    gen = torch.Generator().manual_seed(4)
    grads = []
    for mode in ("chunk", "recurrent"):
        q, k, v, g, beta, s0 = inputs
        o, s = RULES[rule](q, k, v, g, beta, initial_state=s0, output_final_state=True, mode=mode, chunk_size=8)
        if not grads:  # same random cotangents for both modes
            w_o = torch.randn(o.shape, generator=gen, dtype=o.dtype)
            w_s = torch.randn(s.shape, generator=gen, dtype=s.dtype)
        grads.append(torch.autograd.grad((o * w_o).sum() + (s * w_s).sum(), inputs, allow_unused=True))
    for name, a, b in zip("q k v g beta initial_state".split(), *grads):
        if rule == "delta" and name == "g":
            assert a is None and b is None  # g is ignored by the ungated rule
            continue
        assert rel(a, b) <= 1e-10, name


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_state_chaining_equals_one_pass(rule, mode):
    q, k, v, g, beta, s0 = make_inputs(5, 2, 45, 2, 8, 6)
    kw = dict(output_final_state=True, mode=mode, chunk_size=16)
    o, s = RULES[rule](q, k, v, g, beta, initial_state=s0, **kw)
    cut = 19  # not on a chunk boundary
    first = [x[:, :cut] for x in (q, k, v, g, beta)]
    rest = [x[:, cut:] for x in (q, k, v, g, beta)]
    o_a, s_a = RULES[rule](*first, initial_state=s0, **kw)
    o_b, s_b = RULES[rule](*rest, initial_state=s_a, **kw)
    assert rel(torch.cat([o_a, o_b], dim=1), o) <= 1e-12 and rel(s_b, s) <= 1e-12


# ---- contracts --------------------------------------------------------------------------------


def test_product_inverse_equals_triangular_solve():
    gen = torch.Generator().manual_seed(6)
    for C in (1, 2, 3, 16, 64, 65):
        A = (0.3 * torch.randn(4, C, C, generator=gen, dtype=torch.float64)).tril(-1)
        eye = torch.eye(C, dtype=torch.float64)
        X = unit_lower_inverse(A)
        assert rel(X, unit_lower_inverse(A, "product")) <= 1e-12
        assert rel((eye + A) @ X, eye.expand_as(A)) <= 1e-12


def test_dtypes_output_follows_v_state_stays_float32():
    q, k, v, g, beta, _ = make_inputs(7, 1, 10, 2, 8, 8, torch.bfloat16)
    o, s = gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32
    assert gated_delta_rule(q, k, v, g, beta)[1] is None


def test_delta_rule_ignores_g_and_matches_gated_with_zero_g():
    q, k, v, g, beta, s0 = make_inputs(8, 1, 12, 2, 4, 4)
    o_uniform, _ = RULES["delta"](q, k, v, g, beta, initial_state=s0)
    o_direct, _ = delta_rule(q, k, v, beta, initial_state=s0)
    o_gated, _ = gated_delta_rule(q, k, v, torch.zeros_like(g), beta, initial_state=s0)
    assert rel(o_uniform, o_gated) <= 1e-12 and rel(o_direct, o_gated) <= 1e-12


def test_default_scale_is_inverse_sqrt_k():
    q, k, v, g, beta, _ = make_inputs(9, 1, 6, 1, 16, 4)
    o_default, _ = hebbian_rule(q, k, v, g, beta)
    o_explicit, _ = hebbian_rule(q, k, v, g, beta, scale=0.25)
    assert rel(o_default, o_explicit) <= 1e-14


BAD = {
    "mode": (dict(mode="fast"), r"mode='fast'.*'chunk', 'recurrent'"),
    "chunk_size-0": (dict(chunk_size=0), r"chunk_size must be an integer >= 1, got 0"),
    "chunk_size-float": (dict(chunk_size=16.0), r"chunk_size .* got 16\.0"),
    "k-shape": (dict(k=torch.zeros(2, 7, 2, 5)), r"k must be \[B, T, H, K\] = \(2, 7, 2, 4\).*got shape \(2, 7, 2, 5\)"),
    "v-batch": (dict(v=torch.zeros(3, 7, 2, 3)), r"v must be \[B, T, H, V\].*got shape \(3, 7, 2, 3\)"),
    "g-shape": (dict(g=torch.zeros(2, 7, 2, 1)), r"g must be \[B, T, H\] = \(2, 7, 2\)"),
    "beta-shape": (dict(beta=torch.zeros(2, 6, 2)), r"beta must be \[B, T, H\] = \(2, 7, 2\).*\(2, 6, 2\)"),
    "q-3d": (dict(q=torch.zeros(2, 7, 8)), r"q must be \[B, T, H, K\], got shape \(2, 7, 8\)"),
    "state-shape": (dict(initial_state=torch.zeros(2, 2, 3, 4)), r"initial_state must be \[B, H, K, V\] = \(2, 2, 4, 3\)"),
    "int-beta": (dict(beta=torch.zeros(2, 7, 2, dtype=torch.long)), r"beta must be a floating-point tensor"),
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("override,pattern", BAD.values(), ids=BAD.keys())
def test_bad_inputs_raise_value_error_naming_the_value(rule, override, pattern):
    if rule == "delta" and "g" in override:
        pytest.skip("the ungated rule ignores g by design")
    q, k, v, g, beta, _ = make_inputs(10, 2, 7, 2, 4, 3, torch.float32)
    args = dict(q=q, k=k, v=v, g=g, beta=beta) | override
    with pytest.raises(ValueError, match=pattern):
        RULES[rule](**args)
