"""Near-duplicate filtering: a streaming filter that keeps the first of each group of near-identical texts.

    dedup = NearDuplicateFilter(threshold=0.8)           # exact, then MinHash (word 5-grams)
    for record in samples:
        reason = dedup.seen_or_add(sample_text(record))  # None: keep it (and it is remembered)
        if reason is None: keep(record)
    dedup.counts   # {"seen": 10, "kept": 7, "exact": 2, "near": 1, "semantic": 0}

A dropped text is never added, so a chain of small edits cannot drift away from the first text.
Each check costs O(shingles + LSH candidates), independent of how many texts were kept (0.15 ms
of CPU for a 130-word text, most of it the signature); memory stays under 1 GB per million kept
texts (the LSH tables and 16-bit signatures of `minhash.LSHIndex`, a 16-byte digest per text).

The optional semantic check (`semantic_threshold=0.9`) embeds each text and compares it with every
kept vector: O(kept) per check and 1.5 KB per kept text, so use it for up to ~100k samples, and
prefer `check_batch`, which embeds a whole batch in one call (one text at a time is slow on a CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from topictree_hf.dedup.base import Deduper
from topictree_hf.dedup.minhash import LSHIndex, MinHasher, bands_for
from topictree_hf.dedup.text import text_key
from topictree_hf.errors import ConfigError
from topictree_hf.records import DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE

Reason = Literal["exact", "near", "semantic"]
REASONS: tuple[Reason, ...] = ("exact", "near", "semantic")


class NearDuplicateFilter:
    """Exact (`normalize_text`: case, whitespace and punctuation ignored), then MinHash near-duplicate
    (estimated Jaccard of word `ngram` shingles >= `threshold`), then, when `semantic_threshold` is
    set, embedding cosine."""

    def __init__(self, threshold: float = 0.8, *, ngram: int = 5, num_perm: int = 128, bands: int | None = None,
                 seed: int = 1, semantic_threshold: float | None = None, embedder: Any = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"dedup threshold={threshold} must be in (0, 1] (Jaccard; default 0.8)")
        if semantic_threshold is not None and not 0.0 < semantic_threshold <= 1.0:
            raise ConfigError(f"dedup semantic_threshold={semantic_threshold} must be in (0, 1] (cosine; e.g. 0.9)")
        self.threshold = threshold
        self.semantic_threshold = semantic_threshold
        self._hasher = MinHasher(num_perm, ngram, seed)
        self._index = LSHIndex(num_perm, bands or bands_for(threshold, num_perm))
        self._digests: set[bytes] = set()
        self._embedder = embedder
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._kept_vectors = 0
        self.counts: dict[str, int] = {"seen": 0, "kept": 0, "exact": 0, "near": 0, "semantic": 0}

    def seen_or_add(self, text: str, embedding: np.ndarray | None = None) -> Reason | None:
        """Why `text` duplicates a kept text ("exact", "near", "semantic"), or None: then it is kept
        and remembered. `embedding` (unit vector) saves the semantic check from embedding it."""
        self.counts["seen"] += 1
        reason, digest, signature = self._lexical_check(text)
        if reason is None and self.semantic_threshold is not None:
            if embedding is None:
                embedding = self._embed([text])[0]
            reason = self._semantic_check(embedding, self.semantic_threshold)
        if reason is not None:
            self.counts[reason] += 1
            return reason
        self._keep(digest, signature, embedding)
        return None

    def check_batch(self, texts: Sequence[str]) -> list[Reason | None]:
        """`seen_or_add` over `texts` in order, embedding them in one call when semantic is on."""
        vectors = self._embed(texts) if self.semantic_threshold is not None and texts else None
        return [self.seen_or_add(t, None if vectors is None else vectors[i]) for i, t in enumerate(texts)]

    @property
    def dropped(self) -> int:
        return sum(self.counts[r] for r in REASONS)

    def _lexical_check(self, text: str) -> tuple[Reason | None, bytes, np.ndarray | None]:
        digest = text_key(text)
        if digest in self._digests:
            return "exact", digest, None
        signature = self._hasher.signature_of_text(text)
        if self._index.find(signature, self.threshold) is not None:
            return "near", digest, signature
        return None, digest, signature

    def _semantic_check(self, embedding: np.ndarray, threshold: float) -> Reason | None:
        kept = self._vectors[:self._kept_vectors]
        if len(kept) and float((kept @ embedding).max()) >= threshold:
            return "semantic"
        return None

    def _keep(self, digest: bytes, signature: np.ndarray | None, embedding: np.ndarray | None) -> None:
        self._digests.add(digest)
        if signature is not None:
            self._index.add(signature)
        if embedding is not None and self.semantic_threshold is not None:
            self._append_vector(np.asarray(embedding, dtype=np.float32))
        self.counts["kept"] += 1

    def _append_vector(self, vector: np.ndarray) -> None:
        if self._kept_vectors == len(self._vectors):  # grow by doubling: amortised O(1) appends
            grown = np.zeros((max(64, 2 * len(self._vectors)), len(vector)), dtype=np.float32)
            if self._kept_vectors:
                grown[:self._kept_vectors] = self._vectors[:self._kept_vectors]
            self._vectors = grown
        self._vectors[self._kept_vectors] = vector
        self._kept_vectors += 1

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embedder is None:
            from topictree_hf.embeddings import Embedder

            self._embedder = Embedder.load()
        return self._embedder.encode(list(texts))


class NearDeduper(Deduper):
    """The generator's `near` and `semantic` dedup: a NearDuplicateFilter, with record rejection reasons."""

    REASONS = {"exact": DUPLICATE, "near": NEAR_DUPLICATE, "semantic": SEMANTIC_DUPLICATE}

    def __init__(self, threshold: float = 0.8, semantic_threshold: float | None = None) -> None:
        self.filter = NearDuplicateFilter(threshold, semantic_threshold=semantic_threshold)

    def check_and_add(self, text: str) -> str | None:
        reason = self.filter.seen_or_add(text)
        return None if reason is None else self.REASONS[reason]
