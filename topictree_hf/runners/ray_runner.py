"""The Ray runner: the same tree and samples as a local run, with the sample work spread over a Ray
cluster (optional extra: pip install 'topictree-hf[ray]'; ray is imported only when used).

`RayRunner` implements only WHERE the work runs (runners/base.py); the stages themselves (what is
journaled, what is pending, the counts and the summary) are `pipeline.tree_stage` and
`pipeline.generate_stage`, the same for every runner:

    tree      the tree stage's work (O(depth) batched calls) inside one Ray task with the resources
              of one worker, so the driver needs no GPU; skipped when RUN_DIR/topic_tree.json exists.
    samples   a pool of `workers` actors (runners/ray_pool.py), each holding one engine and one
              SampleGenerator for the whole stage (the engine starts once per actor). The driver pulls
              the stage's tasks in blocks of `block_size`, keeps two blocks queued per actor, and
              reports every finished block's outcomes to the stage's TaskPlan, so short leaves get their
              top-ups from the same actors in the same stream, as on the local runner. Each block is
              journaled in its own shards (runners/blocks.py): a block that Ray re-runs after its actor
              died (the actor is restarted and the call retried) finishes what is missing and
              duplicates nothing.

Workers need not see the run dir: one whose node does not (no shared mount) journals on its own node
and sends each finished block's records back in its result; the driver journals them
(runners/ray_disk.py). The tree task likewise returns the tree, which the driver saves.

Joining the cluster, what each actor asks for and how it resolves `backend: auto` on its node:
runners/ray_cluster.py. What an actor chose is reported through the runner's `report` (the CLI prints it).

Dedup of samples is per actor (plus everything journaled before the stage started, sent to each actor
once): near-duplicates made at the same time on two actors can both be kept.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from topictree_hf import errors
from topictree_hf.config import Config, EngineConfig
from topictree_hf.engines.auto import Choice
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import ConfigError, EngineError, TopicTreeError
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import Progress
from topictree_hf.generation.steps import kept_texts
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.topup import TaskPlan
from topictree_hf.rundir import RunDir
from topictree_hf.runners.base import Runner, TreeWork
from topictree_hf.runners.blocks import merge_failure_shards, receive_block
from topictree_hf.runners.ray_cluster import (
    EngineFactory,
    RayOptions,
    actor_resources,
    check_feasible,
    default_workers,
    first_line,
    holds_gpu,
    node_engine,
    ray_session,
    require_ray,
    sized_for,
    vllm_cpu_cores,
    worker_engine_config,
    worker_env,
)
from topictree_hf.runners.ray_disk import drop_scratch, mark_run_dir, worker_run_dir
from topictree_hf.runners.ray_pool import QUEUED, BlockResult, PoolSetup, actor_pool
from topictree_hf.tree.builder import LevelProgress
from topictree_hf.tree.model import TopicTree

if TYPE_CHECKING:
    from types import ModuleType

# the runner's public names, several of them defined in ray_cluster
__all__ = ["ChoiceReport", "RayOptions", "RayRunner", "actor_resources", "check_no_plan", "ray_session", "require_ray",
           "worker_engine_config", "worker_env"]
logger = logging.getLogger(__name__)
# (work, node, backend, why): where `backend: auto` was resolved and to what ("the tree" or "samples")
ChoiceReport = Callable[[str, str, str, str], None]


class RayRunner(Runner):
    """The tree on one Ray worker, the samples on a pool of actors (see the module docstring).
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
        token = mark_run_dir(run_dir)
        cluster = _cluster_resources(ray)
        sized = sized_for(config.engine, cluster)
        resources = _resources([n for n in ray.nodes() if n.get("Alive")], sized, self.options, cluster, workers=1)
        strategy = resources.pop("ray_remote_args_fn", lambda: {})()
        group = getattr(strategy.get("scheduling_strategy"), "placement_group", None)
        remote = ray.remote(max_calls=1)(_tree_task).options(**resources, **strategy)  # max_calls=1: GPU freed
        try:
            setup = PoolSetup(str(run_dir.path), token, self.options.share_run_dir)
            tree, node, choice = ray.get(remote.remote(work, config, setup, self.options.engine_factory,
                                                       holds_gpu(sized, self.options, cluster)))
        except ray.exceptions.RayError as exc:
            raise _as_topictree_error(exc, run_dir) from None
        finally:
            if group is not None:  # give the GPUs back before the actors ask for theirs
                ray.util.remove_placement_group(group)
        self.chose("the tree", node, choice)
        if not run_dir.tree_file.exists():  # the worker did not share the run dir: the tree came back
            tree.save(run_dir.tree_file)
        return tree

    def generate(self, config: Config, run_dir: RunDir, tasks: Iterator[Task], summary: Summary,
                 progress: Progress | None = None) -> None:
        """The pending tasks in blocks on one actor pool, top-ups included (see `_run_blocks`); every
        block's failure shard is folded into failures.jsonl afterwards (also when the run fails: what
        finished is kept)."""
        check_no_plan(config)
        try:
            _run_blocks(require_ray(), config, run_dir, tasks, self, summary, progress)
        finally:
            merge_failure_shards(run_dir)

    def chose(self, work: str, node: str, choice: Choice | None) -> None:
        """Report what `auto` became for `work` on `node`, once per node, work and backend."""
        if choice is None or self._report is None or (work, node, choice.backend) in self._reported:
            return
        self._reported.add((work, node, choice.backend))
        self._report(work, node, choice.backend, choice.why)


