"""Exact de-duplication (the `exact` setting) and none at all (the naive baseline, `none`)."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from topictree_hf.dedup.base import Deduper
from topictree_hf.dedup.text import text_key
from topictree_hf.records import DUPLICATE


class ExactDeduper(Deduper):
    """Exact duplicates after case, whitespace and punctuation are normalised (`normalize_text`)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def check_and_add(self, text: str, branch: Hashable = None, *, label: str | None = None,
                      vector: np.ndarray | None = None) -> str | None:
        key = text_key(text)
        if key in self._seen:
            return DUPLICATE
        self._seen.add(key)
        return None


class NoDeduper(Deduper):
    def check_and_add(self, text: str, branch: Hashable = None, *, label: str | None = None,
                      vector: np.ndarray | None = None) -> str | None:
        return None
