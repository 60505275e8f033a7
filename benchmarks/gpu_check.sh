#!/usr/bin/env bash
# Measure the model stages' throughput on this node's GPU and print what the paper's
# design would cost at it (benchmarks/bench_gpu.py). Run on a GPU node after the model
# is materialized (snakemake results/model/NAME, or make run for the default model):
#   benchmarks/gpu_check.sh [results/model/NAME] [extra bench_gpu.py options]
# Writes benchmarks/out/gpu_check.json; copy the figures into benchmarks/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA device here (nvidia-smi: $(command -v nvidia-smi >/dev/null && nvidia-smi -L | head -1 || echo 'not found'))." >&2
    echo "Run it on a GPU node, with a CUDA build of torch; a CPU smoke run: $python $here/bench_gpu.py --device cpu --prompts 16 --batch 8 --attr-prompts 4" >&2
    exit 2
fi
model=()
if [[ $# -gt 0 && "$1" != --* ]]; then model=(--model "$1"); shift; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$python" "$here/bench_gpu.py" --device cuda "${model[@]}" "$@"
