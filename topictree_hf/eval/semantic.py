"""Diversity and topicality from sentence embeddings (unit vectors, so a dot product is a cosine).

- semantic near-duplicates: a text whose cosine with an EARLIER kept text reaches 0.9 (the same
  keep-the-first rule as the MinHash filter), as a share of all texts.
- mean pairwise cosine over all pairs i != j, from the norm of the sum: O(n), no n x n matrix.
- Vendi score (Friedman & Dieng, 2023): exp of the Shannon entropy of the eigenvalues of K/n with
  K the cosine kernel, "the effective number of distinct samples" (1 when all are the same, n when
  all are orthogonal; here at most 384, the embedding size). Computed from the 384 x 384 matrix
  X^T X / n, which has the same non-zero eigenvalues as K/n.
- intra- vs inter-path similarity: mean cosine of pairs from the same leaf path vs pairs from
  different paths, from per-path sums: O(n).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def semantic_duplicate_flags(vectors: np.ndarray, threshold: float = 0.9, block: int = 512) -> np.ndarray:
    """True for each vector whose cosine with an earlier kept vector reaches `threshold`."""
    n = len(vectors)
    flags = np.zeros(n, dtype=bool)
    kept = np.empty_like(vectors)
    count = 0
    for start in range(0, n, block):
        rows = vectors[start:start + block]
        prior = (rows @ kept[:count].T).max(axis=1) >= threshold if count else np.zeros(len(rows), bool)
        inner = rows @ rows.T
        local: list[int] = []
        for j in range(len(rows)):
            if prior[j] or (local and inner[j, local].max() >= threshold):
                flags[start + j] = True
            else:
                local.append(j)
        kept[count:count + len(local)] = rows[local]
        count += len(local)
    return flags


def mean_pairwise_cosine(vectors: np.ndarray) -> float | None:
    n = len(vectors)
    if n < 2:
        return None
    x = vectors.astype(np.float64)
    total = x.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", x, x)) / (n * (n - 1)))


def vendi_score(vectors: np.ndarray) -> float | None:
    n = len(vectors)
    if n == 0:
        return None
    x = vectors.astype(np.float64)
    gram = x @ x.T if n <= x.shape[1] else x.T @ x
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    eigenvalues /= eigenvalues.sum()
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def group_codes(keys: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """An integer code per key (first-seen order) and the distinct keys."""
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    return codes, list(index)


def intra_inter_similarity(vectors: np.ndarray, codes: np.ndarray) -> tuple[float | None, float | None]:
    """Mean cosine of pairs within the same group, and of pairs across groups (None: no such pair)."""
    if not len(vectors):
        return None, None
    x = vectors.astype(np.float64)
    groups = int(codes.max()) + 1
    sums = np.zeros((groups, x.shape[1]))
    np.add.at(sums, codes, x)
    counts = np.bincount(codes, minlength=groups).astype(np.float64)
    self_dots = np.einsum("ij,ij->", x, x)
    within = float(np.einsum("ij,ij->", sums, sums))
    total = x.sum(axis=0)
    intra_pairs = float((counts * (counts - 1)).sum())
    inter_pairs = float(len(x) ** 2 - (counts**2).sum())
    intra = (within - self_dots) / intra_pairs if intra_pairs else None
    inter = (float(total @ total) - within) / inter_pairs if inter_pairs else None
    return intra, inter


def similarity_to(vectors: np.ndarray, targets: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Cosine of each vector with its own target (`targets[codes[i]]`)."""
    return np.einsum("ij,ij->i", vectors, targets[codes])
