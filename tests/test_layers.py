"""The layers' fast paths against the plain computations they replace (fewer, larger kernels for the
GPU step, docs/speed_notes.md): same numbers, in float64."""
import pytest
import torch
import torch.nn.functional as F

from sleeplab.layers import GatedDeltaMixer, WindowAttention, band_mask


def test_one_projection_matmul_equals_the_six_linears():
    torch.manual_seed(0)
    mixer = GatedDeltaMixer(d_model=16, n_heads=2, head_dim=8).double()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    q, k, v, out_gate, a, b = mixer.project(x)
    for got, linear in ((q, mixer.q_proj), (k, mixer.k_proj), (v, mixer.v_proj), (out_gate, mixer.g_proj),
                        (a, mixer.a_proj), (b, mixer.b_proj)):
        assert torch.allclose(got, linear(x), rtol=1e-12, atol=1e-14)


def test_gates_are_a_log_decay_and_a_write_strength():
    torch.manual_seed(0)
    mixer = GatedDeltaMixer(d_model=16, n_heads=2, head_dim=8).double()
    a, b = torch.randn(2, 3, 4, 2, dtype=torch.float64)
    g, beta = mixer.gates(a, b)
    assert torch.allclose(g, -mixer.A_log.exp() * F.softplus(a + mixer.dt_bias))
    assert (g <= 0).all() and ((beta > 0) & (beta < 1)).all()


@pytest.mark.parametrize("past, band", [(0, None), (6, None), (6, 4)])
def test_written_out_attention_equals_scaled_dot_product_attention(past, band):
    torch.manual_seed(0)
    attn = WindowAttention(d_model=16, n_heads=2, head_dim=8).double()
    B, T = 3, 5
    x = torch.randn(B, T, 16, dtype=torch.float64)
    cache = tuple(torch.randn(B, 2, past, 8, dtype=torch.float64) for _ in range(2)) if past else None
    mask = band_mask(T, past + T, band)
    y, (k, v) = attn(x, mask, cache)
    q = attn.qkv(x).view(B, T, 3, 2, 8).permute(2, 0, 3, 1, 4)[0]
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(y, attn.out(expected.transpose(1, 2).reshape(B, T, 16)), rtol=1e-10, atol=1e-12)
    assert k.shape == (B, 2, past + T, 8)
