"""The one definition of "the same text" for exact de-duplication, and the words MinHash shingles.

Words are lowercased runs of letters and digits (`\\w+`, Unicode): case, whitespace and punctuation
do not make two texts differ. `normalize_text` is the exact-duplicate key of samples (ExactDeduper,
NearDuplicateFilter), of eval's duplicate counts, and the base of the tree's sibling key
(`tree.clean.normalize`, which also ignores articles and plural endings).
"""

from __future__ import annotations

import hashlib
import re
import zlib

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalize_text(text: str) -> str:
    """'The  Roman Empire!' -> 'the roman empire': equal results are exact duplicates."""
    return " ".join(words(text))


def text_key(text: str) -> bytes:
    """A 16-byte digest of `normalize_text(text)`: what a deduper remembers instead of the text."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).digest()


def snippet(text: str, limit: int = 160) -> str:
    """The start of `text` on one line, at most about `limit` characters (cut at a word, "..." added),
    double quotes made single: what a rejection reason may quote of a kept text."""
    flat = " ".join(text.split()).replace('"', "'")
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + "..."


def word_hash(word: str) -> int:
    """A stable 32-bit hash of a word (Python's `hash` is salted per process)."""
    return zlib.crc32(word.encode("utf-8"))
