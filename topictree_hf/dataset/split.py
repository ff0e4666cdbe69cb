"""Train/test split by topic, never by random rows.

A random row split would put samples of the same leaf on both sides, so a test score would measure
recall of topics seen in training. Here whole groups move together: a group is a leaf (`by: leaf`)
or a depth-1 subtree (`by: subtree`). The groups come from the tree, are sorted, shuffled with the
split seed and the first `round(test_size * groups)` go to test, so the split depends only on the
tree and the config, not on which samples happened to succeed.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from topictree_hf.config import SplitConfig
from topictree_hf.tree.model import TopicTree, node_id

logger = logging.getLogger(__name__)

TRAIN, TEST = "train", "test"


def group_of(path: Sequence[str], by: str) -> str:
    """The id of the group a root-to-leaf path belongs to: its leaf, or its depth-1 ancestor."""
    if by == "subtree" and len(path) > 2:
        return node_id(path[:2])
    return node_id(path)


@dataclass(frozen=True, slots=True)
class SplitPlan:
    by: str
    groups: int
    test_groups: frozenset[str]

    @property
    def splits(self) -> tuple[str, ...]:
        return (TRAIN, TEST) if self.test_groups else (TRAIN,)

    def split_of(self, path: Sequence[str]) -> str:
        """A group the tree does not know (a sample whose path is not in topic_tree.json) goes to
        train: it is still one whole group, so no leaf lands in both splits."""
        return TEST if group_of(path, self.by) in self.test_groups else TRAIN

    @classmethod
    def from_tree(cls, tree: TopicTree, config: SplitConfig) -> SplitPlan:
        groups = sorted({group_of(path, config.by) for path in tree.leaf_paths()})
        n_test = min(len(groups) - 1, math.floor(config.test_size * len(groups) + 0.5))
        if config.test_size > 0 and n_test < 1:
            logger.warning("split: %d %s group(s) are too few for test_size %.2f; writing train only",
                           len(groups), config.by, config.test_size)
        if n_test < 1:
            return cls(config.by, len(groups), frozenset())
        random.Random(config.seed).shuffle(groups)
        return cls(config.by, len(groups), frozenset(groups[:n_test]))
