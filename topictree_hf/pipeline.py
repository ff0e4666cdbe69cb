"""The stages the CLI runs, each restartable from the run dir: tree, generate (and build, in
topictree_hf.dataset). Library code: reports progress through callbacks, never prints."""

from __future__ import annotations

import logging
from collections.abc import Callable

from topictree_hf.config import Config
from topictree_hf.engines import Engine, create_engine
from topictree_hf.generation.generator import SampleGenerator, Summary
from topictree_hf.rundir import RunDir
from topictree_hf.tree.builder import LevelProgress, TreeBuilder
from topictree_hf.tree.model import TopicTree

logger = logging.getLogger(__name__)


def open_engine(config: Config) -> Engine:
    return create_engine(config.engine)


def tree_stage(config: Config, engine: Engine, run_dir: RunDir, progress: LevelProgress | None = None) -> TopicTree:
    """Build (or resume) the tree; write topic_tree.json and topic_tree.png. A run dir holding a
    topic_tree.json but no tree journal has a brought tree (`topictree tree --import`): it is used as is."""
    if run_dir.tree_file.exists() and not run_dir.tree_journal.exists():
        return TopicTree.load(run_dir.tree_file)
    similar = None
    if config.tree.dedup == "semantic":
        from topictree_hf.tree.semantic import SemanticMatcher

        similar = SemanticMatcher(config.tree.semantic_threshold)
    builder = TreeBuilder(engine, config.tree, seed=config.generation.seed, journal=run_dir.tree_journal,
                          similar=similar)
    tree = builder.build(config.root, progress)
    tree.save(run_dir.tree_file)
    draw_tree(tree, run_dir)
    return tree


def draw_tree(tree: TopicTree, run_dir: RunDir) -> None:
    from topictree_hf.tree.render import render_png

    try:
        render_png(tree, run_dir.tree_png)
    except (OSError, ValueError, ImportError) as exc:  # a picture is never worth losing a run
        logger.warning("could not draw %s: %s", run_dir.tree_png, exc)


def generate_stage(config: Config, engine: Engine, run_dir: RunDir, tree: TopicTree,
                   progress: Callable[[int], None] | None = None) -> Summary:
    from topictree_hf.runners.blocks import merge_failure_shards

    merge_failure_shards(run_dir)  # a Ray run that died leaves per-block failure shards: count them as done
    generator = SampleGenerator(engine, config, run_dir)
    summary = generator.run(tree, progress)
    run_dir.write_summary({"tree": tree.stats(), "generation": summary.to_dict()})
    return summary
