"""Reference solution to assignment 1 (the recurrent gated delta rule).

Kept out of the exercise notebook so students don't read it by accident; CI grades it through the notebook by
tests/test_assignment_notebooks.py (pasted into the stub cell) and directly by tests/test_grading.py.
"""
import torch


def gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None):
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K ** -0.5 if scale is None else scale
    # S holds the TRANSPOSE of the paper's S (keys x values), like fla: [B, H, K, V]
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.clone()
    outputs = []
    for t in range(T):
        alpha = g[:, t].exp()                                   # [B, H] forget gate in (0, 1]
        S = alpha[..., None, None] * S                          # 1. forget a little
        guess = torch.einsum("bhkv,bhk->bhv", S, k[:, t])       # 2. what the memory says for k_t
        u = beta[:, t, :, None] * (v[:, t] - guess)             # 3. correction towards v_t
        S = S + k[:, t, :, :, None] * u[:, :, None, :]          # 4. rank-1 write k_t u_t^T
        outputs.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))  # 5. read with q_t
    return torch.stack(outputs, dim=1), S                      # o [B, T, H, V], S [B, H, K, V]
