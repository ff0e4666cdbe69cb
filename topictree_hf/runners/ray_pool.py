"""The Ray runner's sample actors: one engine and one SampleGenerator per actor, started once for the
whole generate stage and fed blocks of tasks (runners/ray_runner.py decides which).

An actor whose process dies (a node lost, SIGKILL, out of memory) is restarted by Ray (up to
`RESTARTS` times per actor) and the block it held is sent to it again: the block reopens its own
shards and finishes what is missing (runners/blocks.py), so nothing is lost or written twice. When an
actor has died more often than that, the stage stops with one line; a rerun resumes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topictree_hf.config import Config
from topictree_hf.engines.base import Engine
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import RunDirError, TopicTreeError
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.rundir import Journaled, RunDir
from topictree_hf.runners.blocks import block_paths, process_block
from topictree_hf.runners.ray_cluster import EngineFactory, node_engine

if TYPE_CHECKING:
    from types import ModuleType

RESTARTS = 4  # per actor: a lost actor is restarted (its engine started again) and its block re-run
QUEUED = 2  # blocks queued per actor: the next one starts as soon as one ends
VISIBLE_MARK = ".ray-run-dir"  # written by the driver; an actor that cannot see it has another disk


@dataclass(slots=True)
class BlockResult:
    """What an actor sends back for one block: its name, its counts (`Summary.to_dict()`), the ids it
    kept and failed (the driver reports them to the stage's plan), or the one-line error; and what
    `backend: auto` became on the actor's node (empty when the backend was named)."""

    node: str
    backend: str = ""
    why: str = ""
    block: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error_type: str = ""
    error: str = ""


def mark_visible(run_dir: RunDir) -> None:
    """Written by the driver before any Ray work: what `check_visible` looks for on a node."""
    (run_dir.path / VISIBLE_MARK).write_text("the Ray runner's workers check that they see this run dir\n")


def check_visible(run_dir: RunDir) -> None:
    """One line when this node does not see the driver's run dir (it is not on shared storage)."""
    if not (run_dir.path / VISIBLE_MARK).exists():
        raise RunDirError(f"the run dir {run_dir.path} is not visible on Ray node {socket.gethostname()}: put it "
                          "on storage every node mounts (NFS, a mounted bucket) at the same path")


class SampleWorker:
    """One Ray actor: one engine, one SampleGenerator; each `run` is one block, journaled on its own.

    A TopicTreeError (model missing on this node, server down, the run dir not visible here) comes back
    in the result, so the driver re-raises it as the same one-line error instead of Ray's wrapped
    traceback."""

    def __init__(self, config: Config, run_path: str, engine_factory: EngineFactory | None = None,
                 gpu: bool = False) -> None:
        self.error: TopicTreeError | None = None
        self.run_dir = RunDir(Path(run_path))
        engine_config, choice = node_engine(config.engine, gpu)
        self.node = socket.gethostname()
        self.backend, self.why = (choice.backend, choice.why) if choice else ("", "")
        self.engine: Engine | None = None
        self.generator: SampleGenerator | None = None
        try:
            check_visible(self.run_dir)
            self.engine = (engine_factory or create_engine)(engine_config)
            self.generator = SampleGenerator(self.engine, config, self.run_dir)
            self.generator.remember(self.run_dir.iter_samples())  # what earlier runs kept, for the dedup
        except TopicTreeError as exc:
            self.error = exc

    def run(self, tasks: Sequence[Task]) -> BlockResult:
        result = BlockResult(self.node, self.backend, self.why)
        try:
            if self.error is not None:
                raise self.error
            assert self.generator is not None  # set whenever self.error is not
            result.block, summary = process_block(self.generator, self.run_dir, tasks)
            result.summary = summary.to_dict()
            journaled = Journaled.of(*([path] for path in block_paths(self.run_dir, result.block)))
            result.kept, result.failed = list(journaled.kept), list(journaled.failed)
        except TopicTreeError as exc:
            result.error_type, result.error = type(exc).__name__, str(exc)
        return result

    def close(self) -> None:
        """Release the engine (vLLM's memory and processes) before the actor is killed."""
        if self.generator is not None:  # None when the engine or the generator failed to start
            self.generator.close()
        if self.engine is not None:
            self.engine.close()
            self.engine = None


@contextmanager
def actor_pool(ray: ModuleType, config: Config, run_dir: RunDir, workers: int, resources: dict[str, Any],
               engine_factory: EngineFactory | None, gpu: bool) -> Iterator[list[Any]]:
    """`workers` SampleWorker actors for one stage; each closed (engine released) and killed on exit,
    their placement groups removed."""
    mark_visible(run_dir)
    strategy_fn = resources.pop("ray_remote_args_fn", None)
    cls = ray.remote(SampleWorker)
    actors, groups = [], []
    try:
        for _ in range(workers):
            strategy = strategy_fn() if strategy_fn is not None else {}
            group = getattr(strategy.get("scheduling_strategy"), "placement_group", None)
            if group is not None:
                groups.append(group)
            actors.append(cls.options(max_restarts=RESTARTS, max_task_retries=RESTARTS, **resources, **strategy)
                          .remote(config, str(run_dir.path), engine_factory, gpu))
        yield actors
        ray.wait([actor.close.remote() for actor in actors], num_returns=len(actors), timeout=60)
    finally:  # on an error or an interrupt the actors are killed at once, the blocks they hold left journaled
        for actor in actors:
            ray.kill(actor, no_restart=True)
        for group in groups:
            ray.util.remove_placement_group(group)
