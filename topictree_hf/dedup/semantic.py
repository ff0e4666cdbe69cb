"""The kept texts' embeddings, per branch, for the semantic check: `nearest(vector, branch)` is the
highest cosine with a kept text that `branch` is compared with, and that text's label.

Branch None is "everywhere" (dedup/base.py): its vectors are compared with every branch, and a vector
without a branch with all of them. A check is one matrix-vector product over the branch's kept
vectors (unit norm, float32: 1.5 KB per text for MiniLM), so it costs O(kept in the branch).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np


class _Rows:
    """One branch: unit vectors in a buffer grown by doubling (amortised O(1) appends), and labels."""

    def __init__(self, dim: int) -> None:
        self._buffer = np.zeros((64, dim), dtype=np.float32)
        self.size = 0
        self.labels: list[str] = []

    @property
    def vectors(self) -> np.ndarray:
        return self._buffer[:self.size]

    def add(self, vector: np.ndarray, label: str) -> None:
        if self.size == len(self._buffer):
            grown = np.zeros((2 * len(self._buffer), self._buffer.shape[1]), dtype=np.float32)
            grown[:self.size] = self._buffer
            self._buffer = grown
        self._buffer[self.size] = vector
        self.size += 1
        self.labels.append(label)


class BranchVectors:
    """Kept unit vectors by branch (see the module docstring)."""

    def __init__(self) -> None:
        self._branches: dict[Hashable, _Rows] = {}

    def __len__(self) -> int:
        return sum(rows.size for rows in self._branches.values())

    def nearest(self, vector: np.ndarray, branch: Hashable = None) -> tuple[float, str] | None:
        """(cosine, label) of the kept text closest to `vector` among those `branch` is compared
        with; None when there is none."""
        if branch is None:
            scope = list(self._branches.values())
        else:
            scope = [rows for key in (branch, None) if (rows := self._branches.get(key)) is not None]
        best: tuple[float, str] | None = None
        for rows in scope:
            if rows.size:
                cosines = rows.vectors @ vector
                i = int(cosines.argmax())
                if best is None or float(cosines[i]) > best[0]:
                    best = float(cosines[i]), rows.labels[i]
        return best

    def add(self, vector: np.ndarray, branch: Hashable = None, label: str = "") -> None:
        rows = self._branches.get(branch)
        if rows is None:
            rows = self._branches[branch] = _Rows(len(vector))
        rows.add(np.asarray(vector, dtype=np.float32), label)
