"""The backend registry and the engine contract, without a model: a third-party backend registers
through `register_backend` exactly like the built-ins, the config accepts it, `create_engine` builds
it; the scripted fake engine records every call; backend errors are one line naming the fix."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import FrozenInstanceError

import pytest
from fake_engine import FakeEngine

from topictree_hf.config import EngineConfig, load_config
from topictree_hf.engines import (
    ChatRequest,
    Completion,
    Engine,
    SamplingParams,
    create_engine,
    known_backends,
    register_backend,
)
from topictree_hf.engines.base import Progress
from topictree_hf.engines.registry import _REGISTRY, check_backend
from topictree_hf.errors import BackendUnavailableError, ConfigError


class EchoEngine(Engine):
    """A third-party backend: answers each request with its last message, upper-cased."""

    backend = "echo"

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.model_name = config.model
        self.closed = False

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        out = [Completion(r.messages[-1]["content"].upper(), "stop", 1, 1) for r in requests]
        if progress is not None:
            progress(len(out))
        return out

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def registry() -> Iterator[Callable[[str, object], None]]:
    """`register_backend`, undone after the test so no other test sees the extra backends."""
    saved = dict(_REGISTRY)
    yield register_backend
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def chat(text: str, **sampling: object) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(**sampling))  # type: ignore[arg-type]


def test_builtin_backends_are_registered() -> None:
    assert {"transformers", "vllm", "openai"} <= set(known_backends())


def test_a_custom_backend_registers_like_the_builtins(registry: Callable[[str, object], None]) -> None:
    seen: list[EngineConfig] = []

    def factory(config: EngineConfig) -> Engine:
        seen.append(config)
        return EchoEngine(config)

    registry("echo", factory)
    assert "echo" in known_backends()
    config = load_config(overrides={"engine.backend": "echo", "engine.model": "my-model"})
    with create_engine(config.engine) as engine:
        assert isinstance(engine, EchoEngine) and engine.model_name == "my-model"
        assert [c.text for c in engine.generate([chat("a"), chat("b")])] == ["A", "B"]
    assert engine.closed, "the context manager closes the engine"
    assert seen == [config.engine], "the factory gets the engine config"


def test_a_lazy_module_path_imports_on_create(registry: Callable[[str, object], None]) -> None:
    registry("echo-lazy", f"{__name__}:EchoEngine")
    engine = create_engine(EngineConfig(backend="echo-lazy"))
    assert type(engine).__name__ == "EchoEngine"


def test_unregistered_backend_is_refused_by_config_and_registry() -> None:
    assert load_config(overrides={"engine.backend": "nope"}).engine.backend == "nope", "config knows no backends"
    with pytest.raises(ConfigError, match="unknown backend 'nope'; choose from"):
        check_backend("nope")  # what the CLI calls right after loading the config
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        create_engine(EngineConfig.model_construct(backend="nope"))  # a config built without validation


def test_fake_engine_records_calls_and_keeps_order(fake_backend: Callable[..., FakeEngine]) -> None:
    fake = fake_backend(lambda r: f"echo {r.messages[-1]['content']}")
    engine = create_engine(EngineConfig(backend="fake"))
    assert engine is fake
    done: list[int] = []
    requests = [chat(f"q{i}", seed=i) for i in range(5)]
    out = engine.generate(requests, progress=done.append)
    assert [c.text for c in out] == [f"echo q{i}" for i in range(5)]
    assert all(c.finish_reason == "stop" and c.output_tokens >= 1 for c in out)
    assert sum(done) == 5
    engine.generate(requests[:2])
    assert fake.num_calls == 2 and fake.calls[0] == requests and fake.calls[1] == requests[:2]


def test_fake_engine_passes_completions_through(fake_backend: Callable[..., FakeEngine]) -> None:
    fake = fake_backend(lambda r: Completion("", "error", error="scripted failure"))
    (out,) = fake.generate([chat("x")])
    assert out.finish_reason == "error" and out.error == "scripted failure"


def test_request_defaults_and_frozen_sampling() -> None:
    request = chat("hi")
    assert request.json_schema is None and request.sampling == SamplingParams()
    assert request.sampling.seed is None and request.sampling.max_tokens == 256
    with pytest.raises(FrozenInstanceError):
        request.sampling.seed = 3  # type: ignore[misc]


def test_vllm_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError, installed or not
    with pytest.raises(BackendUnavailableError) as err:
        create_engine(EngineConfig(backend="vllm"))
    message = str(err.value)
    assert "pip install 'topictree-hf[vllm]'" in message and "\n" not in message
