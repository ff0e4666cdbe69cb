"""Shared fixtures. Three tiers: unit tests (fake engine), `slow` (bundled model on CPU, one
loaded engine shared by the whole session), `gpu` (vLLM + CUDA; skipped without them)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator

import pytest

from topictree_hf.config import EngineConfig
from topictree_hf.engines import ChatRequest, Completion, register_backend
from topictree_hf.engines.fake import FakeEngine

os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the user's HF token or cache, and nothing reaches a hub."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "1")


def has_gpu() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_gpu():
        return
    skip = pytest.mark.skip(reason="needs CUDA and vLLM (pip install 'topictree-hf[vllm]' on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bundled_engine() -> Iterator[object]:
    """The bundled SmolLM2-135M-Instruct on the transformers backend, loaded once per session."""
    from topictree_hf.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(EngineConfig(batch_size=16))
    yield engine
    engine.close()


@pytest.fixture
def fake_backend() -> Callable[[Callable[[ChatRequest], str | Completion]], FakeEngine]:
    """Register a scripted engine as backend 'fake' through the real registry; returns it."""

    def make(responder: Callable[[ChatRequest], str | Completion]) -> FakeEngine:
        engine = FakeEngine(responder)
        register_backend("fake", lambda _cfg: engine)
        return engine

    return make
