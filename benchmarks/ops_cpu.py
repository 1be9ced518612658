"""CPU timing of the gated delta rule: chunked (WY) form vs the token-by-token recurrence, forward+backward.

    python benchmarks/ops_cpu.py            # B=64, T=64, H=2, K=V=64, float32 -> data/results/ops_cpu.json

Why fwd+bwd: training pays for both, and the recurrence's backward is where the T small sequential
steps (and T stored states) hurt most. Median of several repeats after warm-up, so one-off allocator or
thread-pool start-up costs do not count.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sleeplab.device import card_name  # noqa: E402
from sleeplab.ops import gated_delta_rule  # noqa: E402


def make_inputs(B, T, H, K, V, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    g = -F.softplus(torch.randn(B, T, H, generator=gen))
    beta = torch.sigmoid(torch.randn(B, T, H, generator=gen))
    return [x.requires_grad_(True) for x in (q, k, v, g, beta)]


def time_fwd_bwd(modes, inputs, warmup, repeats, chunk_size):
    """Median ms per mode. Repeats alternate between the modes, so background load on a shared
    machine hits both alike instead of skewing the ratio."""
    def step(mode):
        o, _ = gated_delta_rule(*inputs, mode=mode, chunk_size=chunk_size)
        o.sum().backward()
        for x in inputs:
            x.grad = None
    for mode in modes:
        for _ in range(warmup):
            step(mode)
    times = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            t0 = time.perf_counter()
            step(mode)
            times[mode].append((time.perf_counter() - t0) * 1e3)
    return {mode: statistics.median(t) for mode, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--T", type=int, nargs="+", default=[64])
    p.add_argument("--H", type=int, default=2)
    p.add_argument("--K", type=int, default=64)
    p.add_argument("--V", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "ops_cpu.json")
    args = p.parse_args(argv)

    command = "python benchmarks/ops_cpu.py" + ("" if argv is None and len(sys.argv) == 1
                                                else " " + " ".join(argv if argv is not None else sys.argv[1:]))
    card = card_name(torch.device("cpu"))
    records = []
    for T in args.T:
        inputs = make_inputs(args.B, T, args.H, args.K, args.V)
        ms = time_fwd_bwd(("recurrent", "chunk"), inputs, args.warmup, args.repeats, args.chunk_size)
        for mode, t in ms.items():
            records.append(dict(impl=mode, T=T, B=args.B, H=args.H, K=args.K, V=args.V,
                                ms_fwd_bwd=round(t, 3), speedup=round(ms["recurrent"] / t, 2),
                                device="cpu", card=card, torch=torch.__version__, command=command))
            print(f"T={T:5d} {mode:9s} {t:9.2f} ms fwd+bwd   speedup vs recurrent {ms['recurrent'] / t:6.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.out} ({card}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    return records


if __name__ == "__main__":
    main()
