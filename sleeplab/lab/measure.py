"""Measurements the notebooks make live: what attention costs as the context grows, and how many
key -> value pairs a fast-weight matrix can hold.

Attention cost (notebook 01). Reading a context of T tokens with causal softmax attention compares every
query with every earlier key: O(T^2) compute, and the keys and values of all T tokens stay in the KV
cache, O(T) memory. A gated-delta fast-weight mixer reads the same T tokens in O(T) and carries one
K x V matrix per head, whatever T is. We time sleeplab's own layers (not a model of them) and weigh the
tensors they actually hand to the next token.

Capacity (notebook 03). Write n pairs (k_i, v_i) into S with a rule from ``sleeplab.ops`` and read
them back with q = k_i. The Hebbian rule only adds, so non-orthogonal keys interfere; the delta rule
first subtracts what S already returns for k_i, so it overwrites instead of piling up.
"""
from __future__ import annotations

import math
import time

import torch

from .. import device as dev
from ..layers import GatedDeltaMixer, WindowAttention, band_mask
from ..ops import RULES


# ---- timing -----------------------------------------------------------------------------------------

def time_call(fn, device: torch.device, repeats: int = 3, warmup: int = 1, min_total_s: float = 0.2) -> float:
    """Fastest wall-clock seconds of ``fn()`` over ``repeats`` runs. The minimum, not the mean: other
    programs on the machine can only ever make a run slower, so the fastest run is the least disturbed
    one. GPU work is queued asynchronously, so we synchronise before reading the clock
    (``sleeplab.device.synchronize``); on CPU that is a no-op."""
    for _ in range(warmup):
        fn()
    dev.synchronize(device)
    times = []
    while len(times) < repeats or (sum(times) < min_total_s and len(times) < 50):  # cheap calls: more tries
        start = time.perf_counter()
        fn()
        dev.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@torch.no_grad()
def attention_cost(lengths, d_model: int = 256, n_heads: int = 4, window: int = 64, batch: int = 1,
                   device: torch.device | None = None, repeats: int = 3, seed: int = 0) -> list[dict]:
    """For each context length T: seconds to read T tokens with (a) full causal attention, (b) attention
    with hard eviction every ``window`` tokens (window by window, as the sleeping model does), (c) the
    gated-delta mixer; and the bytes each carries to the next token (KV cache, or the state S).

    Returns one dict per T: T, attn_s, window_s, gdn_s, kv_bytes, window_kv_bytes, state_bytes."""
    device = dev.pick_device() if device is None else device
    torch.manual_seed(seed)
    head_dim = d_model // n_heads
    attn = WindowAttention(d_model, n_heads, head_dim).to(device).eval()
    gdn = GatedDeltaMixer(d_model, n_heads, head_dim).to(device).eval()
    rows = []
    with dev.single_thread(device):
        for T in lengths:
            rows.append(_cost_at(int(T), attn, gdn, d_model, window, batch, device, repeats))
    return rows


