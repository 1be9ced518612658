"""Named model families: the paper's sleeping hybrid and the baselines it is measured against."""
from __future__ import annotations

from dataclasses import fields, replace

from .model import SleepLMConfig

_HYBRID = "attn,gdn,attn,gdn"
_ATTN_ONLY = "attn,attn,attn,attn"

PRESETS: dict[str, dict] = {
    # attention only, cache cleared every L tokens: blind to evicted tokens, so at chance on them
    "transformer-evict": dict(pattern=_ATTN_ONLY, eviction="hard", n_sleep=1),
    # attention only, nothing evicted: the upper bound the paper never ran
    "transformer-full": dict(pattern=_ATTN_ONLY, eviction="none", n_sleep=1),
    # sliding-window attention + GDN, one pass (Samba-like)
    "swa-hybrid": dict(pattern=_HYBRID, eviction="sliding", n_sleep=1),
    # the paper's no-loop baseline: hard eviction, one pass (N = 1)
    "hybrid": dict(pattern=_HYBRID, eviction="hard", n_sleep=1),
    # the paper's method: hard eviction, N sleep passes before every eviction
    "sleep": dict(pattern=_HYBRID, eviction="hard", n_sleep=4),
}

# The paper's Rule 110 model (§4.1): 4 blocks attn/GDN/attn/GDN, d = 256, L = 24 (heads: our choice).
PAPER_RULE110 = dict(d_model=256, n_heads=4, window=24, max_positions=128)


def preset(name: str, **overrides) -> SleepLMConfig:
    """``preset("sleep", n_sleep=2, d_model=256)`` -> a SleepLMConfig."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not known; allowed: {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - {f.name for f in fields(SleepLMConfig)})
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; see SleepLMConfig for the allowed ones")
    return replace(SleepLMConfig(**PRESETS[name]), **overrides)
