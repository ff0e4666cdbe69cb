"""How samples spread over the tree's leaves.

- leaf coverage: share of the tree's leaves that have at least one sample (needs the tree).
- leaf entropy: Shannon entropy (bits) of the samples-per-leaf distribution, and the same divided by
  log2(number of leaves): 1.0 is a perfectly even spread. Without a tree, the leaves are the
  distinct paths seen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence


def leaf_coverage(paths: Sequence[tuple[str, ...]], tree_leaves: Collection[tuple[str, ...]] | None) -> float | None:
    if not tree_leaves:
        return None
    seen = set(paths)
    return sum(1 for leaf in tree_leaves if leaf in seen) / len(tree_leaves)


def leaf_entropy(paths: Sequence[tuple[str, ...]],
                 tree_leaves: Collection[tuple[str, ...]] | None = None) -> tuple[float | None, float | None]:
    """(entropy in bits, entropy / log2(leaves)); the second is None with fewer than two leaves."""
    if not paths:
        return None, None
    counts = Counter(paths)
    n = len(paths)
    bits = -sum(c / n * math.log2(c / n) for c in counts.values())
    leaves = len(set(tree_leaves) | set(counts)) if tree_leaves else len(counts)
    return bits + 0.0, (bits / math.log2(leaves) if leaves > 1 else None)
