"""The cells of our reproduction of the paper's claims, and the code that runs them.

Every shipped curve in ``data/results/curves.json`` and checkpoint in ``data/checkpoints/`` names the
cell it came from; ``python -m sleeplab.reproduce run CELL [CELL ...]`` re-runs any of them from
scratch (GPU strongly advised: the paper's model at batch 512), and ``python -m sleeplab.reproduce
collect RUNS_DIR`` gathers finished runs into ``data/results/curves.json``.

Settings shared by every cell: the paper's Rule 110 model (4 blocks attn/GDN/attn/GDN, d = 256,
L = 24, T = 100), batch 512, Muon 2e-3 on hidden matrices as in the paper, AdamW 1e-3 on the rest
(the paper's 5e-5 trained far slower in ``measurements.md``; a deliberate deviation), 100 warm-up
steps, bf16 on GPU, one seed unless the cell name says otherwise, equal token budgets across N.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from .train.config import TrainConfig

PAPER_MODEL = {"d_model": 256, "n_heads": 4}
COMMON = dict(task="rule110", batch_size=512, muon_lr=2e-3, adam_lr=1e-3, warmup_steps=100,
              eval_every=200, eval_size=2048, device="cuda", fast=True)


def _cell(t: int, n: int | None = None, tokens: str = "100M", preset: str = "sleep", seed: int = 0,
          **model_args) -> TrainConfig:
    if n is not None:
        model_args["n_sleep"] = n
    return TrainConfig(**COMMON, task_args={"t": t}, preset=preset, model_args={**PAPER_MODEL, **model_args},
                       tokens=tokens, seed=seed)


CELLS: dict[str, TrainConfig] = {
    # depth x sleep at an equal token budget (N = 1 is the paper's no-loop hybrid)
    **{f"rule110-t{t}-n{n}": _cell(t, n) for t in (8, 12) for n in (1, 2, 4)},
    # "more compute" control: N = 1 with 4x the tokens of the N = 4 cell
    "rule110-t12-n1-x4tokens": _cell(12, 1, tokens="400M"),
    # controls the paper did not run
    "rule110-t8-transformer-evict": _cell(8, tokens="20M", preset="transformer-evict"),
    "rule110-t8-transformer-full": _cell(8, tokens="50M", preset="transformer-full"),
    # one checkpoint for every N: N ~ U{1..4} per batch, input re-injected every pass
    **{f"rule110-t{t}-nvar": _cell(t, tokens="150M", n_sleep_range=(1, 4), reinject_input=True)
       for t in (8, 12)},
}


def run(names: list[str], out_root: str, device: str | None = None) -> None:
    from .train import train
    unknown = [n for n in names if n not in CELLS]
    if unknown:
        raise ValueError(f"unknown cells {unknown}; allowed: {sorted(CELLS)}")
    for name in names:
        cfg = CELLS[name]
        changes = {"out": str(Path(out_root) / name)}
        if device is not None:
            changes["device"] = device
        train(replace(cfg, **changes), resume=(Path(out_root) / name).exists())


def collect(runs_dir: str, out: str = "data/results/curves.json", card: str | None = None) -> None:
    """Merge every run's metrics.jsonl under ``runs_dir`` into one JSON list of curves."""
    from .train.module import DONE, METRICS
    path = Path(out)
    curves = {c["cell"]: c for c in (json.loads(path.read_text()) if path.exists() else [])}
    for run_dir in sorted(Path(runs_dir).iterdir()):
        metrics = run_dir / METRICS
        if run_dir.name not in CELLS or not metrics.exists():
            continue
        points = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        curves[run_dir.name] = {"cell": run_dir.name, "config": CELLS[run_dir.name].to_dict(), "card": card,
                                "done": (run_dir / DONE).exists(),
                                "points": points}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(curves.values(), key=lambda c: c["cell"]), indent=1) + "\n")


def _screenshot(fig, png: Path, width=900, height=520) -> bool:
    """plotly figure -> PNG through headless Chromium (no kaleido needed); False when Chromium is absent."""
    import shutil
    import subprocess
    import tempfile
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "fig.html"
        fig.update_layout(width=width, height=height, margin=dict(l=60, r=20, t=60, b=50))
        fig.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp}/u",
                        "--hide-scrollbars", f"--window-size={width + 20},{height + 20}",
                        f"--screenshot={png.resolve()}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    return png.exists()


