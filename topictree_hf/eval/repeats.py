"""Where the repeats are: every pair of duplicate samples, counted by where the two sit in the tree.

A pair's place, from the samples' topic paths (root first):

- same leaf: the same path;
- sibling leaves: different leaves under the same parent;
- same branch: the same depth-1 topic, not siblings (only in trees deeper than 2);
- elsewhere: anything else.

The keys nest (leaf = the path, parent = the path without its leaf, branch = the parent's first two
topics), so two samples of one leaf share a parent and a branch, and each pair falls in exactly one
place. A set without a tree (the naive baseline arms: every path is the root alone) has one leaf,
the root: all its pairs are "same leaf".

- semantic pairs: cosine >= the semantic threshold, among the embedded sample (the vectors eval
  already has), found block by block on the unit vectors: no n x n matrix, no Python list of pairs.
- near pairs: estimated Jaccard >= the near threshold, among all samples (the MinHash signatures
  eval already has). Identical signatures are one class whose pairs are counted by formula, so a
  set of many exact copies costs nothing; between classes, LSH bands (as `dedup.minhash`) propose
  candidates, each checked on the whole signature and counted in the first band where it collides.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from topictree_hf.dedup.minhash import bands_for
from topictree_hf.eval.semantic import group_codes

PLACES = ("same_leaf", "sibling_leaves", "same_branch", "elsewhere")
_CHUNK = 1 << 16  # pairs handled at once: their two signatures are 64 MB at 128 permutations


@dataclass(frozen=True)
class TreePlaces:
    """An integer code per sample for its leaf, its parent and its depth-1 branch (nested keys)."""

    leaf: np.ndarray
    parent: np.ndarray
    branch: np.ndarray

    @classmethod
    def of(cls, paths: Sequence[Sequence[str]]) -> TreePlaces:
        leaves = [tuple(p) for p in paths]
        parents = [p[:-1] for p in leaves]
        return cls(_codes(leaves), _codes(parents), _codes([p[:2] for p in parents]))

    def subset(self, indices: np.ndarray) -> TreePlaces:
        return TreePlaces(self.leaf[indices], self.parent[indices], self.branch[indices])

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """How many of the pairs (i[k], j[k]) fall in each place (PLACES order)."""
        leaf = self.leaf[i] == self.leaf[j]
        parent = self.parent[i] == self.parent[j]
        branch = self.branch[i] == self.branch[j]
        same = [int(leaf.sum()), int(parent.sum()), int(branch.sum()), len(i)]
        return _nested(same)

    def within(self, groups: np.ndarray) -> np.ndarray:
        """How many pairs of samples in the same group (`groups[k]` per sample) fall in each place."""
        same = [_pairs_within(np.stack([groups, key])) for key in (self.leaf, self.parent, self.branch)]
        return _nested([*same, _pairs_within(groups[None, :])])


def _codes(keys: Sequence[Hashable]) -> np.ndarray:
    return group_codes(keys)[0]


def _nested(same: list[int]) -> np.ndarray:
    """Pairs in the same leaf, parent, branch, and all pairs -> pairs per place (the keys nest)."""
    leaf, parent, branch, total = same
    return np.array([leaf, parent - leaf, branch - parent, total - branch], dtype=np.int64)


def _pairs_within(keys: np.ndarray) -> int:
    """Pairs of columns of `keys` (one column per sample) that are equal."""
    if keys.shape[1] < 2:
        return 0
    counts = np.unique(keys, axis=1, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def as_dict(counts: np.ndarray, samples: int) -> dict[str, int]:
    """The JSON shape: a count per place, all pairs, and how many samples they were found among."""
    return {**{place: int(n) for place, n in zip(PLACES, counts, strict=True)}, "pairs": int(counts.sum()),
            "samples": samples}


# ---------------------------------------------------------------- semantic pairs


def semantic_repeats(vectors: np.ndarray, places: TreePlaces, threshold: float) -> np.ndarray:
    """Pairs of unit vectors with cosine >= `threshold`, per place; rows of at most ~32M cosines at once."""
    n = len(vectors)
    counts = np.zeros(len(PLACES), dtype=np.int64)
    block = max(1, min(1024, (1 << 25) // max(n, 1)))
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors[start:].T  # column c is sample start + c
        i, j = np.nonzero(np.triu(sims >= threshold, k=1))  # each pair once, never a sample with itself
        counts += places.pairs(i + start, j + start)
    return counts


# ---------------------------------------------------------------- near pairs


def near_repeats(signatures: np.ndarray, places: TreePlaces, threshold: float, bands: int | None = None) -> np.ndarray:
    """Pairs of MinHash signatures whose estimated Jaccard reaches `threshold`, per place."""
    if len(signatures) < 2:
        return np.zeros(len(PLACES), dtype=np.int64)
    unique, classes = np.unique(signatures, axis=0, return_inverse=True)
    classes = classes.ravel()
    counts = places.within(classes)  # identical signatures: Jaccard 1
    members = _Members.of(classes, len(unique))
    bands = bands or bands_for(threshold, signatures.shape[1])
    keys = _band_keys(unique, bands)
    low = unique.astype(np.uint16)  # as LSHIndex checks: two values agree by accident once in 65,536
    for band, (u, v) in _candidates(keys):
        first = ~_met_before(keys, u, v, band)
        u, v = u[first], v[first]
        close = np.count_nonzero(low[u] == low[v], axis=1) >= threshold * low.shape[1]
        for i, j in members.pairs(u[close], v[close]):
            counts += places.pairs(i, j)
    return counts


def _band_keys(signatures: np.ndarray, bands: int) -> np.ndarray:
    """(classes, bands) codes: equal codes in a band are equal rows of that band."""
    rows = signatures.shape[1] // bands
    out = np.empty((len(signatures), bands), dtype=np.int32)
    for band in range(bands):
        out[:, band] = np.unique(signatures[:, band * rows:(band + 1) * rows], axis=0,
                                 return_inverse=True)[1].ravel()
    return out


def _candidates(keys: np.ndarray) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """(band, (u, v)) chunks: every pair of classes u < v with the same key in that band."""
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(keys[order, band]) != 0])
        sizes = np.diff(np.r_[starts, len(order)])
        twos = starts[sizes == 2]  # the common case, all at once
        if len(twos):
            yield band, (order[twos], order[twos + 1])
        for begin, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist(), strict=True):
            group = order[begin:begin + size]
            row = 0
            while row < size - 1:  # rows of pairs, at most about _CHUNK at once: never g^2 in memory
                stop = min(size - 1, row + max(1, _CHUNK // (size - row)))
                left, right = _row_pairs(size, row, stop)
                yield band, (group[left], group[right])
                row = stop


def _row_pairs(size: int, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Local index pairs (r, c), c > r, for rows first..stop-1 of a group of `size`."""
    counts = size - 1 - np.arange(first, stop)
    left = np.repeat(np.arange(first, stop), counts)
    right = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + left + 1
    return left, right


