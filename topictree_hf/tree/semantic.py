"""Semantic de-duplication of subtopics with the bundled MiniLM embeddings: a proposed topic is
rejected when its cosine similarity to a sibling or cousin reaches the threshold.

The tree builder calls `prime(texts)` with every candidate of a re-ask round first, so the whole
level is embedded in one batched call; the per-candidate checks are then dot products on cached
vectors (one embedding call per candidate costs ~100 ms CPU, batched ~4 ms: docs/quality.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, one row per text
_CACHE_LIMIT = 200_000  # texts; a long-lived process (a test session, a service) starts over past this


class SemanticMatcher:
    def __init__(self, threshold: float, encode: Encode | None = None) -> None:
        """`encode` defaults to the bundled MiniLM (`Embedder.load().encode`: loaded on first use,
        once per process); the builder passes the drift checker's `vectors` when both checks run,
        so a text is embedded once for both."""
        self.threshold = threshold
        self._encode = encode
        self._cache: dict[str, np.ndarray] = {}

    def prime(self, texts: Sequence[str]) -> None:
        """Embed every text not seen yet in one call (the builder passes a whole round's candidates)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not missing:
            return
        if len(self._cache) + len(missing) > _CACHE_LIMIT:
            self._cache.clear()
            missing = list(dict.fromkeys(texts))
        if self._encode is None:
            from topictree_hf.embeddings import Embedder

            self._encode = Embedder.load().encode
        for text, vec in zip(missing, self._encode(missing), strict=True):
            self._cache[text] = np.asarray(vec, dtype=np.float32)

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        self.prime(texts)
        return np.stack([self._cache[t] for t in texts])

    def __call__(self, topic: str, others: Sequence[str]) -> str | None:
        """The most similar of `others` if it is at or above the threshold, else None."""
        if not others:
            return None
        vecs = self._vectors([topic, *others])
        sims = vecs[1:] @ vecs[0]
        best = int(np.argmax(sims))
        return others[best] if float(sims[best]) >= self.threshold else None
