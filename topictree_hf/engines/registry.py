"""One registry for backends: built-ins register here exactly as a third-party backend would.

A backend is registered by name with a factory, or with a "module:Class" string so that heavy
imports (torch, vllm) happen only when that backend is created.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Union

from topictree_hf.errors import ConfigError
from topictree_hf.threads import passive_omp_wait

if TYPE_CHECKING:
    from topictree_hf.config import EngineConfig
    from topictree_hf.engines.base import Engine

Factory = Callable[["EngineConfig"], "Engine"]
_REGISTRY: dict[str, Union[str, Factory]] = {}  # noqa: UP007


def register_backend(name: str, factory: str | Factory) -> str | Factory | None:
    """Register `factory(engine_config) -> Engine` (or a lazy "module:Class" path) under `name`;
    returns what it replaces (None for a new name), for `restore_backend`."""
    previous = _REGISTRY.get(name)
    _REGISTRY[name] = factory
    return previous


def restore_backend(name: str, previous: str | Factory | None) -> None:
    """Undo `register_backend`: put back what it returned (None: remove the name)."""
    if previous is None:
        _REGISTRY.pop(name, None)
    else:
        _REGISTRY[name] = previous


def known_backends() -> list[str]:
    return sorted(_REGISTRY)


def check_backend(name: str, source: str | Path | None = None) -> str:
    """`name` if a backend is registered under it, else the one-line ConfigError a bad config value
    gives (`source`: the config file the value came from; None: flags and defaults). The CLI calls it
    right after loading the config, before anything is written or loaded."""
    if name not in _REGISTRY:
        raise ConfigError(f"config engine.backend: unknown backend {name!r}; choose from "
                          f"{', '.join(known_backends())} (got {name!r}) in {source or 'defaults'}; fix that value")
    return name


def create_engine(config: EngineConfig) -> Engine:
    """Build the engine the config names; backend errors are `TopicTreeError`s with a fix."""
    factory = _REGISTRY.get(config.backend)
    if factory is None:
        raise ConfigError(f"unknown backend {config.backend!r}; choose from {', '.join(known_backends())}")
    passive_omp_wait()  # before a backend module imports torch
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(config)


register_backend("transformers", "topictree_hf.engines.transformers_engine:TransformersEngine")
register_backend("vllm", "topictree_hf.engines.vllm_engine:VLLMEngine")
register_backend("openai", "topictree_hf.engines.openai_engine:OpenAIEngine")
register_backend("auto", "topictree_hf.engines.auto:create_auto")
