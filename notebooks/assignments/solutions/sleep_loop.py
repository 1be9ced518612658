"""Reference solution to assignment 2 (Algorithm 1, hard eviction).

Kept out of the exercise notebook so students don't read it by accident; CI grades it through the notebook by
tests/test_assignment_notebooks.py (pasted into the stub cell) and directly by tests/test_grading.py.
"""
import torch


def sleep_loop(model, tokens, loss_mask, n_sleep):
    B, T = tokens.shape
    L = model.config.window
    S = model.empty_state(B)                                   # line 1: fast weights start at zero
    pieces = []
    for start in range(0, T, L):                               # line 2: non-overlapping chunks
        chunk = tokens[:, start:start + L]
        l = chunk.shape[1]
        mask = torch.ones(l, l, dtype=torch.bool, device=tokens.device).tril()  # causal, this chunk only
        h = model.embed(chunk, start)                          # line 4: embed once, absolute positions
        if not loss_mask[:, start:start + L].any():            # line 5: no loss -> consolidate
            for _ in range(n_sleep):                           # lines 6-8: N passes, h and S carried
                h, S, _ = model.run_blocks(h, S, mask)
            pieces.append(h.new_zeros(B, l, model.config.vocab_size))  # asleep: nothing to predict
        else:                                                  # lines 9-11: one ordinary pass
            h, S, _ = model.run_blocks(h, S, mask)
            pieces.append(model.head_logits(h))
        # the KV cache (third output) is dropped: hard eviction, only S crosses the boundary
    return torch.cat(pieces, dim=1)
