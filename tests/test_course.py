"""The notebooks as a course: every numbered notebook opens with the paper's link, a Colab badge, its
time and what the reader will be able to do, and ends with 3-5 exercises, one of them open; the README
lists every numbered notebook in its learning path."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_with_link_badge_time_and_objectives(path):
    first = markdown(path)[0]
    assert "https://arxiv.org/abs/2605.26099" in first
    assert "colab.research.google.com" in first
    assert re.search(r"\*\*Time: about \d+ minutes\*\*", first)
    assert "**After this notebook you can**" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_three_to_five_exercises_one_open(path):
    last = markdown(path)[-1]
    exercises = last[last.index("## Exercises"):]
    items = re.findall(r"^\d+\. ", exercises, flags=re.M)
    assert 3 <= len(items) <= 5
    assert "**Open question.**" in exercises


def test_readme_learning_path_lists_every_numbered_notebook_with_its_time():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert re.search(rf"\| `{path.stem}`[^\n]*\| \d+ min \|", readme), path.stem
    assert (ROOT / "docs" / "glossary.md").is_file() and "arxiv.org/abs/2605.26099" in readme
