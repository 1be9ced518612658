"""The inside-sleep diagnostic of :mod:`sleeplab.lab.probe` on the shipped per-N checkpoints, as a
result file and a figure:

    python -m sleeplab.lab.probe_report     # -> data/results/probes.json, docs/figures/probes_per_n.png
    python -m sleeplab.lab.probe_report --draw        # re-draw the figure from the JSON alone
    python -m sleeplab.lab.probe_report --reader mlp  # one-hidden-layer probes -> probes_mlp.json
    python -m sleeplab.lab.probe_report --reader mlp --draw --source h    # its h probe's figure

Per checkpoint and sleep pass n: the pass trace (h RMS, token cosine, relative change of S; mean over
the sleeping windows of a fixed held-out batch) and the probe table (h and S probe accuracy per pass
and CA step k, their standard errors, the majority baseline per k). Everything runs on the CPU, so
the numbers do not depend on a GPU's kernels.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..device import card_name
from ..tasks import held_out
from . import probe

# same depth, same recipe, only N differs within each group: the models the diagnostic compares. At
# t = 12: N = 4 seed 0 at 250 M tokens, then the 400 M-token runs of the verdict (N = 4 ahead of every
# N = 1 seed; N = 1 is seed 1, 50 M tokens more) with N = 2 (seed 0) between them
PER_N = ("rule110-t8-n1-41M", "rule110-t8-n2-41M", "rule110-t8-n4-41M", "study-t12-n4-paper-s0",
         "study-t12-n1-paper-s1-400M", "study-t12-n2-paper-s0-400M", "study-t12-n4-paper-s0-400M")
COMMAND = "python -m sleeplab.lab.probe_report"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "results" / "probes.json"
FIGURE = ROOT / "docs" / "figures" / "probes_per_n.png"
# where each reader's report and figure go unless told: the linear report keeps its old names
OUTS = {"linear": OUT, "mlp": OUT.with_name("probes_mlp.json")}
FIGURES = {("linear", "S"): FIGURE, ("linear", "h"): FIGURE.with_name("probes_h_per_n.png"),
           ("mlp", "S"): FIGURE.with_name("probes_mlp_per_n.png"),
           ("mlp", "h"): FIGURE.with_name("probes_mlp_h_per_n.png")}
MIN_EXAMPLES = 8        # a quarter of them score the probes: fewer leaves a test split of one example


def check_names(names) -> list[str]:
    bad = [n for n in names if n not in PER_N]
    if bad or not names:
        raise ValueError(f"not a per-N checkpoint of the report: {bad or 'none given'}; allowed: {list(PER_N)}")
    return list(names)


READER_NAMES = {"linear": "a linear probe", "mlp": "a one-hidden-layer probe"}
SOURCES = ("S", "h")    # what the report probes, and what its figure can show


def _rounded(x, digits: int = 4):
    return torch.as_tensor(x).double().round(decimals=digits).tolist()


@torch.no_grad()
def measure(model, n_examples: int = 512, trace_examples: int = 64, seed: int = 0,
            reader: str = "linear") -> dict:
    """One model's entry: the trace on the first ``trace_examples`` held-out examples (every per-pass
    list has N entries) and :func:`probe.probe_cells` on ``n_examples`` (every table N x (t+1))."""
    if n_examples < MIN_EXAMPLES or trace_examples < 1:
        raise ValueError(f"need n_examples >= {MIN_EXAMPLES} and trace_examples >= 1; "
                         f"got n_examples={n_examples}, trace_examples={trace_examples}")
    N, config = model.config.n_sleep, model.task_config
    start = time.perf_counter()
    trace = probe.pass_trace(model, held_out("rule110", config, trace_examples).tokens.to(model.device), N)
    # window 0's first pass starts from an empty S and has no relative change: nanmean leaves it out
    entry = {"t": config.t, "n_sleep": N, "h_rms": _rounded(trace["h_rms"].mean(0)),
             "token_cos": _rounded(trace["token_cos"].mean(0)),
             "s_change": _rounded(trace["s_change"].nanmean((0, 2))),
             "s_norm": _rounded(trace["s_norm"].mean((0, 2)), 2)}
    table = probe.probe_cells(model, n_examples, N, seed=seed, reader=reader)
    keys = ("h", "S", "h_se", "S_se", "h_cells", "S_cells", "majority")
    entry["probe"] = {k: _rounded(table[k]) for k in keys} | {"test_windows": table["test_windows"]}
    entry["wall_s"] = round(time.perf_counter() - start, 1)
    return entry


def _commit() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--", "sleeplab"))}


def build(names=PER_N, n_examples: int = 512, trace_examples: int = 64, seed: int = 0,
          command: str = COMMAND, load=None, reader: str = "linear") -> dict:
    """The report over ``names`` (checked before anything loads); ``load(name)`` gives a model on the
    CPU (default: the shipped checkpoint)."""
    from ..repro.results import data_dir, load_model
    from ..repro.tables import shipped_table
    names, reader = check_names(names), probe.check_reader(reader)   # both before anything loads
    load = load or (lambda name: load_model(name, device="cpu"))
    stated = {r["cell"]: r["stated"] for r in shipped_table(data_dir() / "checkpoints" / "MANIFEST.json")}
    start = time.perf_counter()
    report = {"command": command, **_commit(), "torch": torch.__version__, "device": "cpu",
              "card": card_name(torch.device("cpu")), "threads": torch.get_num_threads(),
              "n_examples": n_examples, "trace_examples": trace_examples, "probe_seed": seed,
              "reader": reader,
              "standard_error": "h_se, S_se: of the mean over cells, over the probe.test_windows (a "
                                "quarter of n_examples, n_states windows each); one cell of h_cells or "
                                "S_cells: binomial over the same windows, sqrt(p (1 - p) / test_windows). "
                                "The error of scoring the probe, not of fitting it",
              "checkpoints": {}}
    for name in names:
        entry = measure(load(name), n_examples, trace_examples, seed, reader)
        report["checkpoints"][name] = {"exact_stated_points": stated.get(name), **entry}
        print(f"{name}: {entry['wall_s']:.0f} s", file=sys.stderr)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report


def write(report: dict, path=OUT) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1)
    # a row of numbers on one line: the tables stay readable as N x (t+1) blocks in a diff
    path.write_text(re.sub(r"\[[^\[\]{}\"]*\]", lambda m: re.sub(r"\s+", " ", m[0]).replace("[ ", "[")
                           .replace(" ]", "]"), text) + "\n")
    return path


def read(path=OUT) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; write it with `{COMMAND}`")
    return json.loads(path.read_text())


def figure(report: dict, source: str = "S"):
    """One pass x k heatmap per checkpoint, stacked, each as tall as its N: the held-out accuracy of
    the probe of ``source`` (S or h) minus the majority baseline at that k, in points, on one colour
    scale centred on 0 (below 0: the probe does worse than always guessing the common value)."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: the report probes one of {SOURCES}")
    from plotly.subplots import make_subplots
    entries = report["checkpoints"]
    above = {name: 100 * (torch.tensor(e["probe"][source], dtype=torch.float64)
                          - torch.tensor(e["probe"]["majority"], dtype=torch.float64)) for name, e in entries.items()}
    top = max(float(a.abs().max()) for a in above.values())
    se = max(max(max(row) for row in e["probe"][f"{source}_se"]) for e in entries.values())
    last_k = max(e["t"] for e in entries.values())     # one k axis for all, so columns line up
    rows = [e["n_sleep"] for e in entries.values()]
    gap, row_px = 95, 55                     # pixels between panels (subplot title, k axis) and per pass
    height = 110 + row_px * sum(rows) + gap * (len(rows) - 1) + 50
    fig = make_subplots(rows=len(rows), cols=1, row_heights=rows, vertical_spacing=gap / height,
                        subplot_titles=[f"{name}: t = {e['t']}, N = {e['n_sleep']}, held-out exact {e['exact_stated_points']} %"
                                        for name, e in entries.items()])
    for row, (name, e) in enumerate(entries.items(), 1):
        z = above[name]
        fig.add_heatmap(z=z.tolist(), x=list(range(e["t"] + 1)), y=list(range(1, e["n_sleep"] + 1)),
                        zmin=-top, zmax=top, zmid=0, colorscale="RdBu", showscale=row == 1,
                        colorbar=dict(title="points above<br>majority", len=0.5, y=0.75),
                        text=[[f"{v:+.1f}" for v in r] for r in z.tolist()], texttemplate="%{text}",
                        hovertemplate="pass %{y}, k = %{x}: %{z:+.1f} points<extra></extra>", row=row, col=1)
        fig.update_yaxes(title_text="after pass n", dtick=1, autorange="reversed", row=row, col=1)
        fig.update_xaxes(title_text="CA steps k" + (" after the window's state (accuracy: mean over its cells)" if row == len(rows) else ""),
                         dtick=1, range=[-0.5, last_k + 0.5], row=row, col=1)
    fig.update_layout(template="plotly_white", height=height, title=dict(
        y=0.995, yanchor="top", text=f"Held-out accuracy of {READER_NAMES[report.get('reader', 'linear')]} of "
                                      f"{source} minus the majority, per sleep pass "
                                      f"({report['n_examples']} examples, s.e. <= {100 * se:.1f} points)"))
    return fig


