"""The Ray runner: block journals (no Ray needed), then a local Ray cluster (`ray.init(num_cpus=2)`)
with 2 actors, first on the scripted engine, then (slow) on the bundled model: the same sample ids and
leaf coverage as a single-process run with the same seed, and every id exactly once after an actor is
killed mid-run. Ray comes with `scripts/setup.sh --dev` (the `ray` extra), so these tests always run."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine, request_kind

from topictree_hf.cli import main
from topictree_hf.config import SMOLLM2, Config, EngineConfig
from topictree_hf.dedup import KeptText
from topictree_hf.engines import auto
from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress
from topictree_hf.engines.registry import create_engine
from topictree_hf.errors import ConfigError, EngineError, ModelNotFoundError
from topictree_hf.generation.allocate import allocate
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.generation.summary import Summary
from topictree_hf.journal import read_jsonl
from topictree_hf.pipeline import generate_stage, tree_stage
from topictree_hf.rundir import RunDir
from topictree_hf.runners.blocks import (
    block_name,
    block_paths,
    block_records,
    merge_failure_shards,
    process_block,
    receive_block,
)
from topictree_hf.runners.ray_cluster import (
    check_feasible,
    default_workers,
    holds_gpu,
    node_engine,
    sized_for,
    vllm_cpu_cores,
)
from topictree_hf.runners.ray_disk import drop_scratch, mark_run_dir, scratch_root, worker_run_dir
from topictree_hf.runners.ray_pool import PoolSetup, SampleWorker
from topictree_hf.runners.ray_runner import RayOptions, RayRunner, actor_resources, worker_engine_config
from topictree_hf.tree.model import TopicTree

WORDS = [f"{a}{b}{c}" for a in "bdfgklmnprstvz" for b in "aeiou" for c in "nrs"]


def respond(req: ChatRequest) -> str | Completion:
    """Deterministic per request seed: a valid unique sample, or (1 in 5) junk that is retried."""
    rng = random.Random(req.sampling.seed)
    if rng.random() < 0.2:
        return "no JSON here"
    assert req.json_schema is not None
    return json.dumps({k: " ".join(rng.choices(WORDS, k=10)) + "." for k in req.json_schema["properties"]})


def fake_factory(_config: EngineConfig) -> Engine:
    return FakeEngine(respond)


class DiesOnce(Engine):
    """Wraps an engine; the first engine in the cluster to reach its second batch kills its process
    (after its first batch was journaled: mid-block). A marker file makes it happen exactly once."""

    def __init__(self, inner: Engine, marker: str) -> None:
        self.inner, self.marker, self.calls = inner, marker, 0
        self.backend = inner.backend  # type: ignore[misc]
        self.model_name = inner.model_name
        self.parameter_count = getattr(inner, "parameter_count", None)

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        self.calls += 1
        if self.calls == 2:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # like a node lost mid-block: no cleanup, no exception
        return self.inner.generate(requests, progress)


@dataclass
class DyingFactory:
    marker: str
    inner: Callable[[EngineConfig], Engine]

    def __call__(self, config: EngineConfig) -> Engine:
        return DiesOnce(self.inner(config), self.marker)


def flat_tree(leaves: int) -> TopicTree:
    tree = TopicTree.new("Historical Events")
    for topic in ["Ancient Rome", "Medieval Europe", "Industrial Revolution", "Cold War", "Ming Dynasty"][:leaves]:
        tree.add_child(tree.root_id, topic)
    return tree


def make_config(run: Path, samples: int, **engine: Any) -> Config:
    return Config(generation={"num_samples": samples, "formats": ["qa"], "dedup": "exact", "max_retries": 1,
                              "plan": False},
                  engine={"batch_size": 3} | engine, output={"run_dir": str(run)})


def prepared(config: Config) -> RunDir:
    run_dir = RunDir(config.run_dir)
    run_dir.prepare(config)
    return run_dir


def id_lines(run_dir: RunDir) -> Counter[str]:
    """Every id as often as it is written anywhere in the run dir (raw shards, not the deduping reader)."""
    lines: Counter[str] = Counter()
    for path in [*run_dir.sample_shards(), run_dir.failures]:
        lines.update(r["id"] for r in read_jsonl(path))
    return lines


def local_run(config: Config, tree: TopicTree, engine: Engine) -> RunDir:
    run_dir = prepared(config)
    generate_stage(config, engine, run_dir, tree)
    return run_dir


# ---------------------------------------------------------------- block journals, no Ray needed


def test_an_interrupted_block_is_finished_without_duplicates(tmp_path: Path) -> None:
    config = make_config(tmp_path / "run", 12)
    run_dir, tree = prepared(config), flat_tree(3)
    tasks = list(allocate(tree, config.generation))

    class Boom(Exception):
        pass

    calls = {"n": 0}

    def dies_on_second_batch(req: ChatRequest) -> str | Completion:
        if calls["n"] >= 3:  # the second batch of 3
            raise Boom
        calls["n"] += 1
        return respond(req)

    with pytest.raises(Boom):
        process_block(SampleGenerator(FakeEngine(dies_on_second_batch), config, run_dir), run_dir, tasks)
    shard, _ = block_paths(run_dir, block_name(t.id for t in tasks))
    first = {r["id"] for r in read_jsonl(shard)}
    assert 0 < len(first) <= 3
    name, summary = process_block(SampleGenerator(FakeEngine(respond), config, run_dir), run_dir, tasks)
    assert shard.name == f"samples-ray-{name}.jsonl"
    merge_failure_shards(run_dir)
    lines = id_lines(run_dir)
    assert set(lines) == {t.id for t in tasks} and set(lines.values()) == {1}
    assert summary.valid + summary.failed == 12


def test_failure_shards_fold_into_failures_jsonl_once(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    for name, ids in (("a", ["x", "y"]), ("b", ["y", "z"])):
        block_paths(run_dir, name)[1].write_text("".join(json.dumps({"id": i, "reason": "r"}) + "\n" for i in ids))
    assert run_dir.journaled_ids() == {"x", "y", "z"}, "a failure shard counts as journaled before it is merged"
    assert merge_failure_shards(run_dir) == 3
    assert merge_failure_shards(run_dir) == 0
    assert [f.id for f in run_dir.iter_failures()] == ["x", "y", "z"]
    assert not list(tmp_path.glob("failures-ray-*"))


def test_a_worker_journals_in_the_run_dir_only_where_it_sees_the_drivers(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    token = mark_run_dir(run_dir)
    assert mark_run_dir(run_dir) == token, "one token per run dir, kept across stages and reruns"
    here, shared = worker_run_dir(str(run_dir.path), token, "w1")
    assert shared and here.path == run_dir.path
    # another disk mounted at the same path (its own marker), no such path, or sharing turned off: scratch
    (tmp_path / "other").mkdir()
    mark_run_dir(RunDir(tmp_path / "other"))
    for path, share in ((tmp_path / "other", None), (tmp_path / "missing", None), (run_dir.path, False)):
        scratch, shared = worker_run_dir(str(path), token, "w1", share)
        assert not shared and scratch.path == scratch_root(token) / "w1" and scratch.path.is_dir()
        drop_scratch(scratch, shared)
        assert not scratch.path.exists() and not scratch_root(token).exists(), "nothing left in the node's tmp"
    drop_scratch(here, True)
    assert run_dir.path.is_dir(), "the driver's run dir is never removed"


def test_a_block_sent_back_is_journaled_once_per_id(tmp_path: Path) -> None:
    tree, config = flat_tree(2), make_config(tmp_path / "run", 6)
    scratch, driver = RunDir(tmp_path / "scratch"), prepared(config)
    tasks = list(allocate(tree, config.generation))
    name, summary = process_block(SampleGenerator(FakeEngine(respond), config, scratch), scratch, tasks)
    samples, failures = block_records(scratch, name)
    assert len(samples) == summary.valid and len(samples) + len(failures) == len(tasks)
    assert receive_block(driver, name, samples, failures) == len(tasks)
    assert receive_block(driver, name, samples, failures) == 0, "a block sent again (a retry) adds nothing"
    assert id_lines(driver) == Counter({t.id: 1 for t in tasks})
    assert [s.to_json() for s in driver.iter_samples()] == [s.to_json() for s in scratch.iter_samples()]


def test_a_library_caller_asking_ray_for_leaf_plans_gets_one_line_not_a_silent_skip(tmp_path: Path) -> None:
    config = make_config(tmp_path, 6).model_copy(deep=True)
    config.generation.plan = True
    with pytest.raises(ConfigError, match=r"generation.plan runs on the local runner only .*\(--no-plan\)$"):
        RayRunner().generate(config, prepared(config), iter([]), Summary())


GPU_CLUSTER, CPU_CLUSTER = {"CPU": 16, "GPU": 8}, {"CPU": 16}


def test_actor_resources_follow_ray_vllm_conventions() -> None:
    options = RayOptions()
    assert actor_resources(EngineConfig(backend="transformers"), options, GPU_CLUSTER) == {"num_cpus": 1.0,
                                                                                          "num_gpus": 0}
    one = EngineConfig(backend="vllm", model="/m")
    assert actor_resources(one, options, GPU_CLUSTER) == {"num_cpus": 1.0, "num_gpus": 1}
    assert worker_engine_config(one).options == {"distributed_executor_backend": "uni"}
    four = EngineConfig(backend="vllm", model="/m", tensor_parallel_size=4)
    res = actor_resources(four, options, GPU_CLUSTER)
    assert res["num_gpus"] == 0 and res["ray_remote_args_fn"].args == (4,)  # a placement group of 4 GPU bundles
    assert worker_engine_config(four).options == {"distributed_executor_backend": "ray"}
    mine = EngineConfig(backend="vllm", model="/m", options={"distributed_executor_backend": "mp"})
    assert worker_engine_config(mine).options == {"distributed_executor_backend": "mp"}
    assert actor_resources(four, RayOptions(num_gpus=2, num_cpus=4), GPU_CLUSTER) == {"num_cpus": 4, "num_gpus": 2}


def test_vllm_on_a_cluster_without_gpus_asks_for_cores_not_gpus() -> None:
    """The vllm backend on CPU nodes (vllm-cpu): cores per actor, one actor per node by default; asking
    for what no node has is one line, not an actor that waits forever (the hang of `--backend vllm`
    on a CPU cluster, 2026-12-03)."""
    vllm, options = EngineConfig(backend="vllm", model="/m"), RayOptions()
    assert actor_resources(vllm, options, CPU_CLUSTER, cores=8) == {"num_cpus": 8, "num_gpus": 0}
    assert not holds_gpu(vllm, options, CPU_CLUSTER) and holds_gpu(vllm, options, GPU_CLUSTER)
    assert vllm_cpu_cores(node_cpus=2, total_cpus=2, workers=1) == 2
    assert vllm_cpu_cores(node_cpus=2, total_cpus=2, workers=2) == 1
    assert vllm_cpu_cores(node_cpus=16, total_cpus=64, workers=2) == 16, "never more than one node has"
    assert default_workers(CPU_CLUSTER | {"CPU": 64}, vllm, options, blocks=10, nodes=4) == 4
    assert default_workers(CPU_CLUSTER, vllm, RayOptions(workers=2), blocks=10) == 2
    check_feasible({"num_cpus": 2, "num_gpus": 0}, {"CPU": 2}, node_cpus=2)
    with pytest.raises(ConfigError, match="asks for 1 GPUs but the cluster has 0"):
        check_feasible({"num_cpus": 1, "num_gpus": 1}, {"CPU": 2}, node_cpus=2)
    with pytest.raises(ConfigError, match="asks for 4 CPUs but no node has more than 2"):
        check_feasible({"num_cpus": 4, "num_gpus": 0}, {"CPU": 8}, node_cpus=2)


def test_auto_asks_for_gpus_where_the_cluster_has_them_and_resolves_on_the_node(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`backend: auto` (the default) sizes actors as vLLM does on a GPU cluster, as transformers on a CPU
    one; each actor then resolves it where it runs, vLLM's executor option only when it chose vLLM."""
    default, options = EngineConfig(model="/m"), RayOptions()
    gpus, cpus = {"CPU": 16, "GPU": 2}, {"CPU": 16}
    on_gpus = sized_for(default, gpus)
    assert on_gpus.backend == "vllm" and actor_resources(on_gpus, options, gpus) == {"num_cpus": 1.0, "num_gpus": 1}
    on_cpus = sized_for(default, cpus)
    assert on_cpus.backend == "transformers" and actor_resources(on_cpus, options, cpus) == {"num_cpus": 1.0,
                                                                                             "num_gpus": 0}
    assert sized_for(default.model_copy(update={"tensor_parallel_size": 4}), {"GPU": 2}).backend == "transformers"
    assert sized_for(EngineConfig(backend="openai", base_url="http://h/v1"), {"GPU": 8}).backend == "openai"
    assert holds_gpu(on_gpus, options, gpus) and not holds_gpu(on_cpus, options, cpus)
    assert not holds_gpu(on_gpus, RayOptions(num_gpus=0), gpus) and holds_gpu(on_cpus, RayOptions(num_gpus=1), cpus)

    monkeypatch.setattr(auto, "vllm_build", lambda: "gpu")  # a GPU node with the CUDA build
    config, choice = node_engine(default, gpu=True)
    assert (config.backend, choice) == ("vllm", auto.Choice("vllm", "a CUDA GPU"))
    assert config.options == {"distributed_executor_backend": "uni"}
    monkeypatch.setattr(auto, "vllm_build", lambda: None)  # a node without vLLM
    config, choice = node_engine(default, gpu=True)
    assert (config.backend, config.options, choice) == ("transformers", {}, auto.Choice("transformers",
                                                                                        "vLLM is not installed"))
    named = EngineConfig(backend="vllm", model="/m")
    assert node_engine(named, gpu=True) == (worker_engine_config(named), None), "a named backend is not chosen"


