"""Cleaning and validation of proposed subtopics: strip list markup, bound the length, reject a
topic equal to its parent or an ancestor, de-duplicate siblings by normalised text (and, optionally,
semantically against siblings and cousins). Every rejection carries a reason."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from topictree_hf.dedup.text import normalize_text
from topictree_hf.textparse import valid_unicode

_NUMBERING = re.compile(r"^\s*(?:[-*\u2022\u2013\u2014>]+|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
MAX_WORDS = 8
_REPEATED_WORD = re.compile(r"\b(\w{3,})\b\W+\1\b", re.IGNORECASE)
_EDGE = " \t\r\n\"'`\u201c\u201d\u2018\u2019*_#.,;:"
_PLACEHOLDER = re.compile(r"^(?:sub)?topic[\s_-]*\d+\b|subtopic_\d+|\bplaceholder\b|^(?:n/?a|none|todo|tbd|\.\.\.)$",
                          re.IGNORECASE)


def clean_topic(text: str) -> str:
    """'1. **Roman Empire**' -> 'Roman Empire'."""
    text = " ".join(str(text).split())
    prev = None
    while prev != text:
        prev = text
        text = _NUMBERING.sub("", text).strip(_EDGE)
    return text


def normalize(text: str) -> str:
    """Key for sibling de-duplication: `normalize_text` (case, whitespace, punctuation do not count),
    and neither do articles and a plural 's'."""
    words = normalize_text(text).split()
    words = [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in {"the", "a", "an", "and"}]
    return " ".join(words)


@dataclass
class Verdict:
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (raw topic, reason)


def parse_subtopics(text: str) -> list[str] | None:
    """The `subtopics` list from a model answer (trailing text after the JSON is ignored)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except (json.JSONDecodeError, RecursionError):  # RecursionError: "[[[[..." thousands deep
        return None
    items = obj.get("subtopics") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        return None
    return [valid_unicode(str(i)) for i in items if isinstance(i, str | int | float)]


def judge(candidates: Sequence[str], path: Sequence[str], taken: Sequence[str], min_chars: int, max_chars: int,
          want: int, similar: Callable[[str, Sequence[str]], str | None] | None = None,
          check: Callable[[str, Sequence[str]], str | None] | None = None) -> Verdict:
    """Accept up to `want` of `candidates` as children of the node at `path`.

    `taken` are children the node already has; `similar(topic, others)` (semantic dedup) returns
    the topic it is too close to, or None. `check(topic, kept)` is the last check (the builder's
    tree hygiene): a reason to reject, or None; it is called only for a topic that every other
    check let through, so a None from it means the topic is accepted."""
    verdict = Verdict()
    ancestors = {normalize(p) for p in path}
    seen = {normalize(t) for t in taken}
    kept = list(taken)
    for raw in candidates:
        topic = clean_topic(raw)
        key = normalize(topic)
        reason = None
        if not topic or not key:
            reason = "empty"
        elif len(topic) < min_chars or len(topic) > max_chars:
            reason = f"length {len(topic)} outside {min_chars}-{max_chars}"
        elif len(topic.split()) > MAX_WORDS:
            reason = f"more than {MAX_WORDS} words"
        elif _REPEATED_WORD.search(topic):
            reason = "repeated word"
        elif _PLACEHOLDER.search(topic):
            reason = "placeholder"
        elif key in ancestors:
            reason = "same as parent or ancestor"
        elif key in seen:
            reason = "duplicate sibling"
        elif len(verdict.accepted) >= want:
            reason = "surplus"
        elif similar is not None and (close := similar(topic, kept)) is not None:
            reason = f"too close to '{close}'"
        elif check is not None:
            reason = check(topic, kept)
        if reason is None:
            verdict.accepted.append(topic)
            seen.add(key)
            kept.append(topic)
        elif reason != "surplus":
            verdict.rejected.append((raw, reason))
    return verdict
