"""Run the notebook series top to bottom, as a user would (a Jupyter kernel, every cell in order), and
record per notebook: wall time, pass or the failing cell's error, and the device line the notebook
printed ("running on ..."). Writes data/results/notebooks.json (one record per notebook and card).

    python benchmarks/notebooks.py                               # every notebook
    python benchmarks/notebooks.py notebooks/04_sleep.ipynb --executed-dir /tmp/nb

This is how we check that the notebooks use a GPU with no edits: run it on a GPU machine and read
the device lines. CI runs the same notebooks on CPU under ``pytest --nbval-lax``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sleeplab import device as dev  # noqa: E402


def device_lines(nb) -> list[str]:
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            lines += [line for line in text.splitlines() if line.startswith("running on")]
    return lines


def run_one(path: Path, timeout: int, executed_dir: Path | None) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip()[-2000:]  # the failing cell's traceback, its end
    seconds = time.perf_counter() - start
    if executed_dir is not None:
        executed_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed_dir / path.name)
    return dict(notebook=str(path.relative_to(ROOT)), passed=error is None, error=error, wall_s=round(seconds, 1),
                device_lines=device_lines(nb))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=900, help="seconds a cell may take")
    ap.add_argument("--executed-dir", type=Path, help="also save the executed notebooks here")
    ap.add_argument("--out", type=Path, default=ROOT / "data/results/notebooks.json")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    device = dev.pick_device()
    common = dict(device=device.type, card=dev.card_name(device), python=platform.python_version(),
                  command="python " + " ".join(sys.argv))
    records = []
    for path in paths:
        rec = {**run_one(path, args.timeout, args.executed_dir), **common}
        print(json.dumps(rec), flush=True)
        records.append(rec)
    key = lambda r: (r["notebook"], r["card"])  # noqa: E731
    old = json.loads(args.out.read_text()) if args.out.exists() else []
    fresh = {key(r) for r in records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([r for r in old if key(r) not in fresh] + records, indent=1) + "\n")
    return 0 if all(r["passed"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