def test_cli_ray_runner_without_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    code = main(["run", "--runner", "ray", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "pip install 'topictree-hf[ray]'" in err
    assert not (tmp_path / "run").exists(), "nothing is written before the runner is known to work"


def test_cli_ray_flags_need_the_ray_runner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workers", "2", "--run-dir", str(tmp_path / "run")]) == 2
    assert "--runner ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--runner", "spark"])
    assert exit_.value.code == 2


def test_cli_unreachable_ray_address_is_one_line_and_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    import ray

    assert not ray.is_initialized(), "an earlier test left this process connected to a Ray cluster"
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["run", "--runner", "ray", "--ray-address", f"127.0.0.1:{port}", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "cannot join the Ray cluster" in err and "--ray-address" in err


# ---------------------------------------------------------------- a local Ray cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors need this module's factories
    ray.cloudpickle.register_pickle_by_value(sys.modules[FakeEngine.__module__])  # and tests/ is not on their path
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"TOPICTREE_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false",
                                       "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def ray_run(config: Config, tree: TopicTree, factory: Callable[[EngineConfig], Engine] | None,
            block_size: int, share: bool | None = None) -> RunDir:
    run_dir = prepared(config)
    options = RayOptions(workers=2, block_size=block_size, engine_factory=factory, share_run_dir=share)
    summary = generate_stage(config, RayRunner(options), run_dir, tree)
    assert summary.valid == len(list(run_dir.iter_samples()))
    return run_dir


