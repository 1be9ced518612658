"""How far apart two training runs of the paper's model end when they differ only by rounding, and when
they differ by a small real change: the scale the GPU suite's graph-against-eager tests must tell apart.

    python benchmarks/step_noise.py                 # CPU (or --device cuda) -> data/results/step_noise.json

Each run is ``steps`` eager steps of the GPU suite's own helper (``tests/step_runs.py``: the paper's model,
Muon + AdamW, the same batches). Measured against the unperturbed run, as the tests measure: the relative
gap of the weights (||a - b|| / how far b moved) and the largest relative difference of a step's loss, for
(i) the weights perturbed by a relative 1e-7, 1e-6 or 1e-5 before training (rounding-level differences,
as reordered sums make them) or 1e-3 (the size of one bf16 rounding, 2^-9: the scale of bf16 autocast's
differences) and (ii) both learning rates 5 % and 10 % higher (the smallest real change the
tests' yardstick stands for).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the GPU suite's runs, so this measures what its tests compare

from sleeplab.device import card_name, pick_device  # noqa: E402
from step_runs import BATCH, loss_gap, paper_model, perturb, relative_gap, train_steps, weights  # noqa: E402

PERTURBATIONS = (1e-7, 1e-6, 1e-5, 1e-3)
RATES = (1.05, 1.10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-sleep", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "results" / "step_noise.json")
    args = ap.parse_args(argv)
    device = pick_device(args.device).type
    run = lambda model, rate=1.0: train_steps(model, False, args.precision, args.steps, rate=rate,  # noqa: E731
                                               size=args.batch_size)
    start = weights(paper_model(args.n_sleep, device=device))
    ref_losses, ref = run(paper_model(args.n_sleep, device=device))
    rows = []
    for change, model, rate in ([(f"weights x (1 + {eps:g} noise)", perturb(paper_model(args.n_sleep, device=device), eps), 1.0)
                                 for eps in PERTURBATIONS]
                                + [(f"both rates x {r:g}", paper_model(args.n_sleep, device=device), r) for r in RATES]):
        losses, end = run(model, rate)
        rows.append({"change": change, "weight_gap": relative_gap(end, ref, start),
                     "max_loss_rel": loss_gap(losses, ref_losses)})
        print(f"{change:30s} weight gap {rows[-1]['weight_gap']:.4f}  largest loss difference {rows[-1]['max_loss_rel']:.2e}",
              flush=True)
    record = {"device": device, "card": card_name(torch.device(device)), "n_sleep": args.n_sleep,
              "steps": args.steps, "batch_size": args.batch_size, "precision": args.precision, "rows": rows,
              "torch": torch.__version__, "python": platform.python_version(),
              "command": "python benchmarks/step_noise.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.write_text(json.dumps([record], indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
