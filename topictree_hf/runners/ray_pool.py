"""The Ray runner's sample actors: one engine and one SampleGenerator per actor, started once for the
whole generate stage and fed blocks of tasks (runners/ray_runner.py decides which).

An actor whose process dies (a node lost, SIGKILL, out of memory) is restarted by Ray (up to
`RESTARTS` times per actor) and the block it held is sent to it again: the block reopens its own
shards and finishes what is missing (runners/blocks.py), so nothing is lost or written twice. When an
actor has died more often than that, the stage stops with one line; a rerun resumes.

An actor journals in the driver's run dir when its node sees it, else in a scratch folder on its node
and sends each block's records back in its result (runners/ray_disk.py); the driver journals them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from topictree_hf.config import Config
from topictree_hf.dedup import KeptText
from topictree_hf.engines.base import Engine
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import TopicTreeError
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.rundir import Journaled
from topictree_hf.runners.blocks import block_paths, block_records, drop_block, process_block
from topictree_hf.runners.ray_cluster import EngineFactory, node_engine
from topictree_hf.runners.ray_disk import drop_scratch, worker_run_dir

if TYPE_CHECKING:
    from types import ModuleType

RESTARTS = 4  # per actor: a lost actor is restarted (its engine started again) and its block re-run
QUEUED = 2  # blocks queued per actor: the next one starts as soon as one ends


@dataclass(slots=True)
class BlockResult:
    """What an actor sends back for one block: its name, its counts (`Summary.to_dict()`), the ids it
    kept and failed (the driver reports them to the stage's plan), or the one-line error; what
    `backend: auto` became on the actor's node (empty when the backend was named); and, from an actor
    that does not share the driver's run dir, the block's journal lines (the driver journals them)."""

    node: str
    backend: str = ""
    why: str = ""
    block: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error_type: str = ""
    error: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PoolSetup:
    """What every actor of a pool gets: the driver's run dir path and its token (runners/ray_disk.py),
    and whether actors may share the run dir (None: when they see it)."""

    run_path: str
    token: str
    share: bool | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    """A stage's actors, and what the run kept before the stage (for their dedup) in Ray's object
    store: put once, handed to each block by reference (not to the constructors: a restarted actor
    must not depend on a constructor argument in the object store), read once per actor process."""

    actors: list[Any]
    prior: Any  # ray.ObjectRef of list[KeptText]

    def run(self, actor: Any, block: list[Task]) -> Any:
        return actor.run.remote(block, [self.prior])  # in a list: Ray passes the reference, not the value


class SampleWorker:
    """One Ray actor: one engine, one SampleGenerator; each `run` is one block, journaled on its own.

    A TopicTreeError (model missing on this node, server down, a corrupted journal) comes back
    in the result, so the driver re-raises it as the same one-line error instead of Ray's wrapped
    traceback."""

    def __init__(self, config: Config, setup: PoolSetup, engine_factory: EngineFactory | None = None,
                 gpu: bool = False) -> None:
        self.error: TopicTreeError | None = None
        self.run_dir, self.shared = worker_run_dir(setup.run_path, setup.token, _worker_name(), setup.share)
        engine_config, choice = node_engine(config.engine, gpu)
        self.node = socket.gethostname()
        self.backend, self.why = (choice.backend, choice.why) if choice else ("", "")
        self.engine: Engine | None = None
        self.generator: SampleGenerator | None = None
        self.remembered = False
        try:
            self.engine = (engine_factory or create_engine)(engine_config)
            self.generator = SampleGenerator(self.engine, config, self.run_dir)
        except TopicTreeError as exc:
            self.error = exc

    def run(self, tasks: Sequence[Task], prior: Sequence[Any] = ()) -> BlockResult:
        """One block; `prior` holds the reference to what the run kept before the stage (`Pool`)."""
        result = BlockResult(self.node, self.backend, self.why)
        try:
            if self.error is not None:
                raise self.error
            assert self.generator is not None  # set whenever self.error is not
            if not self.remembered:  # once per actor process (again after a restart)
                self.generator.dedup.remember(_fetch(prior))
                self.remembered = True
            result.block, summary = process_block(self.generator, self.run_dir, tasks)
            result.summary = summary.to_dict()
            journaled = Journaled.of(*([path] for path in block_paths(self.run_dir, result.block)))
            result.kept, result.failed = list(journaled.kept), list(journaled.failed)
            if not self.shared:  # the driver journals them; a retry of this block sends them again
                result.samples, result.failures = block_records(self.run_dir, result.block)
                drop_block(self.run_dir, result.block)
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
        drop_scratch(self.run_dir, self.shared)


def _fetch(prior: Sequence[Any]) -> list[KeptText]:
    import ray

    return [kept for ref in prior for kept in ray.get(ref)]


def _worker_name() -> str:
    """The actor's id (the same after Ray restarts it, so a re-run block finds its scratch shards);
    Ray gives None outside an actor."""
    import ray

    return ray.get_runtime_context().get_actor_id() or "driver"


@contextmanager
def actor_pool(ray: ModuleType, config: Config, setup: PoolSetup, prior: list[KeptText], workers: int,
               resources: dict[str, Any], engine_factory: EngineFactory | None, gpu: bool) -> Iterator[Pool]:
    """`workers` SampleWorker actors for one stage; each closed (engine released) and killed on exit,
    their placement groups removed."""
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
                          .remote(config, setup, engine_factory, gpu))
        yield Pool(actors, ray.put(prior))
        ray.wait([actor.close.remote() for actor in actors], num_returns=len(actors), timeout=60)
    finally:  # on an error or an interrupt the actors are killed at once, the blocks they hold left journaled
        for actor in actors:
            ray.kill(actor, no_restart=True)
        for group in groups:
            ray.util.remove_placement_group(group)
