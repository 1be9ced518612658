"""Student copies of the assignments, without the answers:

    python -m sleeplab.lab.grading.release OUT_DIR [--source notebooks/assignments]

copies every assignment notebook (``*.ipynb`` directly in the source folder, never ``solutions/``) into
OUT_DIR with outputs and execution counts cleared, and refuses to write anything if a code cell of any of
them contains a line of a reference solution's function bodies (an instructor's solved copy saved over an
assignment, say). The graders ship inside sleeplab, so the copies need nothing else.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "notebooks" / "assignments"
MIN_LINE = 20  # shorter lines ("return kept", "S = S + ...") also occur in honest notebooks


def solution_lines(solutions: Path) -> dict[str, str]:
    """{stripped line: file} for every statement line inside a function of solutions/*.py, comments cut."""
    lines = {}
    for path in sorted(solutions.glob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef):
                body = text.splitlines()[node.body[0].lineno - 1:node.end_lineno]
                for line in body:
                    code = line.split("#", 1)[0].strip()
                    if len(code) >= MIN_LINE and not code.startswith(('"""', "'''")):
                        lines[code] = path.name
    return lines


def leaks(notebook, lines: dict[str, str]) -> list[str]:
    """Lines of ``notebook``'s code cells that are lines of a solution, as 'cell i: line (from file)'."""
    found = []
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            code = line.split("#", 1)[0].strip()
            if code in lines:
                found.append(f"cell {i}: {code!r} (from solutions/{lines[code]})")
    return found


def release(out_dir: Path, source: Path = DEFAULT_SOURCE) -> list[Path]:
    """Write the student copies; returns their paths. ValueError naming the problem, before writing."""
    source, out_dir = Path(source).resolve(), Path(out_dir).resolve()
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no assignment notebooks (*.ipynb) in {source}")
    if out_dir == source or source in out_dir.parents:
        raise ValueError(f"OUT_DIR {out_dir} is inside the source folder {source}: write the copies elsewhere")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"OUT_DIR {out_dir} is not empty: give a new or empty folder")
    lines = solution_lines(source / "solutions")
    copies = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        found = leaks(notebook, lines)
        if found:
            raise ValueError(f"{path.name} contains reference-solution code, not released:\n  " + "\n  ".join(found))
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        copies.append((out_dir / path.name, notebook))
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, notebook in copies:
        nbformat.write(notebook, target)
    return [target for target, _ in copies]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sleeplab.lab.grading.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="a new or empty folder for the student copies")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"assignments folder (default {DEFAULT_SOURCE})")
    args = parser.parse_args(argv)
    try:
        written = release(args.out_dir, args.source)
    except ValueError as err:
        print(f"release: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} student notebooks (no solutions) to {args.out_dir}:")
    for path in written:
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
