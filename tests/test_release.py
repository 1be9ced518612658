"""Student copies of the assignments carry no solution: `python -m sleeplab.lab.grading.release`."""
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sleeplab.lab.grading import release

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"


def test_release_copies_every_assignment_and_no_solution_code(tmp_path):
    out = tmp_path / "students"
    done = subprocess.run([sys.executable, "-m", "sleeplab.lab.grading.release", str(out), "--source", str(ASSIGNMENTS)],
                          capture_output=True, text=True, check=True)
    assert "wrote 4 student notebooks" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ASSIGNMENTS.glob("*.ipynb"))
    lines = release.solution_lines(ASSIGNMENTS / "solutions")
    assert len(lines) > 20                                         # the marker set is not trivially empty
    text = "\n".join(p.read_text() for p in out.iterdir())
    assert not [line for line in lines if line in text]
    assert text.count("# YOUR CODE HERE") >= 4


def _copy_with_cell_edited(tmp_path, name: str, marker: str, edit):
    """A copy of the assignments folder in which ``edit(cell)`` changed the first cell of ``name``
    whose source holds ``marker``."""
    source = tmp_path / "assignments"
    shutil.copytree(ASSIGNMENTS, source)
    path = source / name
    notebook = nbformat.read(path, as_version=4)
    edit(next(c for c in notebook.cells if marker in c.source))
    nbformat.write(notebook, path)
    return source


def test_a_solved_assignment_is_refused_and_nothing_is_written(tmp_path):
    solution = (ASSIGNMENTS / "solutions" / "sliding_eviction.py").read_text()
    source = _copy_with_cell_edited(tmp_path, "03_sliding_eviction.ipynb", "# YOUR CODE HERE",
                                    lambda cell: setattr(cell, "source", solution))
    with pytest.raises(ValueError, match=r"03_sliding_eviction.ipynb contains reference-solution code"):
        release.release(tmp_path / "out", source)
    assert not (tmp_path / "out").exists()


def test_outputs_are_cleared_in_student_copies(tmp_path):
    def instructors_run(cell):
        cell.outputs = [nbformat.v4.new_output("stream", text="✅ an instructor's run")]
        cell.execution_count = 7

    source = _copy_with_cell_edited(tmp_path, "01_gated_delta_rule.ipynb", "grading.check_", instructors_run)
    release.release(tmp_path / "out", source)
    copy = nbformat.read(tmp_path / "out" / "01_gated_delta_rule.ipynb", as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in copy.cells if c.cell_type == "code")


@pytest.mark.parametrize("where, message", [("inside", "is inside the source folder"), ("nonempty", "is not empty")])
def test_bad_output_folders_are_refused_by_name(tmp_path, where, message):
    out = ASSIGNMENTS / "x" if where == "inside" else tmp_path
    (tmp_path / "already").write_text("")
    with pytest.raises(ValueError, match=message):
        release.release(out, ASSIGNMENTS)
