"""Scripted embeddings for the tree's embedding checks (drift, placement): one dimension per concept
(1 when the text contains one of its word stems), plus a constant so no vector is zero."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def concept_vectors(concepts: Mapping[str, Sequence[str]], texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), len(concepts) + 1), dtype=np.float32)
    for row, text in enumerate(texts):
        low = text.lower()
        out[row, :-1] = [float(any(s in low for s in stems)) for stems in concepts.values()]
        out[row, -1] = 0.3
    return out
