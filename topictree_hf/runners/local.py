"""The local runner: every stage in this process, on one engine (the default)."""

from __future__ import annotations

from collections.abc import Iterator

from topictree_hf.config import Config
from topictree_hf.engines.base import Engine
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import Progress, SampleGenerator
from topictree_hf.generation.summary import Summary
from topictree_hf.rundir import RunDir
from topictree_hf.runners.base import Runner, TreeWork
from topictree_hf.tree.builder import LevelProgress
from topictree_hf.tree.model import TopicTree


class LocalRunner(Runner):
    name = "local"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def build_tree(self, config: Config, run_dir: RunDir, work: TreeWork,
                   progress: LevelProgress | None = None) -> TopicTree:
        return work(config, self.engine, run_dir, progress)

    def generate(self, config: Config, run_dir: RunDir, tasks: Iterator[Task], summary: Summary,
                 progress: Progress | None = None) -> None:
        generator = SampleGenerator(self.engine, config, run_dir)
        try:
            summary.merge(generator.generate_here(tasks, progress))
        finally:
            generator.close()  # a separate judge engine (generation.judge.model), if one was opened
