"""The compiled Triton kernels (``gated_delta_rule(mode="triton")``) at the paper's shapes on CUDA:
forward and every gradient against the chunk path in float64, in the three precisions training can use,
and fwd+bwd inside a CUDA graph (the fast step replays one).

Tolerances, relative Frobenius error against float64:
* fp32 (TF32 off): both paths are exact float32, 1e-5 (the CPU interpreter tests see ~5e-7 at T = 24);
* bf16 inputs (TF32 off): the math is float32 in both paths, only o and the gradients are rounded to
  bf16 (2^-9 a value), so 1e-2 for those and 1e-5 for the float32 state;
* the model's way, fp32 inputs under bf16 autocast with TF32 on (``device.fast_matmul``): the chunk path
  multiplies in bf16, the kernels in TF32 (2^-11), so the kernels must be at least as close to float64
  as the chunk path is, or within 1e-3.
"""
import pytest
import torch

from sleeplab.ops import gated_delta_rule
from test_ops import make_inputs, rel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU suite needs a CUDA device")
pytest.importorskip("triton", reason="mode='triton' needs the optional triton package")

PAPER = (512, 24, 4, 64, 64)  # B, T, H, K, V: batch 512 of 24-token windows, 4 heads of 64
NAMES = "q k v g beta initial_state".split()


def cuda_inputs(dtype, seed=0):
    q, k, v, g, beta, s0 = make_inputs(seed, *PAPER)  # float64 on the CPU
    xs = [x.cuda().to(dtype) for x in (q, k, v, g, beta)] + [s0.cuda().float()]
    return [x.requires_grad_(True) for x in xs]


def outputs_and_grads(mode, inputs, autocast=False):
    q, k, v, g, beta, s0 = inputs
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        o, s = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, mode=mode)
    gen = torch.Generator("cuda").manual_seed(1)
    w_o = torch.randn(o.shape, generator=gen, device="cuda", dtype=torch.float64)
    w_s = torch.randn(s.shape, generator=gen, device="cuda", dtype=torch.float64)
    grads = torch.autograd.grad((o.double() * w_o).sum() + (s.double() * w_s).sum(), inputs)
    return dict(o=o, state=s, **dict(zip(NAMES, grads)))


def reference(inputs):
    return outputs_and_grads("chunk", [x.detach().double().requires_grad_(True) for x in inputs])


def errors(got, want):
    return {name: rel(got[name].double(), want[name]) for name in want}


@pytest.fixture
def tf32(monkeypatch):
    def set_tf32(on):
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", on)
    return set_tf32


def test_triton_equals_chunk_fp32(tf32):
    tf32(False)
    inputs = cuda_inputs(torch.float32)
    err = errors(outputs_and_grads("triton", inputs), reference(inputs))
    assert all(e <= 1e-5 for e in err.values()), err


def test_triton_equals_chunk_bf16_inputs(tf32):
    tf32(False)
    inputs = cuda_inputs(torch.bfloat16)
    got = outputs_and_grads("triton", inputs)
    assert got["o"].dtype == torch.bfloat16 and got["state"].dtype == torch.float32
    err = errors(got, reference(inputs))
    assert err["state"] <= 1e-5 and all(e <= 1e-2 for e in err.values()), err


def test_triton_under_autocast_is_no_less_accurate_than_chunk(tf32):
    tf32(True)
    inputs = cuda_inputs(torch.float32)
    want = reference(inputs)
    err = errors(outputs_and_grads("triton", inputs, autocast=True), want)
    err_chunk = errors(outputs_and_grads("chunk", inputs, autocast=True), want)
    assert all(err[n] <= max(err_chunk[n], 1e-3) for n in err), (err, err_chunk)


def test_triton_fwd_bwd_replays_in_a_cuda_graph(tf32):
    """The fast training step records everything in one CUDA graph: no host sync, no allocation
    outside the graph's pool, and a replay on new inputs gives what an eager call gives."""
    tf32(False)
    static = [x.detach().clone().requires_grad_(True) for x in cuda_inputs(torch.float32, seed=2)]

    def step():
        q, k, v, g, beta, s0 = static
        o, s = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, mode="triton")
        return [o, s, *torch.autograd.grad(o.sum() + s.square().sum(), static)]

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # compiles the kernels and warms the allocator outside the capture
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    fresh = cuda_inputs(torch.float32, seed=3)
    with torch.no_grad():
        for x, y in zip(static, fresh):
            x.copy_(y)
    graph.replay()
    eager = step()
    for name, a, b in zip(["o", "state", *NAMES], captured, eager):
        assert torch.equal(a, b), name
