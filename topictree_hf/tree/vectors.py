"""The embedding cache of the tree's checks (drift, placement): each distinct text embedded once per
checker, with the bundled MiniLM (loaded on first use) unless an `encode` is given."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

Encode = Callable[[Sequence[str]], Any]
CACHE_LIMIT = 200_000  # cached texts; past this a long-lived process keeps only the `keep` texts (the anchors)


class VectorCache:
    def __init__(self, encode: Encode | None = None, keep: Sequence[str] = (), limit: int = CACHE_LIMIT) -> None:
        self._encode, self.keep, self.limit = encode, tuple(keep), limit
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts`, in order (an empty (0, 0) array for none)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if self._encode is None:
                from topictree_hf.embeddings import Embedder

                self._encode = Embedder.load().encode
            if len(self._cache) + len(missing) > self.limit:
                self._cache = {a: self._cache[a] for a in self.keep if a in self._cache}
                missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            for text, vec in zip(missing, self._encode(missing), strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


C = TypeVar("C", bound="EmbeddingCheck")


class EmbeddingCheck:
    """A tree check on embeddings (drift.py, placement.py): its `vectors` cache, and `shared()`, the
    process-wide instance with the default calibration (the embedder loads and the anchors are embedded
    once per process, not once per tree). A subclass sets `self._vectors` in its __init__."""

    _vectors: VectorCache
    _instances: ClassVar[dict[type, Any]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls: type[C]) -> C:
        with EmbeddingCheck._lock:
            if cls not in EmbeddingCheck._instances:
                EmbeddingCheck._instances[cls] = cls()
            return EmbeddingCheck._instances[cls]  # type: ignore[no-any-return]

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts` (each distinct text embedded once per checker)."""
        return self._vectors(texts)
