"""The stage API (pipeline.py): every runner goes through it, an imported tree is marked in the run
dir, and importing the package changes nothing in the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_engine import FakeEngine
from fake_model import FakeModel

from topictree_hf.config import Config
from topictree_hf.pipeline import Watcher, generate_stage, run_all, run_baseline, run_tree, tree_stage
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree


def config_for(run: Path, **generation: object) -> Config:
    return Config(tree={"depth": 1, "degree": 3}, generation={"num_samples": 6, "formats": ["qa"], **generation},
                  output={"run_dir": str(run), "dataset_dir": str(run / "ds")})


def test_an_imported_tree_is_marked_and_used_as_is(tmp_path: Path) -> None:
    outline = tmp_path / "outline.yaml"
    outline.write_text("Ancient Rome:\n  - Roman Roads\n  - Roman Law\n")
    config = config_for(tmp_path / "run")
    run_dir = RunDir(config.run_dir)
    engine = FakeEngine(FakeModel())
    tree = run_tree(config, run_dir, lambda: engine, import_file=outline)
    assert run_dir.tree_source() == "imported" and run_dir.read_manifest()["tree_source"] == "imported"
    run_dir.prepare(config)  # a later command keeps the mark
    assert tree_stage(config, engine, run_dir).stats() == tree.stats() and engine.num_calls == 0
    run_tree(config, RunDir(tmp_path / "built"), lambda: engine)
    assert RunDir(tmp_path / "built").tree_source() == "built"


def test_a_run_dir_imported_before_the_mark_is_still_read_as_imported(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    run_dir = RunDir(tmp_path)
    run_dir.prepare(config)
    manifest = run_dir.read_manifest()
    assert manifest is not None and "tree_source" not in manifest
    tree = TopicTree.new("Brought Root")
    tree.add_child(tree.root_id, "Only Leaf")
    tree.save(run_dir.tree_file)  # what `tree --import` left before: a tree file, no journal
    engine = FakeEngine(FakeModel())
    assert tree_stage(config, engine, run_dir).stats() == tree.stats() and engine.num_calls == 0


def test_run_all_and_the_baseline_variant_share_the_generate_stage(tmp_path: Path) -> None:
    engine = FakeEngine(FakeModel())
    result = run_all(config_for(tmp_path / "run"), RunDir(tmp_path / "run"), lambda: engine, Watcher())
    assert result.total_rows == 6
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["runner"] == "local" and summary["generation"]["valid"] == 6
    base = RunDir(tmp_path / "base")
    assert run_baseline(config_for(base.path), base, lambda: engine).valid == 6
    assert base.tree_source() == "baseline"
    assert {s.angle for s in base.iter_samples()} == {"any aspect of the topic"}
    assert {tuple(s.topic_path) for s in base.iter_samples()} == {("Historical Events",)}
    again = generate_stage(config_for(base.path), engine, base, TopicTree.load(base.tree_file), variant="naive")
    assert again.resumed == 6 and again.valid == 0, "a rerun resumes"


def test_importing_the_package_changes_nothing_in_the_process() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK", "VLLM_DO_NOT_TRACK")}
    code = ("import os, sys; before = dict(os.environ)\n"
            "import topictree_hf.engines, topictree_hf.pipeline, topictree_hf.cli, topictree_hf.runners.ray_runner\n"
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
            "assert 'torch' not in sys.modules and 'topictree_hf.engines.vllm_engine' not in sys.modules\n"
            "from topictree_hf.config import EngineConfig\n"
            "from topictree_hf.engines import create_engine, register_backend\n"
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})  # tests/: the fake engine\n"
            "from fake_engine import FakeEngine\n"
            "register_backend('fake', lambda cfg: FakeEngine(lambda r: 'x'))\n"
            "create_engine(EngineConfig(backend='fake'))\n"
            "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE', 'set when an engine is created, before torch'\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_loading_a_transformers_model_restores_its_progress_bars() -> None:
    from transformers.utils import logging as hf_logging

    from topictree_hf.engines.transformers_engine import _no_progress_bars

    hf_logging.enable_progress_bar()
    with _no_progress_bars():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
