"""The package's shape: a core that never imports training, reproduction or notebook helpers, no import
cycles, few top-level modules, small files, and no comment that points outside the repository."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sleeplab"
EDGES = ("sleeplab.train", "sleeplab.repro", "sleeplab.lab")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every sleeplab module ``path`` imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sleeplab")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("sleeplab"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def is_core(name: str) -> bool:
    return not any(name == e or name.startswith(e + ".") for e in EDGES)


def test_core_never_imports_train_repro_or_lab():
    bad = {m: sorted(d for d in deps if not is_core(d)) for m, deps in graph().items() if is_core(m)}
    assert not {m: d for m, d in bad.items() if d}


def test_importing_the_core_loads_no_training_reproduction_or_notebook_module():
    code = ("import sys, sleeplab, sleeplab.checkpoint, sleeplab.streaming, sleeplab.tasks; "
            "print(sorted(m for m in sys.modules if m.startswith(('sleeplab.train', 'sleeplab.repro', "
            "'sleeplab.lab', 'lightning'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_reading_run_directories_does_not_load_lightning():
    code = ("import sys, sleeplab.repro.cells, sleeplab.train.checkpoint; "
            "print([m for m in sys.modules if m.startswith('lightning')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_training_and_the_runner_start_without_the_notebook_stack():
    """GPU images carry torch and Lightning but not plotly or ipywidgets: the commands that train must
    not load them (a runner that did died at start on one, and cost a lease)."""
    code = ("import sys; from sleeplab.repro.__main__ import main; main(['list']); import sleeplab.train.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'ipywidgets')), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_no_import_cycles():
    deps, state, cycles = graph(), {}, []

    def visit(m, path):
        state[m] = "open"
        for d in sorted(deps.get(m, ())):
            # a package's own __init__ importing its submodules is how packages work, not a cycle
            if d.startswith(m + "."):
                continue
            if state.get(d) == "open":
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(deps):
        if m not in state:
            visit(m, [m])
    assert not cycles


def test_at_most_12_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_no_file_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long


OUTSIDE = re.compile(r"measurements\.md|ecosystem\.md|tasks\.md|design\.md|anchors\.md|issue #\d|shared/reference|paper\.md")


def test_no_comment_points_outside_repo():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
             ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "notebooks").rglob("*.ipynb")]
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files if p != Path(__file__)
            for i, line in enumerate(p.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits
    # and every docs/ or sleeplab/ file a doc names exists
    named = {m for p in files for m in re.findall(r"(?:docs|sleeplab)/[\w/]+\.(?:py|md)", p.read_text())}
    assert not [n for n in named if not (ROOT / n).exists()]
