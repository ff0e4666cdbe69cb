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

Resources follow Ray's own vLLM batch-inference conventions (ray.data.llm's vLLM stage): one GPU
per actor and vLLM's "uni" executor when tensor_parallel_size is 1; otherwise `num_gpus=0` on the
actor plus a placement group of tensor_parallel_size {GPU: 1, CPU: 1} bundles, in which vLLM's
"ray" executor places its workers. CPU backends take `num_cpus` per actor (Ray sets OMP threads
to match). The run dir must be on storage every node sees (NFS, a mounted bucket).

Dedup of samples is per actor (plus everything journaled before the actor started): near-duplicates
made at the same time on two actors can both be kept.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topictree_hf import errors
from topictree_hf.config import Config, EngineConfig
from topictree_hf.engines.base import Engine
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import BackendUnavailableError, EngineError, TopicTreeError
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import Progress, SampleGenerator, Summary
from topictree_hf.rundir import RunDir
from topictree_hf.runners.base import Runner, TreeWork
from topictree_hf.runners.blocks import (
    add_row,
    merge_failure_shards,
    process_block,
    summary_row,
    task_row,
    tasks_from_columns,
)
from topictree_hf.telemetry import usage_stats_choice
from topictree_hf.tree.builder import LevelProgress
from topictree_hf.tree.model import TopicTree

if TYPE_CHECKING:
    from types import ModuleType

logger = logging.getLogger(__name__)
INSTALL = "pip install 'topictree-hf[ray]'"
EngineFactory = Callable[[EngineConfig], Engine]
# Passed to every worker of a cluster we start or join: no telemetry, nothing fetched, quiet libraries.
WORKER_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0",
              "TOKENIZERS_PARALLELISM": "false", "TOPICTREE_NO_PROGRESS": "1"}
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TOPICTREE_CACHE", "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS")


def worker_env() -> dict[str, str]:
    """What every worker gets: no telemetry unless the user chose otherwise here (then their choice)."""
    env = dict(WORKER_ENV)
    choice = usage_stats_choice()
    if choice:
        for name in ("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
            env.pop(name)
        env.update(choice)
    return env | {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


@dataclass(slots=True)
class RayOptions:
    """How the Ray runner uses the cluster; every field has a default that fits the config."""

    address: str | None = None  # "ray://HOST:10001", "HOST:6379", "auto"; None: RAY_ADDRESS or a local cluster
    workers: int | None = None  # actors (one engine each); default: GPUs // tensor_parallel_size, or CPUs
    block_size: int | None = None  # tasks per block (one journal shard); default 4 x engine.batch_size
    num_cpus: float | None = None  # per actor; default 1
    num_gpus: float | None = None  # per actor; default: tensor_parallel_size for vllm, else 0
    engine_factory: EngineFactory | None = None  # picklable; default: the backend registry (create_engine)


def require_ray() -> ModuleType:
    """Import ray (and ray.data), or one line naming the install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the runner needs the data library, not only the core
    except ImportError:
        raise BackendUnavailableError(f"the ray runner needs Ray, which is not installed: {INSTALL}") from None
    return ray


@contextmanager
def ray_session(options: RayOptions, quiet: bool = True) -> Iterator[ModuleType]:
    """Join (or start) the cluster unless this process is already connected; leave it as found."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS")
        problem = _unreachable(address) if address else None
        if problem is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before a local cluster starts
            env = worker_env()
            try:
                ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING,
                         runtime_env={"env_vars": env})
            except (ConnectionError, ValueError, RuntimeError) as exc:
                problem = _first_line(exc)
        if problem is not None:
            raise errors.ServerUnreachableError(f"cannot join the Ray cluster at {address or 'this machine'} "
                                                f"({problem}); start it with `ray start --head` or fix --ray-address")
        started = True
    context = ray.data.DataContext.get_current()
    if quiet:
        context.enable_progress_bars = False  # the caller shows its own progress
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _unreachable(address: str) -> str | None:
    """Why HOST:PORT (or ray://HOST:PORT) takes no connection, or None. Checked first because ray.init
    keeps retrying a dead address for minutes; "auto" and "local" are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def worker_engine_config(engine: EngineConfig) -> EngineConfig:
    """vLLM in an actor: the single-process executor on one GPU, the Ray executor across several
    (as ray.data.llm does); an explicit engine.options value wins."""
    if engine.backend != "vllm" or "distributed_executor_backend" in engine.options:
        return engine
    executor = "uni" if engine.tensor_parallel_size == 1 else "ray"
    return engine.model_copy(update={"options": {**engine.options, "distributed_executor_backend": executor}})


def actor_resources(engine: EngineConfig, options: RayOptions, supports_remote_args_fn: bool = True
                    ) -> dict[str, Any]:
    """Resource arguments for one actor (map_batches keywords)."""
    num_cpus = 1.0 if options.num_cpus is None else options.num_cpus
    tp = engine.tensor_parallel_size if engine.backend == "vllm" else 1
    if options.num_gpus is not None:
        return {"num_cpus": num_cpus, "num_gpus": options.num_gpus}
    if engine.backend != "vllm":
        return {"num_cpus": num_cpus, "num_gpus": 0}
    if tp == 1:
        return {"num_cpus": num_cpus, "num_gpus": 1}
    resources: dict[str, Any] = {"num_gpus": 0}  # the placement group holds the GPUs, vLLM's workers use them
    if supports_remote_args_fn:  # else (Ray >= 2.64) vLLM's Ray executor makes the placement group itself
        resources["ray_remote_args_fn"] = partial(_placement_group_strategy, tp)
    return resources


def _placement_group_strategy(bundles: int) -> dict[str, Any]:
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * bundles, strategy="PACK")
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)}


def default_workers(ray: ModuleType, engine: EngineConfig, options: RayOptions, blocks: int) -> int:
    if options.workers:
        return max(1, min(options.workers, blocks))
    cluster = ray.cluster_resources()
    if engine.backend == "vllm":
        fit = int(cluster.get("GPU", 0) // engine.tensor_parallel_size)
        if fit < 1:
            raise errors.ConfigError(f"the Ray cluster has {cluster.get('GPU', 0):g} GPUs, fewer than "
                                     f"tensor_parallel_size {engine.tensor_parallel_size}; add GPU nodes or "
                                     "lower engine.tensor_parallel_size")
    else:
        fit = int(cluster.get("CPU", 1) // (options.num_cpus or 1))
    return max(1, min(fit, blocks))


class RayRunner(Runner):
    """The tree on one Ray worker, the samples on a Ray Data actor pool (see the module docstring).
    Connect first (`ray_session`, or `ray.init`); otherwise Ray Data starts a local cluster itself."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()

    def build_tree(self, config: Config, run_dir: RunDir, work: TreeWork,
                   progress: LevelProgress | None = None) -> TopicTree:
        """`work` in one Ray task with one worker's resources (no progress: it runs elsewhere)."""
        if run_dir.tree_file.exists():
            return TopicTree.load(run_dir.tree_file)
        ray = require_ray()
        resources = actor_resources(config.engine, self.options)
        strategy = resources.pop("ray_remote_args_fn", lambda: {})()
        group = getattr(strategy.get("scheduling_strategy"), "placement_group", None)
        remote = ray.remote(max_calls=1)(_tree_task).options(**resources, **strategy)  # max_calls=1: GPU freed
        try:
            tree: TopicTree = ray.get(remote.remote(work, config, str(run_dir.path), self.options.engine_factory))
        except ray.exceptions.RayError as exc:
            raise _as_topictree_error(exc, run_dir) from None
        finally:
            if group is not None:  # give the GPUs back before the actors ask for theirs
                ray.util.remove_placement_group(group)
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
                _run_blocks(require_ray(), config, run_dir, rows, self.options, summary, progress)
        finally:
            merge_failure_shards(run_dir)