def draw(report: dict, png=FIGURE, source: str = "S") -> Path:
    from ..repro.render import screenshot
    fig = figure(report, source)
    if not screenshot(fig, Path(png), width=1000, height=fig.layout.height):
        raise RuntimeError("no chromium on PATH: the PNG is drawn by headless Chromium")
    return Path(png)


def main(argv=None):
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", nargs="+", default=list(PER_N), help=f"any of {list(PER_N)}")
    p.add_argument("--examples", type=int, default=512, help="held-out examples for the probes")
    p.add_argument("--trace-examples", type=int, default=64, help="held-out examples for the pass trace")
    p.add_argument("--reader", choices=list(probe.READERS), default="linear",
                   help="linear (ridge) probes, or probes with one hidden layer")
    p.add_argument("--out", type=Path, help=f"default: {OUTS['linear'].name} or {OUTS['mlp'].name} by --reader")
    p.add_argument("--figure", type=Path, help="default: docs/figures/probes[_mlp][_h]_per_n.png")
    p.add_argument("--source", choices=SOURCES, default="S", help="the probe the figure shows")
    p.add_argument("--draw", action="store_true", help="only re-draw the figure from --out")
    args = p.parse_args(argv)
    out = args.out or OUTS[args.reader]
    if not args.draw:
        command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])
        print("wrote", write(build(args.checkpoints, args.examples, args.trace_examples, command=command,
                                   reader=args.reader), out))
    print("wrote", draw(read(out), args.figure or FIGURES[args.reader, args.source], args.source))


if __name__ == "__main__":
    sys.exit(main())