def assert_same_as_local(ray_dir: RunDir, local_dir: RunDir, tree: TopicTree, config: Config) -> None:
    """Every allocated id journaled exactly once (as a sample or a failure), in both runs, and the same
    leaves covered by valid samples. (Which ids end up valid can differ with the bundled model only if
    CPU arithmetic differs between processes; both runs send batches of one request, so no padding.)"""
    allocated = {t.id for t in allocate(tree, config.generation)}
    lines = id_lines(ray_dir)
    assert allocated <= set(lines) and set(lines.values()) == {1}, "every id exactly once"
    assert not list(ray_dir.path.glob("failures-ray-*")), "failure shards are folded into failures.jsonl"
    local_ids = {s.id for s in local_dir.iter_samples()} | {f.id for f in local_dir.iter_failures()}
    assert allocated <= local_ids and set(lines) == local_ids, "the same top-ups (driver rounds) as the local stream"
    assert {s.leaf_id for s in ray_dir.iter_samples()} == {s.leaf_id for s in local_dir.iter_samples()}


def test_ray_tree_stage_builds_the_tree_on_a_worker(ray_cluster: Any, tmp_path: Path) -> None:
    def subtopics(req: ChatRequest) -> str:
        return json.dumps({"subtopics": ["Ancient Rome", "Medieval Europe"]})

    config = Config(tree={"depth": 1, "degree": 2}, output={"run_dir": str(tmp_path)})
    runner = RayRunner(RayOptions(engine_factory=lambda _c: FakeEngine(subtopics)))
    tree = tree_stage(config, runner, prepared(config))
    assert sorted(n.topic for n in tree.leaves()) == ["Ancient Rome", "Medieval Europe"]
    assert TopicTree.load(tmp_path / "topic_tree.json").stats() == tree.stats()


