"""BatchedMuon (the fast path) against torch.optim.Muon (the oracle)."""
import copy

import pytest
import torch

from sleeplab.train.muon import NS_COEFFICIENTS, BatchedMuon, orthogonalize

SHAPES = [(8, 8), (8, 8), (24, 8), (24, 8), (8, 32), (3, 8)]  # square, tall, wide, a 3-row gate


def params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]


def run(opt_cls, steps=3, **kw):
    ps = params(0)
    opt = opt_cls(ps, lr=0.02, weight_decay=0.1, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return ps, opt


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
def test_batched_muon_matches_torch_muon():
    start = params(0)
    ours, _ = run(BatchedMuon)
    ref, _ = run(torch.optim.Muon)
    for s, a, b in zip(start, ours, ref):
        step_ours, step_ref = a.detach() - s.detach(), b.detach() - s.detach()
        assert ((step_ours - step_ref).norm() / step_ref.norm()) < 2e-2  # bf16 Newton-Schulz rounding


def test_orthogonalize_gives_near_orthogonal_factors():
    G = torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(2))
    X = orthogonalize(G).float()
    s = torch.linalg.svdvals(X)
    assert s.min() > 0.5 and s.max() < 1.5  # Muon's quintic lands singular values in ~[0.7, 1.2]


def newton_schulz(G, dtype):
    """The iteration as written, every product in ``dtype``: the oracle."""
    a, b, c = NS_COEFFICIENTS
    wide = G.shape[-2] <= G.shape[-1]
    X = G.to(dtype) if wide else G.to(dtype).mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    addmm = torch.baddbmm if X.dim() == 3 else torch.addmm
    for _ in range(5):
        A = X @ X.mT
        X = addmm(X, addmm(A, A, A, beta=b, alpha=c), X, beta=a)
    return (X if wide else X.mT).float()


@pytest.mark.parametrize("shape", [(3, 16, 64), (3, 64, 16), (16, 64), (64, 16), (2, 256, 256)])
def test_cpu_newton_schulz_rounds_like_bf16_matmuls(shape):
    """The CPU computes the iteration's products in fp32 and rounds each to bf16 (fast). Against the
    iteration with bf16 matmuls both accumulate in fp32 and round once, in different orders, so a few
    elements of a product round the other way and five steps amplify that; it must still end nearer
    the bf16 iteration than an fp32 iteration does (what skipping the rounding would give)."""
    G = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    oracle, fp32 = newton_schulz(G, torch.bfloat16), newton_schulz(G, torch.float32)
    ours = orthogonalize(G)
    assert ours.dtype == torch.bfloat16
    gap = lambda x: float((x - oracle).norm() / oracle.norm())   # noqa: E731
    assert gap(ours.float()) < min(gap(fp32), 1e-2), (gap(ours.float()), gap(fp32))


def test_state_dict_round_trip_continues_bit_for_bit():
    ps, opt = run(BatchedMuon, steps=2)
    saved_params = [p.detach().clone() for p in ps]
    state = copy.deepcopy(opt.state_dict())  # as saving to disk would: a snapshot
    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(p.shape, generator=g) for p in ps]
    for p, gr in zip(ps, grads):
        p.grad = gr.clone()
    opt.step()
    ps2 = [torch.nn.Parameter(s.clone()) for s in saved_params]
    opt2 = BatchedMuon(ps2, lr=0.02, weight_decay=0.1)
    opt2.load_state_dict(state)
    for p, gr in zip(ps2, grads):
        p.grad = gr.clone()
    opt2.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ps2))


def test_muon_refuses_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        BatchedMuon([torch.nn.Parameter(torch.zeros(3))])
