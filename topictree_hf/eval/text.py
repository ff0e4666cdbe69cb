"""What text of a sample is measured, and how it is split into words.

A sample is measured by the text of its non-system turns (user and assistant), joined by newlines.
Every turn of a stored sample was written by the model (the question of a Q&A pair as much as the
answer), and near-identical questions are exactly the collapse this evaluation must see; the system
turn is a constant from the config and would only inflate every similarity. `turns="assistant"`
measures the assistant turns alone.

Words are those of `topictree_hf.dedup.text` (lowercased `\\w+` runs): punctuation and case do not
make two texts differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from topictree_hf.dedup.text import word_hash, words
from topictree_hf.errors import InputFileError
from topictree_hf.records import turns_text

__all__ = ["Corpus", "Turns", "equal_size", "fixed_sample", "in_id_order", "messages_of", "sample_text", "word_hash",
           "words"]
Turns = Literal["all", "assistant"]


def messages_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's chat turns; a JSON-encoded string (the `Json()` feature) is decoded."""
    messages = record.get("messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            messages = None
    if not isinstance(messages, list):
        sid = record.get("id", "?")
        raise InputFileError(f"sample {sid} has no messages list; evaluate samples written by topictree")
    return [m for m in messages if isinstance(m, dict)]


def sample_text(record: dict[str, Any], turns: Turns = "all") -> str:
    """The measured text of one sample record (see the module docstring)."""
    return turns_text(messages_of(record), ("assistant",) if turns == "assistant" else ("user", "assistant"))


@dataclass
class Corpus:
    """The texts of a sample set, split into words once and shared by every lexical metric.

    `ids[i]` holds the word ids of text i; `vocab` maps a word to its id; `word_hashes[id]` is the
    word's stable hash (for MinHash shingles)."""

    texts: list[str]
    ids: list[np.ndarray] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    word_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Corpus:
        corpus = cls(list(texts))
        vocab = corpus.vocab
        for text in corpus.texts:
            tokens = words(text)
            corpus.ids.append(np.fromiter((vocab.setdefault(w, len(vocab)) for w in tokens),
                                          dtype=np.int64, count=len(tokens)))
        corpus.word_hashes = np.fromiter((word_hash(w) for w in vocab), dtype=np.uint64, count=len(vocab))
        return corpus

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Corpus:
        """The same vocabulary over the texts at `indices` (no re-tokenising)."""
        return Corpus([self.texts[i] for i in indices], [self.ids[i] for i in indices], self.vocab,
                      self.word_hashes)

    def hashed_words(self, i: int) -> np.ndarray:
        return self.word_hashes[self.ids[i]]


def fixed_sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random sample of `size` out of `n` (all of them when n <= size or
    size <= 0). The one sampler: the equal-N pick, the embedded sample and self-BLEU's sample."""
    if size <= 0 or n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def in_id_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records sorted by id (as read when one has no string id), so what is measured does not
    depend on the order the files were read in."""
    out = list(records)
    if out and all(isinstance(r.get("id"), str) for r in out):
        out.sort(key=lambda r: r["id"])
    return out


def equal_size(records: Iterable[dict[str, Any]], size: int, seed: int = 0) -> list[dict[str, Any]]:
    """`size` of `records` by a seeded pick, kept in id order (all of them when there are no more):
    two sets are compared at equal N, since duplicate rates, distinct-n and Vendi depend on N."""
    ordered = in_id_order(records)
    return [ordered[i] for i in fixed_sample(len(ordered), size, seed)]