def test_ray_run_matches_the_local_run(ray_cluster: Any, tmp_path: Path) -> None:
    tree = flat_tree(5)
    config = make_config(tmp_path / "ray", 60)
    ray_dir = ray_run(config, tree, fake_factory, block_size=6)
    local_dir = local_run(make_config(tmp_path / "local", 60), tree, FakeEngine(respond))
    assert_same_as_local(ray_dir, local_dir, tree, config)
    # the scripted engine is deterministic per request, so even the texts agree
    assert ({s.id: s.messages for s in ray_dir.iter_samples()}
            == {s.id: s.messages for s in local_dir.iter_samples()})
    assert len(list(ray_dir.path.glob("samples-ray-*.jsonl"))) >= 10, "one shard per block of 6 (+ top-up rounds)"


SAME_COUNTS = ("asked", "delivered", "missing", "short_reason", "resumed", "valid", "failed", "retried",
               "rejections", "failures", "requests", "topups", "budget", "budget_spent", "output_tokens", "mode")


def test_ray_and_local_summaries_agree(ray_cluster: Any, tmp_path: Path) -> None:
    """The same work counts the same on both runners: Ray's blocks (and its top-up rounds) merged on
    the driver give the local stream's numbers, in summary.json too. Only where the work ran differs
    (engine_calls: one stream per block) and the timings."""
    tree = flat_tree(5)
    ray_config, local_config = make_config(tmp_path / "ray", 30), make_config(tmp_path / "local", 30)
    options = RayOptions(workers=2, block_size=6, engine_factory=fake_factory)
    ray = generate_stage(ray_config, RayRunner(options), prepared(ray_config), tree).to_dict()
    local = generate_stage(local_config, FakeEngine(respond), prepared(local_config), tree).to_dict()
    assert local["retried"] > 0 and local["failed"] > 0 and local["topups"] > 0, "retries, failures, top-ups counted"
    assert {k: ray[k] for k in SAME_COUNTS} == {k: local[k] for k in SAME_COUNTS}
    assert ray["engine_calls"] > local["engine_calls"] == 1
    on_disk = [json.loads((tmp_path / arm / "summary.json").read_text())["generation"] for arm in ("ray", "local")]
    assert [{k: d[k] for k in SAME_COUNTS} for d in on_disk] == [{k: local[k] for k in SAME_COUNTS}] * 2


