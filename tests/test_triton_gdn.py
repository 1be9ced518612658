"""Invariants of the fused single-chunk Triton kernels (``mode="triton"``), run on CPU in Triton's
interpreter: they equal the chunk path (values and every gradient) and the token-by-token oracle.

The references run in float64, the kernels in float32, so the tolerances are float32 rounding over a
64-token chunk (observed ~1e-6 relative), not looseness. The GPU twin is tests/gpu/test_gpu_triton_gdn.py.
"""
import inspect
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from sleeplab.ops import gated_delta_rule, hebbian_rule
from test_ops import make_inputs, rel

# (B, T, H, K, V): T = 1 (a single token), 7 and 24 (padded to blocks of 16 and 32), 64 (the limit);
# K = V = 64 is the paper's head; 12 x 20 are not powers of two, so the masks past K and V are exercised.
SHAPES = {"T1": (2, 1, 2, 16, 16), "T7": (2, 7, 2, 16, 16), "T24": (2, 24, 2, 16, 16),
          "T64": (2, 64, 2, 16, 16), "T24-K64-V64": (2, 24, 2, 64, 64), "T24-K12-V20": (2, 24, 2, 12, 20)}
TOL = 1e-5


@pytest.fixture(scope="module")
def kernels():
    """The kernel module, interpreted: tests/conftest.py sets TRITON_INTERPRET=1 before triton's import
    on machines without CUDA (with CUDA the kernels compile and the GPU twin tests them)."""
    pytest.importorskip("triton", reason="triton is optional (pip install triton); mode='triton' needs it")
    from sleeplab.ops import triton_gdn
    if not triton_gdn.INTERPRETED:
        pytest.skip("triton was imported without TRITON_INTERPRET=1: the kernels are compiled for a GPU, "
                    "and tests/gpu/test_gpu_triton_gdn.py tests them there")
    return triton_gdn


def inputs_for(shape, state=True, dtype=torch.float32, **kw):
    return make_inputs(zlib.crc32(repr((shape, state)).encode()), *shape, dtype=dtype, state=state, **kw)


def run(mode, inputs, **kw):
    q, k, v, g, beta, s0 = inputs
    return gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, mode=mode, **kw)


def as_float64(inputs, grad=False):
    return [None if x is None else x.detach().double().requires_grad_(grad) for x in inputs]


def cotangents(o, s, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(o.shape, generator=gen, dtype=torch.float64),
            torch.randn(s.shape, generator=gen, dtype=torch.float64))


def close(got, want):
    """Relative error <= TOL; a gradient that is exactly zero by the algebra (q when only the state is
    used; g at T = 1 without a start state) must come out exactly zero."""
    err = (got.double() - want).norm()
    return err <= TOL * want.norm() if want.norm() > 0 else err == 0


def grads(mode, inputs, use=("o", "state")):
    """Gradients of a random linear function of the outputs named in ``use`` w.r.t. every input."""
    o, s = run(mode, inputs)
    w_o, w_s = cotangents(o, s)
    loss = sum((o.double() * w_o).sum() if name == "o" else (s.double() * w_s).sum() for name in use)
    leaves = [x for x in inputs if x is not None]
    return dict(zip("q k v g beta initial_state".split(), torch.autograd.grad(loss, leaves)))


