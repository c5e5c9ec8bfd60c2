"""The analyses of ``tinyspike analyze`` on the CuPy code path (the strict stand-in, see conftest.py).

Each analysis that looks at one model (grad-norms, ssim, firing, raster, landscape) runs twice on
the same weights and the same samples: on NumPy and on the stand-in. The stand-in refuses every
NumPy call on a device array and every hidden host transfer (``float(a)``, ``np.asarray(a)``), so
a leak fails here with its TypeError; and because both backends run the same reference kernels
on the same float32 numbers (conftest.py), the JSON each analysis writes must be *equal*, number
for number (tolerance: none).

Tiny settings: MS-ResNet-8 at widths 4/8/8, T = 2, 8×8 digits, one batch of 6 samples.
"""

import json

import numpy as np
import pytest

from tinyspike import backend
from tinyspike.analysis.firing_plots import run_firing, run_raster
from tinyspike.analysis.grad_norms import run_grad_norms
from tinyspike.analysis.landscape import run_landscape
from tinyspike.analysis.source import AnalysisSource
from tinyspike.analysis.ssim import run_ssim

ANALYSES = {
    "grad-norms": lambda s, out: run_grad_norms(s, out, batch_size=6, batches=1),
    "ssim": lambda s, out: run_ssim(s, out, batch_size=6, batches=1),
    "firing": lambda s, out: run_firing(s, out, batch_size=6, batches=1),
    "raster": lambda s, out: run_raster(s, out, neurons=20, sample=7),
    "landscape": lambda s, out: run_landscape(s, out, grid=3, span=0.5, batches=1, batch_size=6, progress=False),
}


def tiny_source(state=None):
    """The tiny model on the active backend, its weights copied from ``state`` (NumPy arrays) when
    given: the two backends' generators draw different weights from the same seed."""
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]},
                                       data_opts={"size": 8}, time_steps=2, seed=0)
    if state is not None:
        source.model.load_state_dict(state)
    return source


@pytest.fixture(scope="module")
def written(strict_cupy, tmp_path_factory):
    """``{backend: {analysis: the JSON it wrote}}`` for NumPy and the stand-in."""
    backend.use("numpy")
    numpy_source = tiny_source()
    state = numpy_source.model.to_numpy_state()
    found = {}
    for name_of_backend in ("numpy", "cupy"):
        backend.use(name_of_backend)
        source = numpy_source if name_of_backend == "numpy" else tiny_source(state)
        found[name_of_backend] = {}
        for name, run in ANALYSES.items():
            out = tmp_path_factory.mktemp(f"{name_of_backend}-{name}")
            returned = run(source, out)
            assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
            on_disk = json.loads((out / f"{name}.json").read_text())
            assert on_disk == returned  # the run returns what it wrote
            found[name_of_backend][name] = on_disk
        if name_of_backend == "cupy":  # the weights and batches really were on the device
            p = next(source.model.parameters())
            assert backend.is_gpu_array(p.data)
            images, _ = next(source.batches("test", batch_size=2, limit=1))
            assert backend.is_gpu_array(images)
    backend.use("numpy")
    return found


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analysis_on_the_stand_in_equals_numpy(written, name):
    got, want = written["cupy"][name], written["numpy"][name]
    assert got == want  # exact: the same reference kernels on the same float32 numbers


def test_the_results_hold_numbers_not_placeholders(written):
    """Equality of two empty results would prove nothing: each holds its measured numbers."""
    result = written["numpy"]
    assert all(n > 0 for n in result["grad-norms"]["results"][0]["norms"])
    assert any(v is not None for v in result["ssim"]["results"][0]["values"])
    assert 0 < result["firing"]["result"]["mean_rate"] < 1
    assert sum(sum(map(sum, layer)) for layer in result["raster"]["result"]["spikes"]) > 0
    assert result["landscape"]["complete"] and result["landscape"]["points_done"] == 9
