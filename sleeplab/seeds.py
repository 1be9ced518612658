"""Seeds derived from names, so every random stream (data, N, initial weights, the held-out set) is a pure
function of (seed, keys) and the same on every process and machine."""
from __future__ import annotations

import hashlib

import torch

NUDGE = 1e-6  # relative size of a nudge: a few float32 roundings, as another card's kernels make them


def derive_seed(seed: int, *keys) -> int:
    """A 63-bit seed from (seed, keys), stable across processes and machines (unlike ``hash``)."""
    text = "|".join(str(k) for k in ("sleeplab", seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def nudge_weights(model: torch.nn.Module, seed: int) -> None:
    """Every weight times (1 + NUDGE x standard normal noise drawn from ``seed``), in place: a run that
    starts where its seed's run starts, up to rounding, and sees the same batches."""
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + NUDGE * torch.randn(p.shape, generator=noise, dtype=torch.float64).to(p.device, p.dtype))
