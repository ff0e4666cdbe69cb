"""MinHash over word 5-gram shingles, and an LSH index to find near-duplicates, in numpy.

A shingle is 5 consecutive words, hashed from the words' stable hashes (a text shorter than 5
words is one shingle). Permutation k maps a 32-bit shingle hash x to ((a_k x + b_k) mod 2^64) >> 32
with random 64-bit a_k (odd) and b_k: Dietzfelbinger's multiply-add-shift family, universal for
32-bit keys and four times faster in numpy than a modulo by a prime. The signature of a text is the
minimum per permutation; the share of equal positions of two signatures estimates the Jaccard
similarity of their shingle sets. Seeds are fixed, so signatures are the same in every process.

LSH cuts a signature into b bands of r rows: two texts become candidates when any band is equal,
with probability 1-(1-J^r)^b, and a candidate counts as a near-duplicate when its estimated
Jaccard reaches the threshold. `bands_for` picks the most selective split that still finds 90% of
pairs AT the threshold: for 128 permutations and J >= 0.8, 16 bands of 8 rows (candidate
probability 0.95 at J = 0.8, 0.61 at J = 0.7, 0.07 at J = 0.5, so few wasted comparisons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from topictree_hf.dedup.text import word_hash, words
from topictree_hf.errors import ConfigError

_SHIFT = np.uint64(32)


class HashedTexts(Protocol):
    """Texts already split into hashed words (eval's `Corpus`)."""

    def __len__(self) -> int: ...

    def hashed_words(self, i: int) -> np.ndarray: ...


_CHUNK = 1 << 15  # shingles per numpy block: 32k x 128 x 8 bytes = 32 MiB at the widest


class MinHasher:
    """Signatures of texts (`num_perm` uint32 values each) for word `ngram` shingles."""

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        if num_perm < 8:
            raise ConfigError(f"num_perm={num_perm} is too small for MinHash; use at least 8 (default 128)")
        if ngram < 1:
            raise ConfigError(f"ngram={ngram} must be at least 1 (default 5)")
        self.num_perm, self.ngram = num_perm, ngram
        rng = np.random.default_rng(seed)
        self._a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2)
        self._mix = rng.integers(1, 1 << 63, size=ngram, dtype=np.uint64) | np.uint64(1)

    def shingles(self, word_hashes: np.ndarray) -> np.ndarray:
        """32-bit hashes of the word n-grams of one text (from its words' hashes)."""
        n = self.ngram
        if len(word_hashes) < n:
            if len(word_hashes) == 0:
                return np.zeros(1, dtype=np.uint64)
            n = len(word_hashes)
        count = len(word_hashes) - n + 1
        acc = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            acc += word_hashes[k:k + count] * self._mix[k]  # uint64 arithmetic wraps, on purpose
        acc ^= acc >> np.uint64(29)  # a final mix so every input bit reaches the kept high half
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        return acc >> _SHIFT

    def signature_of_text(self, text: str) -> np.ndarray:
        hashes = np.fromiter((word_hash(w) for w in words(text)), dtype=np.uint64)
        return self._permute(self.shingles(hashes)).min(axis=0)

    def signatures(self, corpus: HashedTexts) -> np.ndarray:
        """(len(corpus), num_perm) uint32 signatures, computed in blocks of about 32k shingles."""
        out = np.empty((len(corpus), self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(corpus):
            stop, size = start, 0
            parts: list[np.ndarray] = []
            while stop < len(corpus) and (size < _CHUNK or not parts):
                parts.append(self.shingles(corpus.hashed_words(stop)))
                size += len(parts[-1])
                stop += 1
            offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
            permuted = self._permute(np.concatenate(parts))
            out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
            start = stop
        return out

    def _permute(self, shingles: np.ndarray) -> np.ndarray:
        return ((shingles[:, None] * self._a + self._b) >> _SHIFT).astype(np.uint32)


def bands_for(threshold: float, num_perm: int = 128, recall: float = 0.9) -> int:
    """Bands for LSH at `threshold`: the fewest bands (longest rows) whose candidate probability
    at J = threshold is at least `recall`."""
    for rows in sorted((r for r in range(1, num_perm + 1) if num_perm % r == 0), reverse=True):
        if 1 - (1 - threshold**rows) ** (num_perm // rows) >= recall:
            return num_perm // rows
    return num_perm


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


class LSHIndex:
    """The kept texts' signatures, searchable for a near-duplicate of a new one.

    Per band, an open-addressing hash table in numpy (a 32-bit fingerprint of the band -> the kept
    item), probed linearly without wrapping (a short tail absorbs runs at the end), at most half
    full; for verification, the low 16 bits of each signature value (two values agree by accident
    once in 65,536: no visible bias). About 0.6 GB per million kept texts at 128 permutations and 16
    bands, against 4 GB for dicts of byte strings.
    """

    _TAIL = 256

    def __init__(self, num_perm: int = 128, bands: int = 16) -> None:
        if bands < 1 or num_perm % bands:
            raise ConfigError(f"bands={bands} must divide num_perm={num_perm} (e.g. 16 bands of 8 for 128)")
        self.num_perm, self.bands, self.rows = num_perm, bands, num_perm // bands
        self._mix = np.random.default_rng(0x5EED).integers(0, 1 << 63, size=self.rows, dtype=np.uint64) * 2 + 1
        self.size = 0
        self._fingerprints = np.zeros((512, bands), dtype=np.uint32)
        self._low_bits = np.zeros((512, num_perm), dtype=np.uint16)
        self._rebuild(1024)

    def fingerprints(self, signature: np.ndarray) -> np.ndarray:
        acc = (signature.reshape(self.bands, self.rows).astype(np.uint64) * self._mix).sum(axis=1, dtype=np.uint64)
        acc ^= acc >> np.uint64(31)
        acc *= np.uint64(0x94D049BB133111EB)
        return (acc >> np.uint64(32)).astype(np.uint32)

    def find(self, signature: np.ndarray, threshold: float) -> int | None:
        """A kept item whose estimated Jaccard with `signature` reaches `threshold`, or None."""
        low = signature.astype(np.uint16)
        checked: set[int] = set()
        for band, fingerprint in enumerate(self.fingerprints(signature).tolist()):
            keys, items = self._keys[band], self._items[band]
            slot = fingerprint & self._mask
            while (item := int(items[slot])) >= 0:
                if keys[slot] == fingerprint and item not in checked:
                    checked.add(item)
                    if np.count_nonzero(self._low_bits[item] == low) / self.num_perm >= threshold:
                        return item
                slot += 1
        return None

    def add(self, signature: np.ndarray) -> int:
        """Keep `signature`; returns its item number (0, 1, 2, ... in order of adding)."""
        item = self.size
        if 2 * (item + 1) > self._capacity:
            self._rebuild(2 * self._capacity)
        fingerprints = self.fingerprints(signature)
        self._fingerprints[item] = fingerprints
        self._low_bits[item] = signature.astype(np.uint16)
        self.size += 1
        for band, fingerprint in enumerate(fingerprints.tolist()):
            slot = fingerprint & self._mask
            while self._items[band, slot] >= 0:
                slot += 1
                if slot == self._items.shape[1] - 1:  # the last slot stays empty to end every probe
                    self._rebuild(2 * self._capacity)  # grow, which places this item too
                    return item
            self._keys[band, slot], self._items[band, slot] = fingerprint, item
        return item

    def _rebuild(self, capacity: int) -> None:
        """Tables of `capacity` slots (+ tail) holding every kept item, placed in one numpy pass per
        band: sorted by home slot, each item goes to max(home, previous position + 1)."""
        self._capacity, self._mask = capacity, capacity - 1
        if len(self._fingerprints) < capacity // 2:
            self._fingerprints = _grown(self._fingerprints, capacity // 2)
            self._low_bits = _grown(self._low_bits, capacity // 2)
        self._keys = np.zeros((self.bands, capacity + self._TAIL), dtype=np.uint32)
        self._items = np.full((self.bands, capacity + self._TAIL), -1, dtype=np.int32)
        n, steps = self.size, np.arange(self.size)
        for band in range(self.bands):
            fingerprints = self._fingerprints[:n, band]
            order = np.argsort(fingerprints & np.uint32(self._mask), kind="stable")
            home = (fingerprints[order] & np.uint32(self._mask)).astype(np.int64)
            slots = np.maximum.accumulate(home - steps) + steps if n else home
            if n and slots[-1] >= capacity + self._TAIL - 1:
                return self._rebuild(2 * capacity)
            self._keys[band, slots], self._items[band, slots] = fingerprints[order], order
        return None


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    out[:len(array)] = array
    return out


def near_duplicate_flags(signatures: np.ndarray, threshold: float = 0.8, bands: int | None = None,
                         exact: np.ndarray | Sequence[bool] | None = None) -> np.ndarray:
    """True for each text whose estimated Jaccard with an EARLIER kept text reaches `threshold`
    (what a streaming filter drops: keep the first of each group). `exact[i]` marks texts already
    known to duplicate an earlier one; they are flagged without a lookup."""
    index = LSHIndex(signatures.shape[1], bands or bands_for(threshold, signatures.shape[1]))
    flags = np.zeros(len(signatures), dtype=bool)
    for i, signature in enumerate(signatures):
        if (exact is not None and exact[i]) or index.find(signature, threshold) is not None:
            flags[i] = True
        else:
            index.add(signature)
    return flags