def test_ray_actor_killed_mid_run_every_id_once(ray_cluster: Any, tmp_path: Path) -> None:
    tree = flat_tree(5)
    config = make_config(tmp_path / "ray", 60)
    marker = tmp_path / "died"
    ray_dir = ray_run(config, tree, DyingFactory(str(marker), fake_factory), block_size=6)
    assert marker.exists(), "an actor was killed"
    local_dir = local_run(make_config(tmp_path / "local", 60), tree, FakeEngine(respond))
    assert_same_as_local(ray_dir, local_dir, tree, config)


def test_workers_that_do_not_see_the_run_dir_send_their_journals_through_ray(ray_cluster: Any,
                                                                            tmp_path: Path) -> None:
    """No node but the driver's touches the run dir: the tree comes back from its task, every block's
    records from its actor (an actor killed mid-block resumes from its own scratch); the result equals
    the local runner's and no scratch folder is left."""
    tree_dir = tmp_path / "tree"
    runner = RayRunner(RayOptions(engine_factory=lambda _c: FakeEngine(respond_any), share_run_dir=False))
    tree_config = Config(tree={"depth": 1, "degree": 2}, output={"run_dir": str(tree_dir)})
    tree = tree_stage(tree_config, runner, prepared(tree_config))
    assert TopicTree.load(tree_dir / "topic_tree.json").stats() == tree.stats()
    assert (tree_dir / "topic_tree.png").exists() and not (tree_dir / "tree.jsonl").exists()
    flat, config, marker = flat_tree(5), make_config(tmp_path / "ray", 60), tmp_path / "died"
    ray_dir = ray_run(config, flat, DyingFactory(str(marker), fake_factory), block_size=6, share=False)
    assert marker.exists(), "an actor was killed"
    local_dir = local_run(make_config(tmp_path / "local", 60), flat, FakeEngine(respond))
    assert_same_as_local(ray_dir, local_dir, flat, config)
    kept = sorted(s.id for s in ray_dir.iter_samples())
    assert kept and kept == sorted(s.id for s in local_dir.iter_samples())
    assert not scratch_root(mark_run_dir(ray_dir)).exists(), "no scratch folder left on the node"


