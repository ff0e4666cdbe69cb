"""The Ray runner: the same tree and samples as a local run, with the sample work spread over a Ray
cluster (optional extra: pip install 'topictree-hf[ray]'; ray is imported only when used).

`RayRunner` implements only WHERE the work runs (runners/base.py); the stages themselves (what is
journaled, what is pending, the counts and the summary) are `pipeline.tree_stage` and
`pipeline.generate_stage`, the same for every runner:

    tree      the tree stage's work (O(depth) batched calls) inside one Ray task with the resources
              of one worker, so the driver needs no GPU; skipped when RUN_DIR/topic_tree.json exists.
    samples   one row per pending allocation Task -> `ray.data.from_items` -> `map_batches` over a
              fixed-size actor pool (`ActorPoolStrategy(size=workers)`), each actor holding one engine
              and one SampleGenerator; each batch of `block_size` tasks is a block journaled in its
              own shards (see runners/blocks.py), so a block that Ray retries after its actor died
              finishes what is missing and duplicates nothing.

Joining the cluster, what each actor asks for and how it resolves `backend: auto` on its node:
runners/ray_cluster.py. What an actor chose is reported through the runner's `report` (the CLI prints it).
The run dir must be on storage every node sees (NFS, a mounted bucket).

Dedup of samples is per actor (plus everything journaled before the actor started): near-duplicates
made at the same time on two actors can both be kept.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topictree_hf import errors
from topictree_hf.config import Config
from topictree_hf.engines.auto import Choice
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import EngineError, TopicTreeError
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import Progress, SampleGenerator
from topictree_hf.generation.summary import Summary
from topictree_hf.rundir import RunDir
from topictree_hf.runners.base import Runner, TreeWork
from topictree_hf.runners.blocks import merge_failure_shards, process_block, task_row, tasks_from_columns
from topictree_hf.runners.ray_cluster import (
    EngineFactory,
    RayOptions,
    actor_resources,
    default_workers,
    first_line,
    holds_gpu,
    node_engine,
    ray_session,
    require_ray,
    sized_for,
    worker_engine_config,
    worker_env,
)
from topictree_hf.tree.builder import LevelProgress
from topictree_hf.tree.model import TopicTree

if TYPE_CHECKING:
    from types import ModuleType

# the runner's public names, several of them defined in ray_cluster
__all__ = ["ChoiceReport", "RayOptions", "RayRunner", "actor_resources", "ray_session", "require_ray",
           "worker_engine_config", "worker_env"]
logger = logging.getLogger(__name__)
# (work, node, backend, why): where `backend: auto` was resolved and to what ("the tree" or "samples")
ChoiceReport = Callable[[str, str, str, str], None]


class RayRunner(Runner):
    """The tree on one Ray worker, the samples on a Ray Data actor pool (see the module docstring).
    Connect first (`ray_session`, or `ray.init`); otherwise Ray starts a local cluster itself.
    `report` hears, once per node and work, what `backend: auto` was resolved to there."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None, report: ChoiceReport | None = None) -> None:
        self.options = options or RayOptions()
        self._report = report
        self._reported: set[tuple[str, str, str]] = set()

    def build_tree(self, config: Config, run_dir: RunDir, work: TreeWork,
                   progress: LevelProgress | None = None) -> TopicTree:
        """`work` in one Ray task with one worker's resources (no progress: it runs elsewhere)."""
        if run_dir.tree_file.exists():
            return TopicTree.load(run_dir.tree_file)
        ray = require_ray()
        sized = sized_for(config.engine, _cluster_resources(ray))
        resources = actor_resources(sized, self.options)
        strategy = resources.pop("ray_remote_args_fn", lambda: {})()
        group = getattr(strategy.get("scheduling_strategy"), "placement_group", None)
        remote = ray.remote(max_calls=1)(_tree_task).options(**resources, **strategy)  # max_calls=1: GPU freed
        try:
            tree, node, choice = ray.get(remote.remote(work, config, str(run_dir.path), self.options.engine_factory,
                                                       holds_gpu(sized, self.options)))
        except ray.exceptions.RayError as exc:
            raise _as_topictree_error(exc, run_dir) from None
        finally:
            if group is not None:  # give the GPUs back before the actors ask for theirs
                ray.util.remove_placement_group(group)
        self.chose("the tree", node, choice)
        if not run_dir.tree_file.exists():  # the worker's disk is not this one: keep a copy here too
            tree.save(run_dir.tree_file)
        return tree

    def generate(self, config: Config, run_dir: RunDir, tasks: Iterator[Task], summary: Summary,
                 progress: Progress | None = None) -> None:
        """The pending tasks in blocks on the actor pool; every block's failure shard is folded into
        failures.jsonl afterwards (also when the run fails: what finished is kept). Top-ups come as
        further calls: `generate_pending` rebuilds its plan from the journals after each one and sends
        the next round (each round starts a new actor pool, so each costs an engine start per actor)."""
        rows = [task_row(t) for t in tasks]
        try:
            if rows:
                _run_blocks(require_ray(), config, run_dir, rows, self, summary, progress)
        finally:
            merge_failure_shards(run_dir)

    def chose(self, work: str, node: str, choice: Choice | None) -> None:
        """Report what `auto` became for `work` on `node`, once per node, work and backend."""
        if choice is None or self._report is None or (work, node, choice.backend) in self._reported:
            return
        self._reported.add((work, node, choice.backend))
        self._report(work, node, choice.backend, choice.why)