def _cost_at(T, attn, gdn, d_model, window, batch, device, repeats) -> dict:
    """One row of :func:`attention_cost`."""
    x = torch.randn(batch, T, d_model, device=device)
    causal = band_mask(T, T, None, device)
    local = band_mask(min(window, T), min(window, T), None, device)
    state0 = torch.zeros(gdn.state_shape(batch), device=device)

    def full():
        return attn(x, causal)

    def windowed():  # hard eviction: each window attends only to itself, cache dropped after it
        out = None
        for s in range(0, T, window):
            piece = x[:, s:s + window]
            out = attn(piece, local[:piece.shape[1], :piece.shape[1]])
        return out

    def fast_weights():
        return gdn(x, state0)

    _, (k, v) = full()
    _, (wk, wv) = attn(x[:, :min(window, T)], local)
    _, S = fast_weights()
    return dict(
        T=T,
        attn_s=time_call(full, device, repeats),
        window_s=time_call(windowed, device, repeats),
        gdn_s=time_call(fast_weights, device, repeats),
        kv_bytes=nbytes(k, v),            # what the next token must attend over: grows with T
        window_kv_bytes=nbytes(wk, wv),   # never more than one window
        state_bytes=nbytes(S),            # K x V per head, whatever T is
    )


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p in y ~ x^p
    (1 = linear, 2 = quadratic, 0 = constant)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    if var == 0:
        raise ValueError("loglog_slope needs at least two different x values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / var


def extrapolate(rows, key: str, T: int, fit_last: int = 3) -> float:
    """``rows[key]`` carried out to context length ``T`` along the power law fitted to the last
    ``fit_last`` measured points (small T is dominated by fixed overheads, not by the algorithm)."""
    tail = rows[-fit_last:]
    p = loglog_slope([r["T"] for r in tail], [r[key] for r in tail])
    return tail[-1][key] * (T / tail[-1]["T"]) ** p


# ---- associative-recall capacity ----------------------------------------------------------------------

def random_keys(n: int, dim: int, generator: torch.Generator | None = None, orthogonal: bool = False,
                overlap: float = 0.0, batch: int | None = None, dtype=torch.float64) -> torch.Tensor:
    """``n`` unit vectors in R^dim: [n, dim], or [batch, n, dim] independent sets. Random Gaussian
    directions overlap a little (cosine about 1/sqrt(dim)); ``orthogonal=True`` makes them exactly
    orthonormal (only possible for n <= dim). ``overlap`` in [0, 1) mixes in one shared direction so that
    keys have cosine ~ ``overlap`` with each other: real GDN keys are L2norm(SiLU(W x)), mostly
    non-negative, so they do overlap."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    lead = () if batch is None else (batch,)
    x = torch.randn(*lead, n, dim, generator=generator, dtype=dtype)
    if orthogonal:
        if n > dim:
            raise ValueError(f"only {dim} orthogonal directions exist in {dim} dimensions, asked for n={n}")
        x = torch.linalg.qr(x.transpose(-1, -2)).Q.transpose(-1, -2)  # rows orthonormal
    x = x / x.norm(dim=-1, keepdim=True)
    if overlap:
        shared = torch.randn(*lead, 1, dim, generator=generator, dtype=dtype)
        x = overlap ** 0.5 * shared / shared.norm(dim=-1, keepdim=True) + (1 - overlap) ** 0.5 * x
    return x / x.norm(dim=-1, keepdim=True)


def write_pairs(keys: torch.Tensor, values: torch.Tensor, rule: str = "delta", passes: int = 1,
                beta: float = 1.0, state: torch.Tensor | None = None) -> torch.Tensor:
    """Write the pairs (keys[i] -> values[i]) into a fresh (or given) fast-weight matrix S [K, V] with a
    ``sleeplab.ops`` rule, one token per pair, no decay (g = 0). ``passes`` > 1 writes the same pairs
    again, starting from the S the previous pass left: what a sleep pass does to a window.
    keys [n, K], values [n, V] -> S [K, V]; with a leading batch dim, [b, n, *] -> [b, K, V]."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r} is not known; allowed: {sorted(RULES)}")
    if keys.shape[:-1] != values.shape[:-1]:
        raise ValueError(f"keys {tuple(keys.shape)} and values {tuple(values.shape)} must pair up")
    single = keys.dim() == 2
    k, v = (keys[None], values[None]) if single else (keys, values)
    k, v = k[:, :, None, :], v[:, :, None, :]            # fla layout [B, T=n, H=1, K|V]
    b = torch.full(k.shape[:3], beta, dtype=keys.dtype)
    S = None if state is None else (state[None] if single else state)[:, None]   # [B, 1, K, V]
    for _ in range(passes):
        _, S = RULES[rule](k, k, v, torch.zeros_like(b), b, initial_state=S, output_final_state=True)
    S = S[:, 0]
    return S[0] if single else S


