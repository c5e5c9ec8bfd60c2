#!/usr/bin/env bash
# GPU session check, in under 5 minutes: the gpu-marked tests, then the GPU benchmark.
#
#   bash benchmarks/gpu_check.sh              # logs to the terminal
#   OUT=/some/dir bash benchmarks/gpu_check.sh  # also logs and bench_gpu.json under $OUT
#   BENCH_ARGS="--models ms_resnet20 --steps 5" bash benchmarks/gpu_check.sh   # a shorter benchmark
#
# CuPy is expected to be installed already (no internet on the GPU machine). Exit status: that
# of the first failing stage (tests, then benchmark); both stages run even if the tests fail.
set -u -o pipefail
cd "$(dirname "$0")/.."

log_to() {  # log_to NAME: tee stdin into $OUT/NAME when OUT is set
    if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && tee "$OUT/$1"; else cat; fi
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    python -c "import sys, numpy, cupy; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" 2>&1
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
} | log_to env.log

if ! python -c "import tinyspike" 2>/dev/null; then
    pip install --no-deps --no-build-isolation -q -e . 2>&1 | log_to install.log
fi

status=0
# -m gpu overrides pyproject's addopts "-m 'not slow'"; -rs lists the reasons of any skip
timeout 300 python -m pytest -q -rs -m gpu -p no:cacheprovider tests/test_gpu.py tests/distributed/test_nccl_gpu.py 2>&1 | log_to test_gpu.log
rc=$?; [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc

read -r -a bench_args <<< "${BENCH_ARGS:-}"
[ -n "${OUT:-}" ] && bench_args+=(--json "$OUT/bench_gpu.json")
timeout 240 python benchmarks/bench_gpu.py "${bench_args[@]}" 2>&1 | log_to bench_gpu.log
rc=$?; [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc

echo "gpu_check: exit status $status" | log_to summary.log
exit $status
