"""`backend: auto` picks vLLM where it is installed and the hardware runs it, else transformers."""

from __future__ import annotations

import importlib.util

import pytest
import tiers

from topictree_hf.config import EngineConfig
from topictree_hf.engines import auto, known_backends
from topictree_hf.engines.registry import create_engine


def test_auto_is_a_known_backend_and_follows_the_machine() -> None:
    assert "auto" in known_backends() and EngineConfig(backend="auto").backend == "auto"
    runnable = importlib.util.find_spec("vllm") is not None and tiers.vllm_hardware_missing() is None
    assert auto.pick_backend() == ("vllm" if runnable else "transformers")


def test_without_vllm_auto_is_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto.importlib.util, "find_spec", lambda name: None)
    assert auto.pick_backend() == "transformers"


def test_auto_creates_the_picked_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(auto, "pick_backend", lambda: "fake-picked")
    from topictree_hf.engines import registry

    previous = registry.register_backend("fake-picked", lambda config: seen.append(config.backend) or "engine")
    try:
        assert create_engine(EngineConfig(backend="auto")) == "engine" and seen == ["fake-picked"]
    finally:
        registry.restore_backend("fake-picked", previous)
