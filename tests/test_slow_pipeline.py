"""The bundled model on CPU, end to end (marked slow): the tree, the samples, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topictree_hf.config import SMOLLM2, Config, TreeConfig
from topictree_hf.engines.base import Engine
from topictree_hf.generation.allocate import allocate
from topictree_hf.pipeline import generate_stage
from topictree_hf.records import REJECTION_REASONS
from topictree_hf.rundir import RunDir
from topictree_hf.tree.builder import TreeBuilder
from topictree_hf.tree.clean import normalize
from topictree_hf.tree.model import TopicTree

pytestmark = pytest.mark.slow
SMOLLM2_ENGINE = {"backend": "transformers", "model": SMOLLM2}  # the session's bundled_engine


class CountingEngine(Engine):
    backend = "transformers"

    def __init__(self, inner: Engine) -> None:
        self.inner, self.model_name, self.calls = inner, inner.model_name, 0
        self.parameter_count = getattr(inner, "parameter_count", None)

    def generate(self, requests, progress=None):  # noqa: ANN001, ANN201
        self.calls += 1
        return self.inner.generate(requests, progress)


@pytest.fixture(scope="module")
def history_tree(bundled_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[TopicTree, int]:
    engine = CountingEngine(bundled_engine)
    journal = tmp_path_factory.mktemp("tree") / "tree.jsonl"
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3), seed=42, journal=journal).build("Historical Events")
    return tree, engine.calls


def test_bundled_tree_is_clean_and_batched(history_tree: tuple[TopicTree, int]) -> None:
    tree, calls = history_tree
    stats = tree.stats()
    assert stats["nodes"] <= 1 + 3 + 9
    assert calls == stats["depth"] + tree.reasks, "one engine call per level plus re-ask rounds"
    assert calls < len(tree.nodes) - len(tree.leaves()) + 2 * 3 or calls <= 2 + 2 * 2
    for nid, kids in tree.children.items():
        topics = [tree.nodes[c].topic for c in kids]
        assert len({normalize(t) for t in topics}) == len(topics), f"duplicate siblings under {nid}"
        for t in topics:
            assert t.strip() and "subtopic" not in t.lower() and "placeholder" not in t.lower()
    short = {f.node for f in tree.failures}
    for node in tree.nodes.values():  # every node that stopped early says why
        if node.depth < 2 and len(tree.children[node.id]) < 3:
            assert node.id in short
    assert all(f.reason for f in tree.failures)


def test_bundled_generation_end_to_end(bundled_engine: Engine, history_tree: tuple[TopicTree, int],
                                       tmp_path: Path) -> None:
    tree, _ = history_tree
    # plan off: this is the sample stream end to end (leaf plans on a real model: test_slow_diversity,
    # test_determinism and the vllm tier's default run)
    config = Config(generation={"num_samples": 18, "formats": ["qa"], "max_tokens": 160, "plan": False},
                    engine=SMOLLM2_ENGINE | {"batch_size": 18}, output={"run_dir": str(tmp_path)})
    run_dir = RunDir(tmp_path)
    run_dir.prepare(config)
    summary = generate_stage(config, bundled_engine, run_dir, tree)
    samples = list(run_dir.iter_samples())
    failures = list(run_dir.iter_failures())
    allocated = {t.id for t in allocate(tree, config.generation)}
    assert allocated <= {s.id for s in samples} | {f.id for f in failures}  # plus top-ups for short leaves
    # the 135M model: 14 of 18 valid when measured (2026-12-01, before the rule checks and the top-up);
    # half is the floor this test holds it to, what the rules reject made up by top-ups
    assert len(samples) >= 18 // 2, f"{len(samples)}/18 valid; failed: {[f.detail for f in failures]}"
    assert summary.delivered == len(samples) <= 18
    assert all(f.reason in REJECTION_REASONS for f in failures)
    assert summary.valid == len(samples) and summary.failed == len(failures)
    leaf_paths = [list(p) for p in tree.leaf_paths()]
    for s in samples:
        assert s.topic_path in leaf_paths
        assert [m["role"] for m in s.messages] == ["user", "assistant"]
        assert all(m["content"].strip() for m in s.messages)
    assert json.loads(run_dir.summary.read_text())["generation"]["valid"] == len(samples)


def test_run_resumes_after_sigkill_without_losing_or_repeating_ids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "topictree_hf", "run", "--root", "Ancient Egypt", "--depth", "1", "--degree", "2",
           "--samples", "6", "--batch-size", "2", "--model", SMOLLM2, "--backend", "transformers", "--no-plan",
           "--run-dir", str(run), "--out", str(tmp_path / "ds")]
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shard = run / "samples-00000.jsonl"
    failures = run / "failures.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        written = sum(p.read_text().count("\n") for p in (shard, failures) if p.exists())
        if written >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {json.loads(x)["id"] for p in (shard, failures) if p.exists() for x in p.read_text().splitlines()}
    assert 1 <= len(before) < 6
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(x)["id"] for p in (shard, failures) if p.exists() for x in p.read_text().splitlines()]
    assert len(ids) == len(set(ids)) >= 6, "every id exactly once"
    tree = TopicTree.load(run / "topic_tree.json")
    config = Config(generation={"num_samples": 6})
    assert {t.id for t in allocate(tree, config.generation)} <= set(ids)  # plus top-ups for short leaves
    assert before <= set(ids)