def figures(curves_path: str = "data/results/curves.json", out_dir: str = "docs/figures") -> list[Path]:
    """Re-draw the results figures of docs/results.md from the shipped curves (no training)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .tasks import get_task
    curves = {c["cell"]: c for c in json.loads(Path(curves_path).read_text())}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = {1: "#636efa", 2: "#ef553b", 4: "#00cc96"}
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"Rule 110, t = {t}" for t in (8, 12)])
    for col, t in enumerate((8, 12), start=1):
        for n in (1, 2, 4):
            c = curves.get(f"rule110-t{t}-n{n}")
            if c:
                fig.add_scatter(x=[p["tokens"] / 1e6 for p in c["points"]], y=[p["exact"] for p in c["points"]],
                                name=f"N = {n}", legendgroup=str(n), showlegend=col == 1,
                                line=dict(color=colors[n]), row=1, col=col)
        base = get_task("rule110").baselines(get_task("rule110").Config(t=t))
        fig.add_hline(y=base["majority"], line_dash="dot", line_color="gray", row=1, col=col,
                      annotation_text="best input-blind guess", annotation_position="top left")
    ctrl = curves.get("rule110-t12-n1-x4tokens")
    if ctrl:
        fig.add_scatter(x=[p["tokens"] / 1e6 for p in ctrl["points"]], y=[p["exact"] for p in ctrl["points"]],
                        name="N = 1, 4x tokens", line=dict(color=colors[1], dash="dash"), row=1, col=2)
    fig.update_xaxes(title_text="training tokens (M)")
    fig.update_yaxes(title_text="held-out exact accuracy", range=[0, 1])
    fig.update_layout(title="Sleep passes N at an equal token budget (one seed, H200)")
    paths = []
    if _screenshot(fig, out / "rule110_depth_sleep.png", width=1100):
        paths.append(out / "rule110_depth_sleep.png")
    return paths


def manifest(ckpt_dir: str = "data/checkpoints", eval_size: int = 1024, seed: int = 20261126,
             card: str = "NVIDIA H200") -> Path:
    """Write ``MANIFEST.json`` beside the shipped checkpoints: where each came from, its checksum, the
    held-out accuracy at the end of training, and a re-evaluation on a FRESH held-out set (another
    seed of the reserved evaluation partition) on this machine's CPU."""
    import hashlib

    import torch

    from . import load
    from .api import evaluate
    from .train.checkpoint import read_manifest
    entries = []
    for path in sorted(Path(ckpt_dir).glob("*.sleeplab")):
        info = read_manifest(path)
        model = load(path)
        from .tasks import get_task
        task = get_task(info["task"])
        batch = task.make_batch(task.Config(**info["task_config"]), eval_size,
                                torch.Generator().manual_seed(seed), split="eval")
        n = info["model_config"]["n_sleep"]
        with torch.no_grad():
            fresh = evaluate(model, batch, n_sleep=n)
        entries.append({
            "file": path.name, "cell": path.stem, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "command": f"python -m sleeplab.reproduce run {path.stem}", "card": card,
            "tokens": info["tokens"], "n_sleep": n, "task_config": info["task_config"],
            "model_config": info["model_config"], "code": info["code"],
            "heldout_at_training_end": info["metrics"],
            "fresh_cpu_eval": {"examples": eval_size, "seed": seed, "exact": fresh["exact"],
                               "per_label": fresh["per_label"]},
        })
        print(path.name, info["metrics"]["exact"], fresh["exact"], flush=True)
    out = Path(ckpt_dir) / "MANIFEST.json"
    out.write_text(json.dumps(entries, indent=1) + "\n")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sleeplab.reproduce", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train cells (resumes a run directory that exists)")
    r.add_argument("cells", nargs="+")
    r.add_argument("--out", default="runs")
    r.add_argument("--device", default=None)
    c = sub.add_parser("collect", help="gather finished runs into data/results/curves.json")
    c.add_argument("runs_dir")
    c.add_argument("--out", default="data/results/curves.json")
    c.add_argument("--card", default=None)
    f = sub.add_parser("figures", help="re-draw docs/figures from data/results (no training)")
    f.add_argument("--curves", default="data/results/curves.json")
    f.add_argument("--out", default="docs/figures")
    m = sub.add_parser("manifest", help="checksums and a fresh CPU re-evaluation of data/checkpoints")
    m.add_argument("--dir", default="data/checkpoints")
    m.add_argument("--eval-size", type=int, default=1024)
    sub.add_parser("list", help="list the cells")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.cells, args.out, args.device)
    elif args.cmd == "figures":
        for path in figures(args.curves, args.out):
            print("wrote", path)
    elif args.cmd == "manifest":
        print("wrote", manifest(args.dir, args.eval_size))
    elif args.cmd == "collect":
        collect(args.runs_dir, args.out, args.card)
    else:
        for name, cfg in CELLS.items():
            print(f"{name:34s} {cfg.preset:18s} tokens={cfg.tokens} task={cfg.task_args} model={cfg.model_args}")


if __name__ == "__main__":
    sys.exit(main())