def test_an_actor_remembers_what_the_run_kept_before_once_per_process(ray_cluster: Any, tmp_path: Path) -> None:
    """The dedup memory reaches an actor by reference with its first block (not as a constructor
    argument, which a restart could not get back), and is read once per actor process."""
    config = make_config(tmp_path / "run", 6, backend="transformers")  # named: resolved nowhere
    run_dir = prepared(config)
    worker = SampleWorker(config, PoolSetup(str(run_dir.path), mark_run_dir(run_dir)), fake_factory)
    kept = KeptText("an answer kept by an earlier run")
    prior = ray_cluster.put([kept])
    assert worker.generator is not None
    dedup, remembered = worker.generator.dedup, []
    real = dedup.remember
    dedup.remember = lambda texts: (remembered.extend(texts := list(texts)), real(texts))  # type: ignore[method-assign]
    tasks = list(allocate(flat_tree(2), config.generation))
    assert not worker.run(tasks[:3], [prior]).error and not worker.run(tasks[3:], [prior]).error
    assert remembered.count(kept) == 1, "read once per actor process, not once per block"
    assert dedup.check_and_add(kept.text), "a text the run kept before is a duplicate"
    worker.close()


def test_ray_rerun_skips_what_is_journaled(ray_cluster: Any, tmp_path: Path) -> None:
    tree, config = flat_tree(3), make_config(tmp_path / "run", 18)
    run_dir = prepared(config)
    first_half = list(allocate(tree, config.generation))[:9]
    process_block(SampleGenerator(FakeEngine(respond), config, run_dir), run_dir, first_half)
    summary = generate_stage(config, RayRunner(RayOptions(workers=2, block_size=3, engine_factory=fake_factory)),
                             run_dir, tree)
    assert summary.resumed == 9 and summary.valid + summary.failed >= 9  # + top-ups for short leaves
    lines = id_lines(run_dir)
    assert {t.id for t in allocate(tree, config.generation)} <= set(lines) and set(lines.values()) == {1}
    assert summary.delivered == len(list(run_dir.iter_samples()))


def respond_any(req: ChatRequest) -> str | Completion:
    if request_kind(req) == "subtopics":
        return json.dumps({"subtopics": ["Ancient Rome", "Medieval Europe"]})
    return respond(req)


def engine_on_chosen_backend(config: EngineConfig) -> Engine:
    """The scripted engine, under the backend name the actor opened it with (written in every sample)."""
    engine = FakeEngine(respond_any)
    engine.backend = config.backend  # type: ignore[misc]
    return engine


def test_ray_auto_is_chosen_on_each_node_and_reported(ray_cluster: Any, tmp_path: Path) -> None:
    """`backend: auto` on Ray: the tree task and every actor resolve it on their node from the cores Ray
    gave them (1 each here), open that backend, and the runner reports it once per node and work."""
    config = make_config(tmp_path / "run", 12, backend="auto")
    config.tree.depth, config.tree.degree = 1, 2
    heard: list[tuple[str, str, str, str]] = []
    runner = RayRunner(RayOptions(workers=2, block_size=3, engine_factory=engine_on_chosen_backend),
                       report=lambda *choice: heard.append(choice))
    run_dir = prepared(config)
    tree_stage(config, runner, run_dir)
    generate_stage(config, runner, run_dir, TopicTree.load(run_dir.tree_file))
    expected = auto.choose_backend(cores=1)  # this machine, holding one core (the test cluster's actors do)
    node = socket.gethostname()
    assert heard == [("the tree", node, *expected), ("samples", node, *expected)]
    assert expected.why and {s.backend for s in run_dir.iter_samples()} == {expected.backend}
    heard.clear()
    named = make_config(tmp_path / "named", 6, backend="fake")
    generate_stage(named, runner, prepared(named), flat_tree(2))
    assert heard == [], "a backend named in the config is not chosen, so nothing is reported"


def test_the_cli_prints_what_auto_became_on_a_node(capsys: pytest.CaptureFixture[str]) -> None:
    from topictree_hf.cli.common import CliWatcher

    CliWatcher().backend_chosen("samples", "node-7", "transformers", "vLLM is not installed")
    assert capsys.readouterr().err == "Ray samples on node-7: backend auto -> transformers (vLLM is not installed)\n"


