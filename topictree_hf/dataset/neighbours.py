"""Each row's nearest neighbour in the whole dataset, the two columns Magpie's released sets carry:

- `nn_similarity`: cosine of the row with the most similar OTHER row of the dataset, all splits
  together (null in a dataset of one row);
- `repeat_count`: how many other rows reach cosine >= 0.9 with it, the semantic-duplicate threshold
  of `topictree eval` (0: none).

Embeddings are all-MiniLM-L6-v2 unit vectors of the text eval measures (the user and assistant
turns, joined by newlines), cut at the 128 word pieces eval cuts at, so that `topictree run` hands
them to its closing evaluation (`EmbeddingCache`) instead of embedding the same texts twice. The
search is exact: every row against every row, a block of rows at a time (at most ~32M cosines in
memory). Cost: one embedding per row, the bulk (MiniLM on CPU: about 75 s per 1,000 samples of
128 word pieces on a busy 2-core machine), N^2 dot products of 384 floats (3 s at 10k rows), and
1.5 KB of memory per row for the vectors. `topictree build --no-neighbours` skips it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topictree_hf.progress import progress_bar

SEMANTIC_THRESHOLD = 0.9  # EvalSettings.semantic_threshold (tests/test_dataset_neighbours.py keeps them equal)
EMBED_MAX_TOKENS = 128  # EvalSettings.embed_max_tokens
EMBED_BATCH = 1024  # texts per encode call: bounded memory, one progress bar across calls
DOC_SIMILARITY = ("cosine (all-MiniLM-L6-v2, user and assistant turns, first 128 word pieces) with the most "
                  "similar other sample of the dataset, all splits together; null in a one-row dataset")
DOC_REPEATS = f"how many other samples have cosine >= {SEMANTIC_THRESHOLD:g} with this one (0: none)"
# (name, Arrow type, card type, meaning) of the columns the build adds to `Sample.to_row()`
COLUMNS = (("nn_similarity", "float64", "float64", DOC_SIMILARITY), ("repeat_count", "int32", "int32", DOC_REPEATS))
EMPTY = {"nn_similarity": None, "repeat_count": None}  # a build that skipped the search


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def nearest(vectors: np.ndarray, threshold: float = SEMANTIC_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """For each unit vector: the highest cosine with another one (NaN when there is none), and how
    many others reach `threshold`."""
    n = len(vectors)
    best = np.full(n, np.nan, dtype=np.float32)
    counts = np.zeros(n, dtype=np.int32)
    block = max(1, min(1024, (1 << 25) // max(n, 1)))
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf  # never its own neighbour
        if n > 1:
            best[start:start + len(sims)] = sims.max(axis=1)
        counts[start:start + len(sims)] = np.count_nonzero(sims >= threshold, axis=1)
    return best, counts


class EmbeddingCache:
    """An embedder that answers from vectors already computed (the build's) and asks `base` for
    the rest: texts it has not seen, or another `max_length`."""

    def __init__(self, base: Any, digests: dict[bytes, int], vectors: np.ndarray,
                 max_length: int = EMBED_MAX_TOKENS) -> None:
        self.base, self.digests, self.vectors, self.max_length = base, digests, vectors, max_length
        self.dim = vectors.shape[1]

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
               max_length: int | None = None) -> np.ndarray:
        if max_length != self.max_length:
            return self.base.encode(texts, batch_size=batch_size, progress=progress, max_length=max_length)
        where = np.array([self.digests.get(text_digest(t), -1) for t in texts], dtype=np.int64)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[where >= 0] = self.vectors[where[where >= 0]]
        missing = np.flatnonzero(where < 0)
        if len(missing):
            out[missing] = self.base.encode([texts[i] for i in missing], batch_size=batch_size,
                                            progress=progress, max_length=max_length)
        return out


@dataclass
class Neighbours:
    """The two columns of every row, looked up by (split, id); the vectors, for eval to reuse."""

    index: dict[tuple[str, str], int]
    similarity: np.ndarray
    repeats: np.ndarray
    embeddings: EmbeddingCache | None = field(default=None, repr=False)

    def columns(self, split: str, row_id: str) -> dict[str, Any]:
        k = self.index[(split, row_id)]
        similarity = float(self.similarity[k])
        return {"nn_similarity": None if np.isnan(similarity) else round(similarity, 4),
                "repeat_count": int(self.repeats[k])}

    def summary(self) -> dict[str, Any]:
        """What the card shows: quantiles of nn_similarity, rows with a repeat, the most repeats."""
        sims = self.similarity[~np.isnan(self.similarity)]
        rows = len(self.repeats)
        repeated = int(np.count_nonzero(self.repeats))
        quantiles = ([(label, float(np.quantile(sims, q))) for label, q in QUANTILES] if len(sims) else [])
        return {"rows": rows, "threshold": SEMANTIC_THRESHOLD, "quantiles": quantiles,
                "mean": float(sims.mean()) if len(sims) else None, "repeated": repeated,
                "repeated_share": repeated / rows if rows else 0.0,
                "max_repeats": int(self.repeats.max()) if rows else 0}


QUANTILES = (("minimum", 0.0), ("10th percentile", 0.1), ("median", 0.5), ("90th percentile", 0.9),
             ("99th percentile", 0.99), ("maximum", 1.0))


def find_neighbours(rows: Iterable[tuple[str, str, str]], embedder: Any = None, total: int | None = None,
                    threshold: float = SEMANTIC_THRESHOLD) -> Neighbours:
    """Embed the (split, id, text) `rows` (a repeated (split, id) is skipped: the first one is the row)
    and find each one's nearest neighbour among all of them."""
    if embedder is None:
        from topictree_hf.embeddings import Embedder

        embedder = Embedder.load()
    index: dict[tuple[str, str], int] = {}
    digests: dict[bytes, int] = {}
    chunks: list[np.ndarray] = []
    batch: list[str] = []
    with progress_bar(total, "embedding rows", unit="row") as bar:
        for split, row_id, text in rows:
            if (split, row_id) in index:
                continue
            index[(split, row_id)] = len(index)
            digests.setdefault(text_digest(text), len(index) - 1)
            batch.append(text)
            if len(batch) >= EMBED_BATCH:
                chunks.append(embedder.encode(batch, max_length=EMBED_MAX_TOKENS))
                bar.update(len(batch))
                batch = []
        if batch:
            chunks.append(embedder.encode(batch, max_length=EMBED_MAX_TOKENS))
            bar.update(len(batch))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, getattr(embedder, "dim", 384)), dtype=np.float32)
    similarity, repeats = nearest(vectors, threshold)
    return Neighbours(index, similarity, repeats, EmbeddingCache(embedder, digests, vectors))
