"""The tree's shape chosen from the sample count (--samples without --depth/--degree): about
generation.target_per_leaf samples a leaf, deeper rather than wider past MAX_LISTED subtopics a call."""

from __future__ import annotations

from pathlib import Path

import pytest

from topictree_hf.cli import build_parser, cmd_generate
from topictree_hf.config import MAX_LISTED, Config, auto_shape, load_config
from topictree_hf.rundir import RunDir


@pytest.mark.parametrize(("samples", "shape"), [(18, (1, 5)), (54, (2, 4)), (200, (3, 4)), (400, (3, 5)),
                                                (1000, (4, 4)), (1, (1, 2))])
def test_the_shallowest_tree_with_about_the_target_per_leaf(samples: int, shape: tuple[int, int]) -> None:
    assert auto_shape(samples, 4.0) == shape


@pytest.mark.parametrize("samples", [5, 40, 333, 400, 2500, 100_000])
def test_every_chosen_shape_lists_few_per_call_and_lands_near_the_target(samples: int) -> None:
    depth, degree = auto_shape(samples, 4.0)
    assert 2 <= degree <= MAX_LISTED
    per_leaf = samples / degree**depth
    assert 4.0 / 3 <= per_leaf <= 4.0 * 3 or samples < 8, (depth, degree, per_leaf)
    if depth > 1:  # one level less would need more than MAX_LISTED per call
        assert round((samples / 4.0) ** (1 / (depth - 1))) > MAX_LISTED


def test_the_count_alone_chooses_the_shape_and_says_why() -> None:
    config = load_config(None, {"generation.num_samples": 400})
    assert (config.tree.depth, config.tree.degree) == (3, 5)
    assert config.shape_note is not None and "depth 3 x degree 5 (125 leaves" in config.shape_note
    assert "--depth and --degree" in config.shape_note


def test_given_depth_and_degree_are_kept() -> None:
    config = load_config(None, {"generation.num_samples": 400, "tree.depth": 2, "tree.degree": 3})
    assert (config.tree.depth, config.tree.degree, config.shape_note) == (2, 3, None)


def test_one_of_them_given_fits_the_other() -> None:
    assert (lambda c: (c.tree.depth, c.tree.degree))(
        load_config(None, {"generation.num_samples": 400, "tree.depth": 2})) == (2, 10)
    assert (lambda c: (c.tree.depth, c.tree.degree))(
        load_config(None, {"generation.num_samples": 400, "tree.degree": 3})) == (4, 3)


def test_no_count_given_keeps_the_default_shape_and_per_leaf_counts_too() -> None:
    assert (Config().tree.depth, Config().tree.degree, Config().shape_note) == (2, 3, None)
    config = load_config(None, {"generation.num_samples": 400, "generation.samples_per_leaf": 5})
    assert (config.tree.depth, config.tree.degree) == (2, 3)


def test_the_target_moves_the_shape_and_a_rerun_of_the_resolved_config_keeps_it() -> None:
    config = load_config(None, {"generation.num_samples": 400, "generation.target_per_leaf": 2})
    assert (config.tree.depth, config.tree.degree) == (4, 4), "200 leaves: 6 a call at depth 3 is too many"
    again = Config.model_validate(config.model_dump())
    assert (again.tree.depth, again.tree.degree) == (config.tree.depth, config.tree.degree)


def test_generate_on_a_run_dir_keeps_its_tree_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`topictree generate --samples N` on an existing run dir: the tree is there, its shape is the run
    dir's (not one chosen from the new count, which would be refused as a changed config)."""
    run = RunDir(tmp_path / "run")
    run.prepare(Config(tree={"depth": 2, "degree": 3}, generation={"num_samples": 18}))
    seen: list[tuple[int, int, str | None]] = []
    monkeypatch.setattr(cmd_generate.pipeline, "run_generate",
                        lambda config, *a, **k: seen.append((config.tree.depth, config.tree.degree, config.shape_note)))
    args = build_parser().parse_args(["generate", "--samples", "400", "--run-dir", str(run.path)])
    assert cmd_generate.run_generate(args) == 0
    assert seen == [(2, 3, None)]
