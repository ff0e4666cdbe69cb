"""The ablation arms (`topictree baseline --variant`, pipeline.VARIANTS): each arm changes only where
the contexts come from and whether samples get their own angles; the model, sampling, formats, count
and de-duplication stay the config's, so the comparison with `topictree run` is fair."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from fake_model import FakeModel

from topictree_hf.cli import main
from topictree_hf.config import Config
from topictree_hf.engines.base import ChatRequest
from topictree_hf.errors import ConfigError
from topictree_hf.generation.prompts import NAIVE_ANGLE
from topictree_hf.pipeline import VARIANTS, run_all, run_baseline
from topictree_hf.rundir import RunDir


def config_for(run: Path, dedup: str = "exact") -> Config:
    return Config(tree={"depth": 2, "degree": 2}, generation={"num_samples": 8, "formats": ["qa"], "dedup": dedup},
                  output={"run_dir": str(run), "dataset_dir": str(run / "ds")})


def arm(tmp_path: Path, variant: str, **kwargs: object) -> RunDir:
    run_dir = RunDir(tmp_path / variant)
    run_baseline(config_for(run_dir.path), run_dir, lambda: FakeEngine(FakeModel()), variant=variant, **kwargs)
    return run_dir


def test_naive_arms_use_the_root_alone_with_and_without_angles(tmp_path: Path) -> None:
    naive, angled = arm(tmp_path, "naive"), arm(tmp_path, "naive+angles")
    for run_dir in (naive, angled):
        assert {tuple(s.topic_path) for s in run_dir.iter_samples()} == {("Historical Events",)}
    assert {s.angle for s in naive.iter_samples()} == {NAIVE_ANGLE}
    assert len({s.angle for s in angled.iter_samples()}) == len(list(angled.iter_samples())) > 1


def test_flat_is_one_level_of_as_many_subtopics_as_the_tree_has_leaves(tmp_path: Path) -> None:
    flat = arm(tmp_path, "flat")
    depths = {len(s.topic_path) for s in flat.iter_samples()}
    assert depths == {2}, depths
    tree = json.loads(flat.tree_file.read_text())
    assert sum(1 for n in tree["nodes"] if n.get("depth") == 1) == 4  # degree ** depth = 2 ** 2
    assert len({s.angle for s in flat.iter_samples()}) > 1
    assert len({tuple(s.topic_path) for s in arm(tmp_path / "six", "flat", flat_size=6).iter_samples()}) == 6


def test_tree_arms_share_one_tree_and_differ_only_in_angles(tmp_path: Path) -> None:
    engine = FakeEngine(FakeModel())
    full = RunDir(tmp_path / "run")
    run_all(config_for(full.path), full, lambda: engine)
    fixed = arm(tmp_path, "tree", tree_file=full.tree_file)
    angled = arm(tmp_path, "tree+angles", tree_file=full.tree_file)
    assert fixed.tree_file.read_text() == full.tree_file.read_text()
    assert {s.angle for s in fixed.iter_samples()} == {NAIVE_ANGLE}
    assert {s.id for s in angled.iter_samples()} == {s.id for s in full.iter_samples()}
    assert [s.messages for s in sorted(angled.iter_samples(), key=lambda s: s.id)] == \
        [s.messages for s in sorted(full.iter_samples(), key=lambda s: s.id)]
    assert json.loads((fixed.path / "summary.json").read_text())["baseline"] == "tree"


def test_every_arm_de_duplicates_as_the_config_says(tmp_path: Path) -> None:
    class Repeats(FakeModel):
        def sample(self, req: ChatRequest) -> str:  # the same answer to every sample request
            return super().sample(replace(req, sampling=replace(req.sampling, seed=1)))

    for dedup, kept in (("exact", 1), ("none", 8)):
        run_dir = RunDir(tmp_path / dedup)
        config = config_for(run_dir.path, dedup=dedup).model_copy(deep=True)
        config.generation.max_retries = 0
        run_baseline(config, run_dir, lambda: FakeEngine(Repeats()), variant="naive")
        assert len(list(run_dir.iter_samples())) == kept, dedup


def test_an_unknown_variant_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="choose from naive, naive"):
        arm(tmp_path, "wide")
    assert main(["baseline", "--variant", "wide", "--out", str(tmp_path / "b")]) == 2
    assert "flat" in capsys.readouterr().err
    assert set(VARIANTS) == {"naive", "naive+angles", "flat", "tree", "tree+angles"}