def check_no_plan(config: Config) -> None:
    """Leaf plans need the plan and its samples in one engine stream (generation/plan.py); the actors
    get lists of tasks, so a plan asked for on Ray is one line, not silently skipped."""
    if config.generation.plan:
        raise ConfigError("generation.plan runs on the local runner only for now; drop --runner ray or set "
                          "generation.plan: false (--no-plan)")


def _cluster_resources(ray: ModuleType) -> dict[str, float]:
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.WARNING)  # what Ray's first use would do
    return dict(ray.cluster_resources())


def _resources(live: list[dict[str, Any]], sized: EngineConfig, options: RayOptions, cluster: dict[str, float],
               workers: int) -> dict[str, Any]:
    """What each of `workers` actors asks for, checked against the cluster's live nodes (`ray.nodes()`)."""
    node_cpus = max((float(n["Resources"].get("CPU", 0)) for n in live), default=0.0)
    cores = vllm_cpu_cores(node_cpus, cluster.get("CPU", 1), workers)
    resources = actor_resources(sized, options, cluster, cores=cores)
    check_feasible(resources, cluster, node_cpus)
    return resources


def _tree_task(work: TreeWork, config: Config, setup: PoolSetup, engine_factory: EngineFactory | None,
               gpu: bool) -> tuple[TopicTree, str, Choice | None]:
    """The tree stage on a worker; returns the tree, this node's name and what `auto` became here.
    On a node that does not see the run dir it journals in a scratch folder (a retry on this node
    resumes from it), removed once the tree is sent back."""
    run_dir, shared = worker_run_dir(setup.run_path, setup.token, "tree", setup.share)
    engine_config, choice = node_engine(config.engine, gpu)
    with (engine_factory or create_engine)(engine_config) as engine:
        tree = work(config, engine, run_dir, None)
    drop_scratch(run_dir, shared)
    return tree, socket.gethostname(), choice


def _run_blocks(ray: ModuleType, config: Config, run_dir: RunDir, tasks: Iterator[Task], runner: RayRunner,
                summary: Summary, progress: Progress | None) -> None:
    """The stage's tasks in blocks on one actor pool: `QUEUED` blocks per actor at a time; each finished
    block's outcomes go to the plan (when `tasks` is the stage's TaskPlan), whose top-ups for short
    leaves are pulled into the next blocks, until nothing is in flight and the plan has nothing more."""
    options = runner.options
    block_size = options.block_size or 4 * config.engine.batch_size
    plan = tasks if isinstance(tasks, TaskPlan) else None
    first = list(islice(tasks, block_size))
    if not first:
        return
    cluster = _cluster_resources(ray)
    sized = sized_for(config.engine, cluster)
    pending = len(first) + (plan.queued if plan is not None else 0)
    live = [n for n in ray.nodes() if n.get("Alive")]
    workers = default_workers(cluster, sized, options, math.ceil(pending / block_size), len(live))
    resources = _resources(live, sized, options, cluster, workers)
    prior = [] if config.generation.dedup == "none" else list(kept_texts(run_dir.iter_samples()))
    setup = PoolSetup(str(run_dir.path), mark_run_dir(run_dir), options.share_run_dir)
    with actor_pool(ray, config, setup, prior, workers, resources, options.engine_factory,
                    holds_gpu(sized, options, cluster)) as pool:
        in_flight: dict[Any, list[Task]] = {}
        slots = [actor for actor in pool.actors for _ in range(QUEUED)]
        owner: dict[Any, Any] = {}
        block: list[Task] | None = first
        try:
            while True:
                while slots and (block := block or list(islice(tasks, block_size))):
                    actor = slots.pop(0)
                    ref = pool.run(actor, block)
                    in_flight[ref], owner[ref], block = block, actor, None
                if not in_flight:
                    break
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                done, actor = in_flight.pop(ref), owner.pop(ref)
                slots.append(actor)
                _settle(ray.get(ref), done, plan, runner, summary, progress, run_dir)
        except ray.exceptions.RayError as exc:
            raise _as_topictree_error(exc, run_dir) from None


def _settle(result: BlockResult, tasks: list[Task], plan: TaskPlan | None, runner: RayRunner, summary: Summary,
            progress: Progress | None, run_dir: RunDir) -> None:
    """One finished block: its error re-raised as one line, else its records journaled (from an actor
    that does not share the run dir), its counts merged and its outcomes reported to the plan (a task
    neither kept nor failed counts as failed)."""
    if result.backend:
        runner.chose("samples", result.node, Choice(result.backend, result.why))
    if result.error_type:
        raise _worker_error(result.error_type, result.error)
    if result.samples or result.failures:
        receive_block(run_dir, result.block, result.samples, result.failures)
    block = Summary.from_dict(result.summary)
    summary.merge(block)
    if plan is not None:
        kept = set(result.kept)
        plan.count_retries(block.retried)
        for task in tasks:
            plan.settled(task, task.id in kept)
    if progress is not None:  # delivered samples, as the local runner counts them
        progress(block.valid)


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
