"""Which samples to make: `num_samples` spread over the leaves (balanced; the remainder goes to
leaves picked by a seeded shuffle) or `samples_per_leaf`; each sample at a leaf gets a different
angle (aspect x difficulty) and format, so samples at one leaf do not repeat each other.

Tasks are yielded lazily, round-robin over leaves (every leaf gets its first sample before any gets
its second), so memory does not grow with the number of samples. A leaf's sample `index` decides its
task (`leaf_task`); the top-up (generation/topup.py) asks for indices past a leaf's allotment.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from topictree_hf.config import GenerationConfig
from topictree_hf.records import sample_id
from topictree_hf.tree.model import TopicTree

ASPECTS = (
    "a key fact or definition",
    "causes or reasons (why)",
    "a process or mechanism (how)",
    "a comparison with something related",
    "consequences or impact",
    "a common misconception",
    "a concrete scenario or example",
    "a specific person, place, date or number involved",
    "a practical application or lesson",
    "an open question or debate",
)
LEVELS = ("beginner", "intermediate", "advanced")
_STEP = 7  # coprime with len(ASPECTS) * len(LEVELS) = 30: the first 30 samples at a leaf all differ


@dataclass(slots=True, frozen=True)
class Task:
    id: str
    leaf_id: str
    path: tuple[str, ...]
    index: int  # position among this leaf's samples
    format: str
    angle: str


def angle_for(leaf_id: str, index: int) -> str:
    combos = len(ASPECTS) * len(LEVELS)
    k = (int(leaf_id[:8], 16) + index * _STEP) % combos
    return f"{LEVELS[k % len(LEVELS)]} level, about {ASPECTS[k // len(LEVELS)]}"


def counts_per_leaf(n_leaves: int, config: GenerationConfig) -> list[int]:
    if config.samples_per_leaf is not None:
        return [config.samples_per_leaf] * n_leaves
    base, extra = divmod(config.num_samples, n_leaves)
    lucky = set(random.Random(config.seed).sample(range(n_leaves), extra))
    return [base + (i in lucky) for i in range(n_leaves)]


def leaf_order(tree: TopicTree, config: GenerationConfig) -> list[tuple[str, tuple[str, ...], int]]:
    """(leaf id, path, allotted samples) of every leaf, in the order tasks go round the leaves."""
    leaves = sorted(tree.leaves(), key=lambda n: n.id)
    counts = counts_per_leaf(len(leaves), config)
    order = list(range(len(leaves)))
    random.Random(config.seed + 1).shuffle(order)
    return [(leaves[i].id, tuple(tree.path(leaves[i].id)), counts[i]) for i in order]


def leaf_task(config: GenerationConfig, leaf_id: str, path: tuple[str, ...], index: int) -> Task:
    """The task for sample `index` at a leaf: its format, angle and id follow from the index alone, so
    an index past the allocation (a top-up) is made the same way and gets its own id, angle and seed."""
    formats = config.formats
    fmt = formats[(index + int(leaf_id[:4], 16)) % len(formats)]
    return Task(sample_id(config.seed, leaf_id, fmt, index), leaf_id, path, index, fmt, angle_for(leaf_id, index))


def allocate(tree: TopicTree, config: GenerationConfig) -> Iterator[Task]:
    order = [(leaf_id, path, count) for leaf_id, path, count in leaf_order(tree, config) if count]
    for k in range(max((count for *_, count in order), default=0)):
        for leaf_id, path, count in order:
            if k < count:
                yield leaf_task(config, leaf_id, path, k)


def total_tasks(tree: TopicTree, config: GenerationConfig) -> int:
    return sum(counts_per_leaf(len(tree.leaves()), config))
