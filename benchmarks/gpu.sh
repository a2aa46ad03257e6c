#!/usr/bin/env bash
# The GPU check, sized for a few minutes on one H100/H200 (run it once on
# the lent machine, then record the numbers in README.md):
#   1. training throughput and quality, both architectures, fp32 and bf16;
#   2. offline cleaning throughput, long and 1 s output files;
#   3. the cleaning engine alone.
# Usage: bash benchmarks/gpu.sh   (from the repository root, after make sync)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
for precision in 32-true bf16-mixed; do
  echo "== training, $precision"
  "$PYTHON" benchmarks/train.py --accelerator gpu --precision "$precision" \
    --train-duration 1024 --valid-duration 256 --test-duration 512 \
    --batch-size 512 --batches-per-epoch 32 --epochs 3
done
echo "== offline cleaning (the model's windows, then Clean's 5 s every 4 s)"
for architecture in reference dilated; do
  "$PYTHON" benchmarks/clean.py --device cuda:0 --duration 2048 \
    --architecture "$architecture" --batch-size 512
  "$PYTHON" benchmarks/clean.py --device cuda:0 --duration 2048 \
    --architecture "$architecture" --batch-size 128 \
    --kernel-length 5 --stride 4
done
echo "== engine alone"
"$PYTHON" benchmarks/engine.py --device cuda --duration 2048 --batch-size 512
