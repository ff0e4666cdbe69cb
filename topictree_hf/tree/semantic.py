"""Semantic de-duplication of subtopics with the bundled MiniLM embeddings: a proposed topic is
rejected when its cosine similarity to a sibling or cousin reaches the threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SemanticMatcher:
    def __init__(self, threshold: float) -> None:
        from topictree_hf.embeddings import Embedder

        self.threshold = threshold
        self._embedder = Embedder.load()
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vec in zip(missing, self._embedder.encode(missing), strict=True):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts])

    def __call__(self, topic: str, others: Sequence[str]) -> str | None:
        """The most similar of `others` if it is at or above the threshold, else None."""
        if not others:
            return None
        vecs = self._vectors([topic, *others])
        sims = vecs[1:] @ vecs[0]
        best = int(np.argmax(sims))
        return others[best] if float(sims[best]) >= self.threshold else None
