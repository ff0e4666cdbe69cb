"""The dedup interface the generator talks to: one text in, a rejection reason or None out.

A text may come with a `branch` (any hashable: the generator passes the topic path's first two
names) and a `label` (what a rejection it causes quotes of it). Only the semantic check is scoped by
branch; exact and MinHash duplicates count across all texts. `branch=None` means "everywhere": a
text kept without a branch is compared with every later text, a text checked without one with every
kept text, so callers that never pass a branch get one global scope.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np


class KeptText(NamedTuple):
    """A text kept before (a resumed run's samples), with its branch and label (see the module docstring)."""

    text: str
    branch: Hashable = None
    label: str | None = None


class Deduper(ABC):
    """Remembers kept texts; `check_and_add` says why a new text duplicates one of them."""

    embeds = False  # True: `check_and_add` embeds each text; `embed` does a group of them in one pass

    @abstractmethod
    def check_and_add(self, text: str, branch: Hashable = None, *, label: str | None = None,
                      vector: np.ndarray | None = None) -> str | None:
        """The rejection reason (records.DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE and what it is
        too close to) if `text` duplicates a kept text (it is then not kept), else None (and it is
        remembered, in `branch`, with `label`). `vector`: its embedding from `embed`."""

    def embed(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The embeddings `check_and_add` would compute for `texts`, in one pass (None for a text that
        needs none: no semantic check, or already a duplicate of a kept text)."""
        return [None] * len(texts)

    def remember(self, texts: Iterable[str | KeptText]) -> None:
        """Keep `texts` (samples journaled before this run) so that new samples are checked against
        them; a plain string has no branch (it counts in every branch)."""
        for item in texts:
            kept = KeptText(item) if isinstance(item, str) else item
            self.check_and_add(kept.text, kept.branch, label=kept.label)