def _tree_task(work: TreeWork, config: Config, path: str, engine_factory: EngineFactory | None) -> TopicTree:
    with (engine_factory or create_engine)(worker_engine_config(config.engine)) as engine:
        return work(config, engine, RunDir(Path(path)), None)


def _run_blocks(ray: ModuleType, config: Config, run_dir: RunDir, rows: list[dict[str, Any]], options: RayOptions,
                summary: Summary, progress: Progress | None) -> None:
    block_size = options.block_size or 4 * config.engine.batch_size
    blocks = math.ceil(len(rows) / block_size)
    workers = default_workers(ray, config.engine, options, blocks)
    supports_fn = "ray_remote_args_fn" in inspect.signature(ray.data.Dataset.map_batches).parameters
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    results = dataset.map_batches(
        SampleWorker,
        fn_constructor_kwargs={"config": config, "run_path": str(run_dir.path),
                               "engine_factory": options.engine_factory},
        batch_size=block_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        **actor_resources(config.engine, options, supports_fn),
    )
    try:
        for row in results.iter_rows():
            if row["error_type"]:
                raise _worker_error(row["error_type"], row["error"])
            add_row(summary, row)
            if progress is not None:  # delivered samples, as the local runner counts them
                progress(int(row["valid"]))
    except ray.exceptions.RayError as exc:
        raise _as_topictree_error(exc, run_dir) from None


class SampleWorker:
    """One Ray actor: one engine, one SampleGenerator; each call is one block, journaled on its own.

    A TopicTreeError (model missing on this node, server down, ...) comes back as a result row, so the
    driver re-raises it as the same one-line error instead of Ray's wrapped traceback."""

    def __init__(self, config: Config, run_path: str, engine_factory: EngineFactory | None = None) -> None:
        self.error: TopicTreeError | None = None
        self.run_dir = RunDir(Path(run_path))
        try:
            self.engine = (engine_factory or create_engine)(worker_engine_config(config.engine))
            self.generator = SampleGenerator(self.engine, config, self.run_dir)
            self.generator.remember(self.run_dir.iter_samples())  # what earlier runs kept, for the dedup
        except TopicTreeError as exc:
            self.error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        try:
            if self.error is not None:
                raise self.error
            name, summary = process_block(self.generator, self.run_dir, tasks_from_columns(batch))
            row = summary_row(name, summary)
        except TopicTreeError as exc:
            row = summary_row("", Summary()) | {"error_type": type(exc).__name__, "error": str(exc)}
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
    return EngineError(f"the Ray run failed ({type(shown).__name__}: {_first_line(shown)}); finished work is "
                       f"journaled in {run_dir.path}: fix the cause (see the Ray logs) and rerun to resume")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__
