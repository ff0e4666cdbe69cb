"""The runner contract: WHERE a stage's work runs. What the stages do (what is journaled, what is
left, the counts, the summary) is the pipeline's and the generator's, the same for every runner."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar

from topictree_hf.config import Config
from topictree_hf.engines.base import Engine
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import Progress
from topictree_hf.generation.summary import Summary
from topictree_hf.rundir import RunDir
from topictree_hf.tree.builder import LevelProgress
from topictree_hf.tree.model import TopicTree

# The tree stage's work on one engine (pipeline.build_tree); a runner decides where it is called.
TreeWork = Callable[[Config, Engine, RunDir, "LevelProgress | None"], TopicTree]


class Runner(ABC):
    name: ClassVar[str]

    @abstractmethod
    def build_tree(self, config: Config, run_dir: RunDir, work: TreeWork,
                   progress: LevelProgress | None = None) -> TopicTree:
        """Call `work` with an engine somewhere and return the tree (also in run_dir.tree_file)."""

    @abstractmethod
    def generate(self, config: Config, run_dir: RunDir, tasks: Iterator[Task], summary: Summary,
                 progress: Progress | None = None) -> None:
        """Generate, check and journal the pending `tasks` in the run dir; merge the counts of the
        work into `summary` (`Summary.merge`, the same for every runner)."""
