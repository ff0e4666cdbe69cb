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

The optional semantic check (`semantic_threshold=0.9`) embeds each text and compares it with the
kept vectors of its branch (dedup/semantic.py; no branch: all of them): O(kept) per check and 1.5 KB
per kept text, so use it for up to ~100k samples, and embed in groups (`check_batch`, or `embed_new`
then `match` with each vector: one text at a time is slow on a CPU). Exact and MinHash duplicates
count across branches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from topictree_hf.dedup.base import Deduper, KeptText
from topictree_hf.dedup.minhash import LSHIndex, MinHasher, bands_for
from topictree_hf.dedup.semantic import BranchVectors
from topictree_hf.dedup.text import snippet, text_key
from topictree_hf.errors import ConfigError
from topictree_hf.records import DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE

Reason = Literal["exact", "near", "semantic"]
REASONS: tuple[Reason, ...] = ("exact", "near", "semantic")
REMEMBER_GROUP = 256  # texts embedded per pass when a deduper remembers a journal


@dataclass(frozen=True, slots=True)
class Match:
    """Why a text duplicates a kept one; for "semantic", the cosine and the kept text's label."""

    reason: Reason
    cosine: float | None = None
    near: str = ""


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
        self._vectors = BranchVectors()
        self.counts: dict[str, int] = {"seen": 0, "kept": 0, "exact": 0, "near": 0, "semantic": 0}

    def seen_or_add(self, text: str, embedding: np.ndarray | None = None) -> Reason | None:
        """Why `text` duplicates a kept text ("exact", "near", "semantic"), or None: then it is kept
        and remembered. `embedding` (unit vector) saves the semantic check from embedding it."""
        found = self.match(text, embedding)
        return None if found is None else found.reason

    def match(self, text: str, embedding: np.ndarray | None = None, branch: Hashable = None,
              label: str = "") -> Match | None:
        """`seen_or_add` with the semantic check scoped to `branch` (dedup/base.py), and what the
        text is too close to: a kept text is remembered with `label`."""
        self.counts["seen"] += 1
        reason, digest, signature = self._lexical_check(text)
        found = None if reason is None else Match(reason)
        if found is None and self.semantic_threshold is not None:
            if embedding is None:
                embedding = self._embed([text])[0]
            nearest = self._vectors.nearest(embedding, branch)
            if nearest is not None and nearest[0] >= self.semantic_threshold:
                found = Match("semantic", *nearest)
        if found is not None:
            self.counts[found.reason] += 1
            return found
        self._keep(digest, signature, embedding, branch, label)
        return None

    def check_batch(self, texts: Sequence[str]) -> list[Reason | None]:
        """`seen_or_add` over `texts` in order, embedding them in one call when semantic is on."""
        vectors = self.embed_new(texts)
        return [self.seen_or_add(t, v) for t, v in zip(texts, vectors, strict=True)]

    def embed_new(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The embeddings of `texts` in one pass, for those not already an exact or near duplicate of
        a kept text (None for the others, and for all when semantic is off)."""
        if self.semantic_threshold is None:
            return [None] * len(texts)
        new = [i for i, text in enumerate(texts) if self._lexical_check(text)[0] is None]
        out: list[np.ndarray | None] = [None] * len(texts)
        if new:
            for i, vector in zip(new, self._embed([texts[i] for i in new]), strict=True):
                out[i] = vector
        return out

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

    def _keep(self, digest: bytes, signature: np.ndarray | None, embedding: np.ndarray | None,
              branch: Hashable, label: str) -> None:
        self._digests.add(digest)
        if signature is not None:
            self._index.add(signature)
        if embedding is not None and self.semantic_threshold is not None:
            self._vectors.add(embedding, branch, label)
        self.counts["kept"] += 1

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embedder is None:
            from topictree_hf.embeddings import Embedder

            self._embedder = Embedder.load()
        return self._embedder.encode(list(texts))


class NearDeduper(Deduper):
    """The generator's `near` and `semantic` dedup: a NearDuplicateFilter, with record rejection
    reasons; a semantic one names the kept sample it is too close to (its label, cut short), so a
    retry prompt can ask for something different."""

    REASONS = {"exact": DUPLICATE, "near": NEAR_DUPLICATE, "semantic": SEMANTIC_DUPLICATE}

    def __init__(self, threshold: float = 0.8, semantic_threshold: float | None = None, embedder: Any = None) -> None:
        self.filter = NearDuplicateFilter(threshold, semantic_threshold=semantic_threshold, embedder=embedder)
        self.embeds = semantic_threshold is not None

    def check_and_add(self, text: str, branch: Hashable = None, *, label: str | None = None,
                      vector: np.ndarray | None = None) -> str | None:
        shown = snippet(text if label is None else label) if self.embeds else ""
        found = self.filter.match(text, vector, branch, shown)
        if found is None:
            return None
        if found.reason == "semantic":
            return semantic_reason(found)
        return self.REASONS[found.reason]

    def embed(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        return self.filter.embed_new(texts)

    def remember(self, texts: Iterable[str | KeptText]) -> None:
        """As `Deduper.remember`, embedding REMEMBER_GROUP texts per pass."""
        group: list[KeptText] = []
        for item in texts:
            group.append(KeptText(item) if isinstance(item, str) else item)
            if len(group) == REMEMBER_GROUP:
                self._remember(group)
                group = []
        self._remember(group)

    def _remember(self, group: list[KeptText]) -> None:
        vectors = self.embed([kept.text for kept in group]) if group else []
        for kept, vector in zip(group, vectors, strict=True):
            self.check_and_add(kept.text, kept.branch, label=kept.label, vector=vector)


def semantic_reason(found: Match) -> str:
    """'semantic_duplicate: cosine 0.93 with a kept sample; different from: "<its label>"' (counted
    under its key, records.SEMANTIC_DUPLICATE)."""
    return f'{SEMANTIC_DUPLICATE}: cosine {found.cosine:.2f} with a kept sample; different from: "{found.near}"'
