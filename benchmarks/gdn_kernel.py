"""CUDA timing of one gated-delta-rule call, forward + backward: the PyTorch chunk path against the fused
Triton kernels (``mode="triton"``), at the paper's shapes.

    python benchmarks/gdn_kernel.py          # B=512, T=24, H=4, K=V=64 -> data/results/gdn_kernel.json

Each (impl, launch) pair is timed eagerly and replayed from a CUDA graph (the fast training step replays
one, so launch cost is hidden there and only kernel time counts). After a warm-up of >= --warm-s seconds,
--windows windows of >= --seconds / --windows each are timed with CUDA events, the impls taking turns
window by window (clock drift hits all alike); the record is the median window's ms per call, with every
window beside it. Before timing, the Triton outputs and gradients are checked against the chunk path's,
and one call of each impl is profiled for its GPU operations (kernels, copies, fills). Precision is the model's by default
(bf16 autocast, TF32 on). CUDA only: on a CPU the kernels run in Triton's interpreter, for tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sleeplab.device import card_name  # noqa: E402
from sleeplab.ops import gated_delta_rule  # noqa: E402

IMPLS = ("chunk", "triton")


def refuse_unless_cuda():
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gdn_kernel.py times CUDA kernels, and torch sees no CUDA device here; "
                 "on a CPU the Triton kernels only run in Triton's interpreter (tests/test_triton_gdn.py)")
    if os.environ.get("TRITON_INTERPRET", "0") != "0":
        sys.exit(f"TRITON_INTERPRET={os.environ['TRITON_INTERPRET']!r} would time Triton's CPU interpreter; unset it")
    try:
        import triton
    except ImportError:
        sys.exit("mode='triton' needs the optional triton package: pip install triton")
    return triton.__version__


def make_inputs(B, T, H, K, V, seed=0):
    """As the GDN layer makes them: unit q and k, g = -softplus(.) <= 0, beta in (0, 1), an fp32 state."""
    gen = torch.Generator("cuda").manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=gen, device="cuda")  # noqa: E731
    xs = [F.normalize(rnd(B, T, H, K), dim=-1), F.normalize(rnd(B, T, H, K), dim=-1), rnd(B, T, H, V),
          -F.softplus(rnd(B, T, H)), torch.sigmoid(rnd(B, T, H)), rnd(B, H, K, V)]
    return [x.requires_grad_(True) for x in xs], [rnd(B, T, H, V), rnd(B, H, K, V)]  # inputs, cotangents


def fwd_bwd(impl, inputs, cotangents, autocast):
    """One call and its backward; returns [o, S, grads...] so a graph keeps them as its outputs."""
    q, k, v, g, beta, s0 = inputs
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        o, s = gated_delta_rule(q, k, v, g, beta, initial_state=s0, output_final_state=True, mode=impl)
    return [o, s, *torch.autograd.grad([o, s], inputs, cotangents)]


def graphed(fn):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # Triton's compilation and the allocator's growth stay outside the capture
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def kernels_per_call(fn):
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def ms_per_call(fn, n):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / n, start.elapsed_time(end) / 1e3


def time_all(fns, args):
    """{name: (median ms, [window ms], timed s)}; the names take turns window by window."""
    calls = {}
    for name, fn in fns.items():
        warm_s, ms = 0.0, None
        while ms is None or warm_s < args.warm_s:
            ms, seconds = ms_per_call(fn, 20)
            warm_s += seconds
        calls[name] = max(20, int(args.seconds / args.windows * 1e3 / ms))  # calls in one window
    windows = {name: [] for name in fns}
    for _ in range(args.windows):
        for name, fn in fns.items():
            windows[name].append(ms_per_call(fn, calls[name]))
    return {name: (statistics.median(m for m, _ in w), [round(m, 4) for m, _ in w], sum(s for _, s in w))
            for name, w in windows.items()}


def max_rel_error(inputs, cotangents, autocast):
    ref, got = (fwd_bwd(impl, inputs, cotangents, autocast) for impl in IMPLS)
    return max(((a.float() - b.float()).norm() / b.float().norm()).item() for a, b in zip(got, ref))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("B", 512), ("T", 24), ("H", 4), ("K", 64), ("V", 64)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--precision", choices=("model", "fp32"), default="model",
                   help="model: bf16 autocast with TF32 on, as training runs; fp32: no autocast, TF32 off")
    p.add_argument("--seconds", type=float, default=10.0, help="steady-state seconds per impl and launch")
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--warm-s", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "gdn_kernel.json")
    args = p.parse_args(argv)
    triton_version = refuse_unless_cuda()

    autocast = args.precision == "model"
    torch.backends.cuda.matmul.allow_tf32 = autocast
    inputs, cotangents = make_inputs(args.B, args.T, args.H, args.K, args.V)
    err = max_rel_error(inputs, cotangents, autocast)
    fns, kernels = {}, {}
    for impl in IMPLS:
        call = lambda impl=impl: fwd_bwd(impl, inputs, cotangents, autocast)  # noqa: E731
        kernels[impl] = kernels_per_call(call)
        fns[(impl, "eager")], fns[(impl, "graph")] = call, graphed(call)
    timed = time_all(fns, args)

    common = dict(B=args.B, T=args.T, H=args.H, K=args.K, V=args.V, precision=args.precision,
                  card=card_name(torch.device("cuda")), torch=torch.__version__, triton=triton_version,
                  python=platform.python_version(), command="python " + " ".join(sys.argv),
                  max_rel_error_vs_chunk=err)
    records = []
    for (impl, launch), (ms, windows, seconds) in timed.items():
        records.append(dict(impl=impl, launch=launch, ms_fwd_bwd=round(ms, 4), windows_ms=windows,
                            timed_s=round(seconds, 2), kernels_per_call=kernels[impl],
                            speedup_vs_chunk=round(timed[("chunk", launch)][0] / ms, 2), **common))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")

    print(f"{common['card']}, torch {torch.__version__}, triton {triton_version}, B={args.B} T={args.T} "
          f"H={args.H} K={args.K} V={args.V}, {args.precision}; triton vs chunk max rel error {err:.1e}")
    print(f"{'impl':7s} {'launch':6s} {'ms fwd+bwd':>10s} {'kernels':>8s} {'speedup':>8s}")
    for r in records:
        print(f"{r['impl']:7s} {r['launch']:6s} {r['ms_fwd_bwd']:10.4f} {r['kernels_per_call']:8d} "
              f"{r['speedup_vs_chunk']:7.2f}x")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