def test_ray_worker_errors_come_back_as_one_line(ray_cluster: Any, tmp_path: Path) -> None:
    def no_model(_config: EngineConfig) -> Engine:
        raise ModelNotFoundError("model /nowhere does not exist on this node; install it on every node")

    config = make_config(tmp_path / "run", 6)
    with pytest.raises(ModelNotFoundError, match="does not exist on this node") as err:
        generate_stage(config, RayRunner(RayOptions(workers=1, engine_factory=no_model)), prepared(config),
                       flat_tree(2))
    assert "\n" not in str(err.value)
    with pytest.raises(ModelNotFoundError, match="^model /nowhere does not exist on this node"):
        tree_stage(config, RayRunner(RayOptions(engine_factory=no_model)), RunDir(config.run_dir))

    def crashes(_config: EngineConfig) -> Engine:
        raise RuntimeError("a bug")

    with pytest.raises(EngineError, match="the Ray run failed .* rerun to resume"):
        generate_stage(config, RayRunner(RayOptions(workers=1, engine_factory=crashes)), RunDir(config.run_dir),
                       flat_tree(2))
    with pytest.raises(EngineError, match=r"the Ray run failed \(RuntimeError: a bug\)"):
        tree_stage(config, RayRunner(RayOptions(engine_factory=crashes)), RunDir(config.run_dir))


# ---------------------------------------------------------------- the bundled model on 2 actors (slow)


@pytest.fixture(scope="module")
def bundled_tree() -> TopicTree:
    return flat_tree(2)


def bundled_config(run: Path) -> Config:
    return Config(generation={"num_samples": 4, "formats": ["qa"], "max_tokens": 48, "max_retries": 0, "seed": 7,
                              "plan": False},  # the Ray runner does not plan: compared like for like
                  engine={"backend": "transformers", "model": SMOLLM2, "batch_size": 1}, output={"run_dir": str(run)})