def _cluster_resources(ray: ModuleType) -> dict[str, float]:
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.WARNING)  # what Ray's first use would do
    return dict(ray.cluster_resources())


def _tree_task(work: TreeWork, config: Config, path: str, engine_factory: EngineFactory | None,
               gpu: bool) -> tuple[TopicTree, str, Choice | None]:
    """The tree stage on a worker; returns the tree, this node's name and what `auto` became here."""
    engine_config, choice = node_engine(config.engine, gpu)
    with (engine_factory or create_engine)(engine_config) as engine:
        return work(config, engine, RunDir(Path(path)), None), socket.gethostname(), choice


def _run_blocks(ray: ModuleType, config: Config, run_dir: RunDir, rows: list[dict[str, Any]], runner: RayRunner,
                summary: Summary, progress: Progress | None) -> None:
    options = runner.options
    block_size = options.block_size or 4 * config.engine.batch_size
    blocks = math.ceil(len(rows) / block_size)
    cluster = _cluster_resources(ray)
    sized = sized_for(config.engine, cluster)
    workers = default_workers(cluster, sized, options, blocks)
    supports_fn = "ray_remote_args_fn" in inspect.signature(ray.data.Dataset.map_batches).parameters
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    results = dataset.map_batches(
        SampleWorker,
        fn_constructor_kwargs={"config": config, "run_path": str(run_dir.path),
                               "engine_factory": options.engine_factory, "gpu": holds_gpu(sized, options)},
        batch_size=block_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        **actor_resources(sized, options, supports_fn),
    )
    try:
        for row in results.iter_rows():
            if row["backend"]:
                runner.chose("samples", row["node"], Choice(row["backend"], row["why"]))
            if row["error_type"]:
                raise _worker_error(row["error_type"], row["error"])
            block = Summary.from_dict(json.loads(row["summary"]))
            summary.merge(block)
            if progress is not None:  # delivered samples, as the local runner counts them
                progress(block.valid)
    except ray.exceptions.RayError as exc:
        raise _as_topictree_error(exc, run_dir) from None


class SampleWorker:
    """One Ray actor: one engine, one SampleGenerator; each call is one block, journaled on its own.

    A TopicTreeError (model missing on this node, server down, ...) comes back as a result row, so the
    driver re-raises it as the same one-line error instead of Ray's wrapped traceback. Each row also
    says what `backend: auto` became on this actor's node (empty when the backend was named)."""

    def __init__(self, config: Config, run_path: str, engine_factory: EngineFactory | None = None,
                 gpu: bool = False) -> None:
        self.error: TopicTreeError | None = None
        self.run_dir = RunDir(Path(run_path))
        engine_config, choice = node_engine(config.engine, gpu)
        self.chosen = {"node": socket.gethostname(), "backend": choice.backend if choice else "",
                       "why": choice.why if choice else ""}
        try:
            self.engine = (engine_factory or create_engine)(engine_config)
            self.generator = SampleGenerator(self.engine, config, self.run_dir)
            self.generator.remember(self.run_dir.iter_samples())  # what earlier runs kept, for the dedup
        except TopicTreeError as exc:
            self.error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """One block; the result row carries its counts as `Summary.to_dict()` in JSON (one column,
        whatever reasons the counters hold), or the error."""
        row = {"block": "", "error_type": "", "error": "", "summary": "{}"} | self.chosen
        try:
            if self.error is not None:
                raise self.error
            name, summary = process_block(self.generator, self.run_dir, tasks_from_columns(batch))
            row |= {"block": name, "summary": json.dumps(summary.to_dict())}
        except TopicTreeError as exc:
            row |= {"error_type": type(exc).__name__, "error": str(exc)}
        return {key: [value] for key, value in row.items()}


def _worker_error(kind: str, message: str) -> TopicTreeError:
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, TopicTreeError)):
        cls = EngineError
    return cls(message)


def _as_topictree_error(exc: BaseException, run_dir: RunDir) -> TopicTreeError:
    """Our own error raised in a Ray task comes back as itself (one line, no Ray traceback); anything
    else becomes one EngineError line that names the cause and the rerun."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, TopicTreeError):
        return type(cause)(str(cause))
    shown = cause if isinstance(cause, Exception) and type(cause).__module__.split(".")[0] != "ray" else exc
    return EngineError(f"the Ray run failed ({type(shown).__name__}: {first_line(shown)}); finished work is "
                       f"journaled in {run_dir.path}: fix the cause (see the Ray logs) and rerun to resume")
