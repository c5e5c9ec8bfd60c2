"""The lessons (lessons/*.ipynb): they run, they are committed executed, and what they cite exists.

Three tests per notebook, each parametrized so that a failing lesson is named:

- ``test_lesson_runs``: executes the notebook top to bottom in a fresh kernel with ``TINYSPIKE_FAST=1``
  (the lessons shrink their data and training) and the working directory a temporary folder, so a
  lesson that writes files cannot litter the repository. Any cell that raises fails the test, and
  the lessons' own ``assert`` cells are their checks. The fast run must take at most 90 s (the
  lessons' budget: all fourteen must fit in 10 minutes).
- ``test_lesson_is_committed_executed``: every code cell has an execution count and outputs were
  kept, none is an error, exercises ship their answers in cells tagged ``solution`` (collapsed),
  so a reader sees results without running anything and CI exercises the checks.
- ``test_lesson_citations_exist``: every ``tinyspike/...py`` path named in a cell exists, and every
  citation ``tinyspike/path.py::Name`` (or ``::Class.method``) names something defined in that
  file (lessons/README.md, "Citing the library").
"""

from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parent.parent
LESSONS = REPO / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
FAST_BUDGET_S = 90.0

# A library path anywhere in a cell, and a citation: path::Name or path::Class.attribute.
PATH_PATTERN = re.compile(r"tinyspike/[\w/]+\.py")
CITATION_PATTERN = re.compile(r"(tinyspike/[\w/]+\.py)::([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _ids(paths):
    return [p.stem for p in paths]


def test_lessons_exist():
    # An empty glob would make every parametrized test below vanish silently.
    assert len(NOTEBOOKS) >= 3, f"expected lessons in {LESSONS}, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_lesson_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits this process's environment: fast mode, and tinyspike importable from the
    # checkout even where it is not installed.
    monkeypatch.setenv("TINYSPIKE_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    before = sorted(p.name for p in LESSONS.iterdir())
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    seconds = time.perf_counter() - start
    assert seconds <= FAST_BUDGET_S, f"{path.name} took {seconds:.0f} s in fast mode (budget {FAST_BUDGET_S:.0f} s)"
    assert sorted(p.name for p in LESSONS.iterdir()) == before, f"{path.name} wrote into lessons/"


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_lesson_is_committed_executed(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    for number, cell in enumerate(cells):
        where = f"{path.name}, code cell {number}: {cell.source[:60]!r}"
        assert cell.execution_count is not None, f"{where} was not executed"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, f"{where} has an error output: {errors[0].get('ename')}"
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not run top to bottom in one kernel: {counts}"
    images = [out for cell in cells for out in cell.outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} carries no plot"

    solutions = [cell for cell in cells if "solution" in cell.metadata.get("tags", [])]
    assert 2 <= len(solutions) <= 3, f"{path.name}: expected 2-3 exercise solutions, found {len(solutions)}"
    for cell in solutions:
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{path.name}: solution cell not collapsed"
    assert path.stat().st_size < 1_500_000, f"{path.name} is {path.stat().st_size} bytes (limit 1.5 MB)"


def _defined_names(tree) -> dict[str, ast.AST]:
    """Top-level names a module defines: functions, classes, assignments and imports."""
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def _defines(tree, dotted: str) -> bool:
    """Whether ``dotted`` (``Name`` or ``Class.member``...) is defined in the module ``tree``."""
    parts = dotted.split(".")
    scope = tree
    for position, part in enumerate(parts):
        if position > 0 and not isinstance(scope, ast.ClassDef):
            return False  # only classes have members we can follow
        names = _defined_names(scope)
        if part not in names:
            return False
        scope = names[part]
    return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_lesson_citations_exist(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    paths = set(PATH_PATTERN.findall(text))
    citations = set(CITATION_PATTERN.findall(text))
    assert citations, f"{path.name} cites no library code (use `tinyspike/<file>.py::<Name>`)"
    missing = sorted(p for p in paths if not (REPO / p).is_file())
    assert not missing, f"{path.name} names files that do not exist: {missing}"
    trees = {p: ast.parse((REPO / p).read_text(encoding="utf-8")) for p in paths}
    undefined = sorted(f"{p}::{name}" for p, name in citations if not _defines(trees[p], name))
    assert not undefined, f"{path.name} cites names not defined in those files: {undefined}"


def test_citation_checker_rejects_what_does_not_exist():
    # The checker itself: a real citation passes, a misspelt one and a member of a function fail.
    tree = ast.parse((REPO / "tinyspike/functional/lif.py").read_text(encoding="utf-8"))
    assert _defines(tree, "LIFFunction") and _defines(tree, "LIFFunction.backward") and _defines(tree, "lif")
    assert not _defines(tree, "LIFFunctoin")
    assert not _defines(tree, "LIFFunction.nonexistent")
    assert not _defines(tree, "lif.something")
    assert CITATION_PATTERN.findall("see `tinyspike/nn/layers.py::LIF` and tinyspike/ops.py") == [
        ("tinyspike/nn/layers.py", "LIF")
    ]