@pytest.fixture(scope="module")
def bundled_local_run(bundled_engine: Engine, bundled_tree: TopicTree,
                      tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return local_run(bundled_config(tmp_path_factory.mktemp("local")), bundled_tree, bundled_engine)


@pytest.mark.slow
def test_ray_bundled_model_same_ids_and_coverage(ray_cluster: Any, bundled_local_run: RunDir,
                                                 bundled_tree: TopicTree, tmp_path: Path) -> None:
    config = bundled_config(tmp_path / "ray")
    ray_dir = ray_run(config, bundled_tree, None, block_size=2)
    assert_same_as_local(ray_dir, bundled_local_run, bundled_tree, config)
    assert {s.backend for s in ray_dir.iter_samples()} <= {"transformers"}


@pytest.mark.slow
def test_ray_bundled_model_actor_killed_mid_run(ray_cluster: Any, bundled_local_run: RunDir,
                                                bundled_tree: TopicTree, tmp_path: Path) -> None:
    config = bundled_config(tmp_path / "ray")
    marker = tmp_path / "died"
    ray_dir = ray_run(config, bundled_tree, DyingFactory(str(marker), create_engine), block_size=2)
    assert marker.exists(), "an actor was killed after its first batch"
    assert_same_as_local(ray_dir, bundled_local_run, bundled_tree, config)
    shutil.rmtree(ray_dir.path)


# ---------------------------------------------------------------- the CLI, end to end on Ray and two servers


def fleet_answer(request: dict[str, Any]) -> str:
    """Subtopics for a tree request, a unique qa sample for a sample request."""
    props = request.get("response_format", {}).get("json_schema", {}).get("schema", {}).get("properties", {})
    if "subtopics" in props:
        return json.dumps({"subtopics": ["Ancient Rome", "Medieval Europe", "Industrial Revolution"]})
    rng = random.Random(request.get("seed", 0))
    return json.dumps({k: " ".join(rng.choices(WORDS, k=10)) + "." for k in props})


def test_cli_run_on_ray_against_two_servers(ray_cluster: Any, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`topictree run --runner ray`: the tree on a Ray worker, samples on 2 actors whose `openai`
    engines share two real HTTP servers, then the dataset folder."""
    from test_openai_fleet import FakeServer

    servers = [FakeServer(answer=fleet_answer) for _ in range(2)]
    try:
        code = main(["run", "--runner", "ray", "--workers", "2", "--backend", "openai",
                     "--base-url", ",".join(s.url for s in servers), "--depth", "1", "--degree", "3",
                     "--samples", "12", "--batch-size", "2", "--run-dir", str(tmp_path / "run")])
    finally:
        for s in servers:
            s.stop()
    out = capsys.readouterr()
    assert code == 0, out.err
    run_dir = RunDir(tmp_path / "run")
    assert len(list(run_dir.iter_samples())) == 12 and id_lines(run_dir).most_common(1)[0][1] == 1
    assert list(run_dir.path.glob("samples-ray-*.jsonl")), "journaled in per-block shards"
    assert all(s.completions > 0 for s in servers), [s.completions for s in servers]
    assert Path(out.out.strip().splitlines()[-1]).is_dir(), "the dataset folder path on stdout"


def test_cli_generate_on_ray(ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`topictree generate --runner ray` (the runner flags every engine command shares): the samples of
    the run dir's tree on 2 actors whose `openai` engines ask a real HTTP server."""
    from test_openai_fleet import FakeServer

    run = tmp_path / "run"
    run.mkdir()
    flat_tree(3).save(run / "topic_tree.json")
    server = FakeServer(answer=fleet_answer)
    try:
        code = main(["generate", "--runner", "ray", "--workers", "2", "--backend", "openai", "--base-url", server.url,
                     "--samples", "6", "--batch-size", "2", "--run-dir", str(run)])
    finally:
        server.stop()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Ray cluster: " in err and "loading " not in err, "the engines load on the workers"
    assert len(list(RunDir(run).iter_samples())) == 6 and list(run.glob("samples-ray-*.jsonl"))
    assert json.loads((run / "summary.json").read_text())["runner"] == "ray"


def test_sigterm_on_a_ray_run_is_the_clis_one_line_and_exit_130(tmp_path: Path) -> None:
    """`kill PID` on `topictree run --runner ray` ends as on the local runner: exit 130 and the CLI's
    one line, not Ray's handler (exit 1, or its native stack dump); the Ray cluster the command
    started goes with it (no process of it left), and what was journaled stays for the rerun."""
    import subprocess
    import time

    import psutil
    from test_openai_fleet import FakeServer

    server = FakeServer(answer=fleet_answer, delay=0.3)
    run = tmp_path / "run"
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "topictree_hf", "run", "--runner", "ray", "--workers", "1",
                             "--backend", "openai", "--base-url", server.url, "--depth", "1", "--degree", "3",
                             "--samples", "90", "--batch-size", "2", "--no-eval", "--run-dir", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    family: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + 240
        while server.completions < 12 and proc.poll() is None and time.monotonic() < deadline:
            family.update(psutil.Process(proc.pid).children(recursive=True))
            time.sleep(0.2)
        assert proc.poll() is None and server.completions >= 12, "the run reached its samples"
        family.update(psutil.Process(proc.pid).children(recursive=True))
        proc.terminate()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "topictree run: interrupted; rerun the same command to resume"
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-2000:]
    assert len(family) >= 3, "the command had started a Ray cluster (gcs, raylet, workers)"
    deadline = time.monotonic() + 30
    while (left := [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"left behind: {[' '.join(p.cmdline())[:80] for p in left]}"
    assert (run / "topic_tree.json").exists(), "the tree is kept for the rerun"


def test_workers_keep_the_users_usage_stats_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from topictree_hf.runners.ray_runner import worker_env

    for name in ("VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    assert worker_env()["VLLM_NO_USAGE_STATS"] == "1" and worker_env()["DO_NOT_TRACK"] == "1"
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "0")  # the user opted in
    env = worker_env()
    assert env["VLLM_NO_USAGE_STATS"] == "0" and "DO_NOT_TRACK" not in env


def test_the_cli_turns_the_default_plan_off_on_ray_but_keeps_an_explicit_one(tmp_path: Path) -> None:
    """Planning runs on the local runner only: on `--runner ray` the default (plan on) becomes off
    before the run dir's config is written; `--plan` stays, and the run then stops with one line."""
    from topictree_hf.cli import build_parser
    from topictree_hf.cli.common import config_from_args

    def plan(*flags: str) -> bool:
        return config_from_args(build_parser().parse_args(["run", *flags])).generation.plan

    assert plan() is True, "the default on the local runner"
    assert plan("--runner", "ray") is False
    assert plan("--runner", "ray", "--plan") is True
    config = tmp_path / "c.yaml"
    config.write_text("generation:\n  plan: true\n")
    assert plan(str(config), "--runner", "ray") is True, "a config that says plan: true is the user's choice"
