#!/usr/bin/env bash
# The prepared check for a machine with a CUDA GPU, in under 5 minutes: the device tests
# (pytest -m gpu), then the step benchmarks on the GPU (bench/gpu_steps.py), written to
# bench/results/gpu.md. Without a GPU it says so in one line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA GPU on this machine (torch.cuda.is_available() is false); nothing to run"
    exit 0
fi
mkdir -p bench/results
echo "== device tests (pytest -m gpu)"
timeout 150 "$PY" -m pytest -q -p no:xdist -m gpu tests/test_gpu.py
echo "== step benchmarks -> bench/results/gpu.md"
timeout 150 "$PY" bench/gpu_steps.py --device cuda --steps 30 --rounds 5 --out bench/results/gpu.md
