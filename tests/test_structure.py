"""The shape of the source: the readable core fits one sitting, the engine's modules import in any
order, and the Numba kernels load only when a NumPy-backend kernel first runs (issue 12)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The readable core (README, "A map of the source"): the engine, the Functions, the kernel tables
# and the reference kernels. The fast kernels (numba_cpu/, cuda/) and extras/ are not part of it.
CORE = ["tinyspike/backend.py", "tinyspike/autograd.py", "tinyspike/ops.py", "tinyspike/gradcheck.py",
        "tinyspike/functional/*.py", "tinyspike/kernels/__init__.py", "tinyspike/kernels/reference/*.py"]
CORE_LINE_BUDGET = 2500


def core_files():
    return sorted(path for pattern in CORE for path in ROOT.glob(pattern))


def test_readable_core_fits_its_line_budget():
    counts = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines()) for path in core_files()}
    assert len(counts) >= 15, f"the core's file list looks wrong: {sorted(counts)}"
    total = sum(counts.values())
    largest = sorted(counts.items(), key=lambda item: -item[1])[:3]
    assert total <= CORE_LINE_BUDGET, f"the readable core has {total} lines > {CORE_LINE_BUDGET}; largest: {largest}"


def test_argument_checks_live_outside_the_core():
    # one vocabulary for Tensor-aware checks, tinyspike/tensor_checks.py; none left in functional/
    assert (ROOT / "tinyspike/tensor_checks.py").is_file()
    assert not (ROOT / "tinyspike/functional/_checks.py").exists()


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINYSPIKE_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("first", ["tinyspike.tensor_checks", "tinyspike.ops", "tinyspike.autograd",
                                   "tinyspike.checks", "tinyspike.functional", "tinyspike.gradcheck"])
def test_engine_modules_import_in_any_order(first):
    # autograd imports ops and tensor_checks at its bottom, and both import autograd: a fresh
    # interpreter that starts from any of them must end with working operators and checks.
    code = (
        f"import {first}\n"
        "import numpy as np\n"
        "from tinyspike.autograd import Tensor\n"
        "x = Tensor(np.ones((2, 3)), requires_grad=True)\n"
        "(x * 2 - 1).mean().backward()\n"
        "assert np.allclose(x.grad, 2 / 6), x.grad\n"
        "try:\n"
        "    x + 'a'\n"
        "except TypeError as err:\n"
        "    assert str(err).startswith('add: b must be'), err\n"
        "else:\n"
        "    raise AssertionError('x + str was accepted')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_numba_is_imported_only_when_a_numpy_kernel_is_picked():
    code = (
        "import sys\n"
        "import tinyspike.functional, tinyspike.nn, tinyspike.models\n"
        "from tinyspike import kernels\n"
        "assert 'numba' not in sys.modules, 'numba imported by the import of the library'\n"
        "assert kernels.LIF.pick().__name__ == 'tinyspike.kernels.numba_cpu.lif'\n"
        "assert 'numba' in sys.modules\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
