"""Train/test split by topic group: deterministic, whole groups, the requested share of groups."""

from __future__ import annotations

import pytest
from synthetic_run import synthetic_tree

from topictree_hf.config import SplitConfig
from topictree_hf.dataset.split import TEST, TRAIN, SplitPlan, group_of
from topictree_hf.tree.model import node_id

TREE = synthetic_tree("Root", depth=3, degree=4)  # 64 leaves, 4 depth-1 subtrees


def test_leaf_groups_take_the_requested_share_and_are_deterministic() -> None:
    plan = SplitPlan.from_tree(TREE, SplitConfig(test_size=0.25, by="leaf", seed=3))
    assert plan.groups == 64 and len(plan.test_groups) == 16
    assert plan == SplitPlan.from_tree(TREE, SplitConfig(test_size=0.25, by="leaf", seed=3))
    assert plan != SplitPlan.from_tree(TREE, SplitConfig(test_size=0.25, by="leaf", seed=4))
    paths = list(TREE.leaf_paths())
    assert sum(plan.split_of(p) == TEST for p in paths) == 16
    assert {node_id(p) for p in paths if plan.split_of(p) == TEST} == plan.test_groups


def test_subtree_groups_move_whole_branches() -> None:
    plan = SplitPlan.from_tree(TREE, SplitConfig(test_size=0.25, by="subtree", seed=0))
    assert plan.groups == 4 and len(plan.test_groups) == 1
    by_branch: dict[str, set[str]] = {}
    for path in TREE.leaf_paths():
        by_branch.setdefault(path[1], set()).add(plan.split_of(path))
    assert sorted(len(s) for s in by_branch.values()) == [1, 1, 1, 1]
    assert sum(s == {TEST} for s in by_branch.values()) == 1


@pytest.mark.parametrize(("test_size", "by", "splits"), [
    (0.0, "leaf", (TRAIN,)),          # no test wanted
    (0.1, "subtree", (TRAIN,)),       # round(0.4) = 0 groups: too few
    (0.9, "subtree", (TRAIN, TEST)),  # capped at groups - 1: train is never empty
])
def test_edge_cases(test_size: float, by: str, splits: tuple[str, ...]) -> None:
    plan = SplitPlan.from_tree(TREE, SplitConfig(test_size=test_size, by=by))
    assert plan.splits == splits
    assert len(plan.test_groups) < plan.groups


def test_a_single_leaf_tree_is_train_only() -> None:
    tree = synthetic_tree("Root", depth=0, degree=1)
    assert SplitPlan.from_tree(tree, SplitConfig(test_size=0.5)).splits == (TRAIN,)


def test_group_of() -> None:
    path = ["Root", "A", "B", "C"]
    assert group_of(path, "leaf") == node_id(path)
    assert group_of(path, "subtree") == node_id(["Root", "A"])
    assert group_of(["Root", "A"], "subtree") == node_id(["Root", "A"])
    assert group_of(["Root"], "subtree") == node_id(["Root"])