def read(S: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """What the memory returns for each query: o = S^T q ([..., n, V]). A read without a write (the ops
    would write while reading)."""
    return queries @ S


def recall(S: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> dict:
    """Read every stored key back. ``accuracy``: fraction of pairs whose read-out is closest (cosine) to
    its own value among all stored values (what an MQAR answer needs); ``rel_error``: ||o_i - v_i|| / ||v_i||
    per pair (a list; averaged over the batch when batched), and ``mean_rel_error``."""
    out = read(S, keys)
    unit = torch.nn.functional.normalize
    cos = unit(out, dim=-1) @ unit(values, dim=-1).transpose(-1, -2)
    hits = (cos.argmax(-1) == torch.arange(keys.shape[-2])).double()
    err = (out - values).norm(dim=-1) / values.norm(dim=-1)
    per_pair = err if err.dim() == 1 else err.mean(0)
    return dict(accuracy=hits.mean().item(), rel_error=per_pair.tolist(), mean_rel_error=err.mean().item())


def capacity_curve(dim: int, ns, rule: str = "delta", passes: int = 1, trials: int = 8,
                   orthogonal: bool = False, overlap: float = 0.0, seed: int = 0,
                   metric: str = "accuracy") -> list[float]:
    """Mean over ``trials`` fresh draws of ``metric`` ("accuracy" or "mean_rel_error") after writing n
    random pairs into a dim x dim fast-weight matrix, for each n in ``ns``. The trials run as one batch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    with dev.single_thread():
        for n in ns:
            keys = random_keys(n, dim, g, orthogonal, overlap, batch=trials)
            values = random_keys(n, dim, g, batch=trials)
            out.append(recall(write_pairs(keys, values, rule, passes), keys, values)[metric])
    return out


def capacity(dim: int, rule: str = "delta", passes: int = 1, threshold: float = 0.95, trials: int = 8,
             overlap: float = 0.0, seed: int = 0) -> int:
    """The largest n on the grid dim/8, 2 dim/8, ... 3 dim whose mean recall accuracy is >= ``threshold``
    (a grid, not every n: the answer is a scale, and this keeps it to ~24 evaluations per call)."""
    step = max(1, dim // 8)
    best = 0
    for n in range(step, 3 * dim + 1, step):  # stop at the first miss: larger n only gets harder
        acc = capacity_curve(dim, [n], rule, passes, trials, overlap=overlap, seed=seed + n)[0]
        if acc < threshold:
            break
        best = n
    return best


def write_trajectory(keys: torch.Tensor, values: torch.Tensor, rule: str = "delta",
                     passes: int = 1) -> tuple[list, list]:
    """Write the pairs one token at a time, ``passes`` times over (as sleep passes over a window), and
    record after every token S (for the heatmap slider) and the relative recall error of EVERY pair
    (pairs not written yet read back as roughly nothing, error ~1)."""
    S = torch.zeros(keys.shape[1], values.shape[1], dtype=keys.dtype)
    states, errors = [], []
    with dev.single_thread():
        for _ in range(passes):
            for t in range(len(keys)):
                S = write_pairs(keys[t:t + 1], values[t:t + 1], rule, state=S)
                states.append(S.clone())
                errors.append(recall(S, keys, values)["rel_error"])
    return states, errors


# ---- what can reach a prediction (notebook 02) ----------------------------------------------------------

@torch.no_grad()
def influence(model, tokens: torch.Tensor) -> torch.Tensor:
    """[T, T] matrix: entry (p, t) is the largest change of the logits at position t when token p of
    ``tokens`` [T] is replaced by another token (id + 1 mod vocab). Exactly 0 means no path from p to t.

    All T perturbed copies run as one batch through ``sleeplab.parallel_forward`` (the one-pass model:
    equal to the sleep loop with N = 1 at every position, see tests/test_sleep.py), so every position
    gets logits, not just the prediction window."""
    from ..sleep import parallel_forward
    T, vocab = tokens.shape[0], model.config.vocab_size
    batch = tokens.to(model.device).repeat(T + 1, 1)             # row 0: the original; row p+1: p changed
    idx = torch.arange(T, device=batch.device)
    batch[idx + 1, idx] = (batch[idx + 1, idx] + 1) % vocab
    with dev.single_thread(model.device):
        logits = parallel_forward(model, batch).float()
    return (logits[1:] - logits[:1]).abs().amax(-1).cpu()       # [p, t]


@torch.no_grad()
def context_swap(model, batch, n_sleep: int | None = None) -> dict:
    """Give every example the evicted context of ANOTHER example (its neighbour in the batch), keep its
    prediction window, and compare the logits at the scored positions. A model blind to evicted tokens
    gives exactly the same answers, so its accuracy cannot depend on the context at all.
    Returns max_change (largest logit difference), and exact accuracy with the true and swapped context."""
    from ..sleep import sleep_forward, window_plan
    from ..tasks.base import score
    plan = window_plan(batch.loss_mask, batch.seq_len, model.config.window)
    first = next(w.start for w in plan if w.predict)          # everything before it has been evicted
    swapped = batch.tokens.clone()
    swapped[:, :first] = batch.tokens[:, :first].roll(1, dims=0)
    out = {}
    with dev.single_thread(model.device):
        for name, tokens in (("true", batch.tokens), ("swapped", swapped)):
            logits = sleep_forward(model, tokens.to(model.device), batch.loss_mask.to(model.device), n_sleep,
                                   plan=plan)
            out[name] = logits.float().cpu()
    mask = batch.loss_mask
    return dict(max_change=(out["true"] - out["swapped"]).abs().amax(-1)[mask].max().item(),
                exact_true=score(out["true"].argmax(-1), batch)["exact"],
                exact_swapped=score(out["swapped"].argmax(-1), batch)["exact"])