def _met_before(keys: np.ndarray, u: np.ndarray, v: np.ndarray, band: int) -> np.ndarray:
    """True for the pairs that share a key in an earlier band (counted there), checked band by band
    on the pairs not met yet: most pairs that met, met in the first band."""
    met = np.zeros(len(u), dtype=bool)
    left = np.arange(len(u))
    for earlier in range(band):
        hit = keys[u[left], earlier] == keys[v[left], earlier]
        met[left[hit]] = True
        left = left[~hit]
        if not len(left):
            break
    return met


@dataclass(frozen=True)
class _Members:
    """The samples of each signature class, as one sorted array with offsets."""

    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, classes: np.ndarray, count: int) -> _Members:
        sizes = np.bincount(classes, minlength=count)
        return cls(np.argsort(classes, kind="stable"), np.cumsum(sizes) - sizes, sizes)

    def pairs(self, u: np.ndarray, v: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (sample of class u[k], sample of class v[k]), in chunks."""
        weight = self.sizes[u] * self.sizes[v]
        start = 0
        while start < len(u):
            stop = start + max(1, int(np.searchsorted(np.cumsum(weight[start:]), _CHUNK, side="right")))
            yield self._expand(u[start:stop], v[start:stop], weight[start:stop])
            start = stop

    def _expand(self, u: np.ndarray, v: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pair = np.repeat(np.arange(len(u)), weight)
        k = np.arange(len(pair)) - np.repeat(np.cumsum(weight) - weight, weight)
        width = self.sizes[v][pair]
        return (self.order[self.starts[u][pair] + k // width], self.order[self.starts[v][pair] + k % width])


def repeats(vectors: np.ndarray, picked: np.ndarray, signatures: np.ndarray, paths: Sequence[Sequence[str]],
            settings: Any) -> dict[str, dict[str, int]]:
    """eval's "repeats": semantic pairs among the embedded sample (`vectors`, the samples `picked`),
    near pairs among all samples, each split by place."""
    places = TreePlaces.of(paths)
    semantic = semantic_repeats(vectors, places.subset(picked), settings.semantic_threshold)
    near = near_repeats(signatures, places, settings.near_threshold, settings.bands)
    return {"semantic": as_dict(semantic, len(picked)), "near": as_dict(near, len(paths))}
