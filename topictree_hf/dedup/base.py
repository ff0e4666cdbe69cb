"""The dedup interface the generator talks to: one text in, a rejection reason or None out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable


class Deduper(ABC):
    """Remembers kept texts; `check_and_add` says why a new text duplicates one of them."""

    @abstractmethod
    def check_and_add(self, text: str) -> str | None:
        """The rejection reason (records.DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE) if `text`
        duplicates a kept text (it is then not kept), else None (and it is remembered)."""

    def remember(self, texts: Iterable[str]) -> None:
        """Keep `texts` (samples journaled before this run) so that new samples are checked against them."""
        for text in texts:
            self.check_and_add(text)
