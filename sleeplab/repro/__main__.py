"""``sleeplab repro run|collect|figures|tables|manifest|list|study`` (also ``python -m sleeplab.repro``):
the reproduction's command (the cells and what each subcommand does: ``sleeplab/repro/cells.py``;
``study``: the recipe study, ``sleeplab/repro/recipes.py``)."""
from __future__ import annotations

import argparse
import sys

from . import cells, recipes, report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:
        return recipes.main(argv[1:], check=cells.cell_config)
    ap = argparse.ArgumentParser(prog="python -m sleeplab.repro", description=cells.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train cells (resumes a run directory that exists)")
    r.add_argument("cells", nargs="+")
    r.add_argument("--out", default="runs")
    r.add_argument("--device", default=None)
    c = sub.add_parser("collect", help="gather finished runs into data/results/curves.json")
    c.add_argument("runs_dir")
    c.add_argument("--out", default="data/results/curves.json")
    c.add_argument("--card", default=None, help="the GPU the runs trained on, as nvidia-smi names it")
    c.add_argument("--commit", default=None, help="the code commit the runs trained with")
    f = sub.add_parser("figures", help="re-draw docs/figures from data/results (no training)")
    f.add_argument("--curves", default="data/results/curves.json")
    f.add_argument("--out", default="docs/figures")
    m = sub.add_parser("manifest", help="checksums and a fresh CPU re-evaluation of data/checkpoints")
    m.add_argument("--dir", default="data/checkpoints")
    m.add_argument("--commit", default=None, help="the code commit of checkpoints that record none")
    m.add_argument("--eval-size", type=int, default=None,
                   help="examples per measurement (default: enough for a 0.4-point standard error)")
    m.add_argument("--card", default="NVIDIA H200", help="the GPU the new checkpoints trained on")
    m.add_argument("--remeasure", action="store_true",
                   help="measure again the checkpoints listed with another sample size (default: keep them)")
    t = sub.add_parser("tables", help="print the reproduction's tables from data/results")
    t.add_argument("--curves", default="data/results/curves.json")
    sub.add_parser("list", help="list the cells")
    sub.add_parser("study", help="the recipe study: plan|queue|status (see sleeplab.repro.recipes)")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        cells.run(args.cells, args.out, args.device)
    elif args.cmd == "figures":
        from . import render  # plotly: not needed to train (GPU images may lack it)
        for path in render.draw(args.curves, args.out):
            print("wrote", path)
    elif args.cmd == "tables":
        report.tables(args.curves)
    elif args.cmd == "manifest":
        print("wrote", cells.manifest(args.dir, args.eval_size, card=args.card, commit=args.commit,
                                                remeasure=args.remeasure))
    elif args.cmd == "collect":
        cells.collect(args.runs_dir, args.out, args.card, args.commit)
    else:
        for name, cfg in cells.CELLS.items():
            print(f"{name:34s} {cfg.preset:18s} tokens={cfg.tokens} task={cfg.task_args} model={cfg.model_args}")


if __name__ == "__main__":
    sys.exit(main())