@pytest.mark.parametrize("with_state", [True, False], ids=["s0", "no-s0"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_triton_forward_equals_chunk(kernels, shape, with_state):
    inputs = inputs_for(shape, with_state)
    o, s = run("triton", inputs)
    o_ref, s_ref = run("chunk", as_float64(inputs))
    assert o.shape == o_ref.shape and o.dtype == torch.float32 and s.dtype == torch.float32
    assert rel(o.double(), o_ref) <= TOL and rel(s.double(), s_ref) <= TOL


@pytest.mark.parametrize("with_state", [True, False], ids=["s0", "no-s0"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_triton_grads_equal_chunk(kernels, shape, with_state):
    inputs = inputs_for(shape, with_state, grad=True)
    got, want = grads("triton", inputs), grads("chunk", as_float64(inputs, grad=True))
    assert got.keys() == want.keys() == set("q k v g beta".split() + ["initial_state"] * with_state)
    for name in want:
        assert got[name].dtype == torch.float32, name
        assert close(got[name], want[name]), name


@pytest.mark.parametrize("use", [("o",), ("state",)], ids=["o-only", "state-only"])
def test_triton_grads_equal_chunk_when_one_output_is_unused(kernels, use):
    """The backward gets None for an unused output (and makes no zeros for an unused state): exact too."""
    inputs = inputs_for(SHAPES["T24"], grad=True)
    got, want = grads("triton", inputs, use), grads("chunk", as_float64(inputs, grad=True), use)
    for name in want:
        assert close(got[name], want[name]), name


@pytest.mark.parametrize("shape", [SHAPES["T7"], SHAPES["T64"]], ids=["T7", "T64"])
def test_triton_final_state_equals_recurrent(kernels, shape):
    inputs = inputs_for(shape)
    o, s = run("triton", inputs)
    o_ref, s_ref = run("recurrent", as_float64(inputs))
    assert rel(s.double(), s_ref) <= TOL and rel(o.double(), o_ref) <= TOL


@pytest.mark.parametrize("g_fill", [0.0, -30.0], ids=["no-decay", "g=-30"])
def test_triton_decay_corners_are_finite_and_match(kernels, g_fill):
    """g = -30 makes exp(G_i - G_j) overflow above the diagonal if it were not masked before exp."""
    inputs = make_inputs(11, *SHAPES["T24"], dtype=torch.float32, g_fill=g_fill, grad=True)
    got, want = grads("triton", inputs), grads("chunk", as_float64(inputs, grad=True))
    for name in want:
        assert torch.isfinite(got[name]).all(), name
        assert (got[name].double() - want[name]).norm() <= TOL * max(want[name].norm(), 1.0), name


def test_triton_bf16_output_follows_v_state_stays_float32(kernels):
    inputs = inputs_for(SHAPES["T24-K64-V64"], dtype=torch.bfloat16, grad=True)
    o, s = run("triton", inputs)
    o_ref, s_ref = run("chunk", inputs)  # same bf16 inputs, float32 inside: only o's rounding differs
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32
    assert rel(o.float(), o_ref.float()) <= 1e-2 and rel(s, s_ref) <= 1e-5
    (o.float().sum() + s.sum()).backward()
    assert all(x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all() for x in inputs)


@pytest.mark.parametrize("with_state", [True, False], ids=["s0", "no-s0"])
def test_triton_custom_op_passes_opcheck(kernels, with_state):
    """Schema, fake (meta) shapes, autograd registration and an AOT trace of the op the kernels run in."""
    q, k, v, g, beta, s0 = inputs_for(SHAPES["T7"], with_state, grad=True)
    torch.library.opcheck(kernels._fwd_op, (q, k, v, g, beta, s0, 0.25, "ieee", True))


def test_triton_compiles_without_graph_breaks_and_equals_eager(kernels):
    """The fast step compiles each block (train/fast.py): fullgraph=True fails on any graph break, so the
    kernels must be one opaque op to dynamo. aot_eager traces forward and backward as inductor would
    see them, without needing a C++ compiler; the launches themselves run in the interpreter."""
    inputs = inputs_for(SHAPES["T24"], grad=True)
    compiled = torch.compile(lambda *xs: run("triton", xs), fullgraph=True, backend="aot_eager")
    o, s = compiled(*inputs)
    o_ref, s_ref = run("triton", inputs)
    assert torch.equal(o, o_ref) and torch.equal(s, s_ref)
    w_o, w_s = (w.float() for w in cotangents(o, s))
    got = torch.autograd.grad((o * w_o).sum() + (s * w_s).sum(), inputs)
    want = torch.autograd.grad((o_ref * w_o).sum() + (s_ref * w_s).sum(), inputs)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_triton_is_not_the_default():
    assert inspect.signature(gated_delta_rule).parameters["mode"].default == "chunk"


BAD = {  # checked before triton is imported: these need no triton
    "T65": (dict(T=65), r"mode='triton' needs T <= 64 \(one chunk\), got T=65"),
    "float64": (dict(dtype=torch.float64), r"so q must be float32, bfloat16 or float16, got float64"),
}


@pytest.mark.parametrize("override,pattern", BAD.values(), ids=BAD.keys())
def test_triton_bad_inputs_raise_value_error_naming_the_value(override, pattern):
    q, k, v, g, beta, s0 = make_inputs(12, 1, override.get("T", 8), 1, 4, 4, override.get("dtype", torch.float32))
    with pytest.raises(ValueError, match=pattern):
        gated_delta_rule(q, k, v, g, beta, initial_state=s0, mode="triton")


def test_triton_on_cpu_without_the_interpreter_raises(kernels, monkeypatch):
    monkeypatch.setattr(kernels, "INTERPRETED", False)
    q, k, v, g, beta, s0 = make_inputs(13, 1, 8, 1, 4, 4, torch.float32)
    with pytest.raises(ValueError, match=r"mode='triton' needs CUDA tensors, got q on cpu; use mode='chunk'"):
        gated_delta_rule(q, k, v, g, beta, initial_state=s0, mode="triton")


def test_triton_tensors_on_two_devices_raise():
    q, k, v, g, beta, _ = make_inputs(14, 1, 8, 1, 4, 4, torch.float32)
    s0 = torch.zeros(1, 1, 4, 4, device="meta")
    with pytest.raises(ValueError, match=r"needs every tensor on q's device cpu, got initial_state on meta"):
        gated_delta_rule(q, k, v, g, beta, initial_state=s0, mode="triton")


def test_other_rules_do_not_offer_triton():
    q, k, v, g, beta, _ = make_inputs(15, 1, 8, 1, 4, 4, torch.float32)
    with pytest.raises(ValueError, match=r"hebbian_rule: mode='triton' is not supported; allowed: 'chunk', 'recurrent'$"):
        hebbian_rule(q, k, v, g, beta, mode="triton")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_kernel_benchmark_refuses_without_cuda():
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "gdn_kernel.py"
    run = subprocess.run([sys.executable, str(bench)], capture_output=True, text=True)
    assert run.returncode != 0 and "torch sees no CUDA device here" in run.stderr, run.stderr
