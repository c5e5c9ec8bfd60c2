"""The documentation that can be checked: docs/gradients.md's references and the docstrings' examples.

docs/gradients.md lists every Function with a ``path:line`` reference; a reference must point at
the line of ``class <Name>`` in that file (regenerated here from the source, so a moved class
fails loudly with the line to write), and every ``Function`` subclass in ``tinyspike/`` must have
a row. The ``Example::`` blocks (doctest format) in the docstrings run as doctests.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GRADIENTS = ROOT / "docs" / "gradients.md"
# a table row: | `Name` | ... | `path/to/file.py:123` |
ROW = re.compile(r"^\|\s*`(?P<name>\w+)`\s*\|.*\|\s*`(?P<path>[\w/]+\.py):(?P<line>\d+)`\s*\|\s*$")
# the classes whose docstrings must carry a runnable example (issue 12): module -> class names
MUST_HAVE_EXAMPLES = {"tinyspike.nn.layers": ("LIF", "Conv2d", "TDBatchNorm"), "tinyspike.models.blocks": ("MSBlock",)}


def gradient_rows() -> list[tuple[str, str, int]]:
    rows = [ROW.match(line) for line in GRADIENTS.read_text(encoding="utf-8").splitlines()]
    return [(m["name"], m["path"], int(m["line"])) for m in rows if m]


def class_lines(path: Path) -> dict[str, int]:
    """Line of every class statement in ``path``, by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name: node.lineno for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


def function_subclasses() -> dict[str, str]:
    """Every class in tinyspike/ whose bases name ``Function`` (``Function`` or ``autograd.Function``)."""
    found = {}
    for path in sorted((ROOT / "tinyspike").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Name) and b.id == "Function") or (isinstance(b, ast.Attribute) and b.attr == "Function")
                for b in node.bases
            ):
                found[node.name] = path.relative_to(ROOT).as_posix()
    return found


def test_gradients_md_has_rows():
    rows = gradient_rows()
    assert len(rows) >= 25, f"docs/gradients.md: expected a row per Function, parsed only {len(rows)}"
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)), "docs/gradients.md: a Function has two rows"


def test_gradients_md_references_point_at_the_class():
    wrong = []
    for name, path, line in gradient_rows():
        file = ROOT / path
        if not file.is_file():
            wrong.append(f"{name}: {path} does not exist")
            continue
        actual = class_lines(file).get(name)
        if actual is None:
            wrong.append(f"{name}: {path} has no class {name}")
        elif actual != line:
            wrong.append(f"{name}: `{path}:{line}` should be `{path}:{actual}` (the line of `class {name}`)")
    assert not wrong, "docs/gradients.md is out of date:\n" + "\n".join(wrong)


def test_every_function_has_a_row():
    documented = {name: path for name, path, _ in gradient_rows()}
    missing = {name: path for name, path in function_subclasses().items() if name not in documented}
    assert not missing, f"Functions without a row in docs/gradients.md: {missing}"
    moved = {name: (documented[name], path) for name, path in function_subclasses().items() if documented[name] != path}
    assert not moved, f"docs/gradients.md names the wrong file (doc, source): {moved}"


def modules_with_examples() -> list[str]:
    """The modules whose source holds a doctest prompt, plus those that must have examples."""
    names = set(MUST_HAVE_EXAMPLES)
    for path in (ROOT / "tinyspike").rglob("*.py"):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    state = np.random.get_state()
    for test in tests:
        runner.run(test)
    np.random.set_state(state)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{module_name}: {results.failed} of {results.attempted} doctest examples failed"
    have = {t.name.rsplit(".", 1)[-1] for t in tests}
    needed = set(MUST_HAVE_EXAMPLES.get(module_name, ()))
    assert needed <= have, f"{module_name}: no runnable Example:: block in {sorted(needed - have)}"
