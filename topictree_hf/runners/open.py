"""Opening where a command's work runs: the config's engine in this process (`local`), or a Ray
cluster (`ray`). The pipeline's commands call `open_where`; what happens while opening is reported
through `OpenEvents` (pipeline.Watcher is one; the CLI's prints the "loading ..." lines), never printed.

    RunnerChoice()                            local: the config's engine, closed when the command ends
    RunnerChoice("ray", RayOptions(...))      ray: join (or start) the cluster, `RayRunner` on it
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Literal, get_args

from topictree_hf.config import Config, EngineConfig
from topictree_hf.engines.base import Engine
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import ConfigError
from topictree_hf.runners.base import Runner
from topictree_hf.runners.ray_cluster import RayOptions, ray_session, require_ray
from topictree_hf.runners.ray_runner import RayRunner, check_no_plan

RunnerName = Literal["local", "ray"]
RUNNER_NAMES: tuple[str, ...] = get_args(RunnerName)


@dataclass(frozen=True, slots=True)
class RunnerChoice:
    """Where a command's work runs; `ray` holds the Ray runner's options (unused by `local`)."""

    name: RunnerName = "local"
    ray: RayOptions = field(default_factory=RayOptions)

    def __post_init__(self) -> None:
        if self.name not in RUNNER_NAMES:
            raise ConfigError(f"unknown runner {self.name!r}; choose from {', '.join(RUNNER_NAMES)}")

    def check(self) -> None:
        """Fail before anything is written when the runner cannot work here (Ray not installed)."""
        if self.name == "ray":
            require_ray()


class OpenEvents:
    """What opening reports; every method is a no-op here."""

    def engine_loading(self, engine: EngineConfig, backend: str) -> None:
        """The engine of `engine` starts loading; `backend` is the one that loads ("auto" resolved)."""

    def engine_ready(self, seconds: float, served: str | None) -> None:
        """The engine is ready; `served`: the model it serves when that is not the config's name."""

    def ray_cluster(self, resources: Mapping[str, float], engine: EngineConfig) -> None:
        """Joined the Ray cluster with these resources; its workers will load `engine`."""

    def backend_chosen(self, work: str, node: str, backend: str, why: str) -> None:
        """`backend: auto` became `backend` on the Ray node `node` for `work` ("the tree", "samples"),
        because `why`; once per node, work and backend."""


def open_where(config: Config, choice: RunnerChoice, events: OpenEvents | None = None
               ) -> AbstractContextManager[Engine | Runner]:
    """The engine (local) or the Ray runner (ray) for the command's stages, closed on exit."""
    events = events or OpenEvents()
    if choice.name == "ray":
        check_no_plan(config)  # before anything starts
        return open_ray(config, choice.ray, events)
    return open_engine(config.engine, events)


@contextmanager
def open_engine(config: EngineConfig, events: OpenEvents | None = None) -> Iterator[Engine]:
    events = events or OpenEvents()
    start = time.perf_counter()
    backend = config.backend
    if backend == "auto":
        from topictree_hf.engines.auto import pick_backend

        backend = pick_backend()
    events.engine_loading(config, backend)
    engine = create_engine(config.model_copy(update={"backend": backend}))
    events.engine_ready(time.perf_counter() - start, engine.model_name if engine.model_name != config.model else None)
    try:
        yield engine
    finally:
        engine.close()


@contextmanager
def open_ray(config: Config, options: RayOptions, events: OpenEvents | None = None) -> Iterator[RayRunner]:
    with ray_session(options) as ray:
        events = events or OpenEvents()
        events.ray_cluster(ray.cluster_resources(), config.engine)
        yield RayRunner(options, report=events.backend_chosen)
