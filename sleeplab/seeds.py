"""Seeds derived from names, so every random stream (data, N, initial weights, the held-out set) is a pure
function of (seed, keys) and the same on every process and machine."""
from __future__ import annotations

import hashlib


def derive_seed(seed: int, *keys) -> int:
    """A 63-bit seed from (seed, keys), stable across processes and machines (unlike ``hash``)."""
    text = "|".join(str(k) for k in ("sleeplab", seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
