"""Tree hygiene: a topic appears once in the whole tree, a child says more than its ancestors, and
a child stays inside its path.

Three checks, cheapest first, each returning a short reason (stable text before the first colon,
so a builder can count them) or None:

- `topic_key` / `GlobalTopicIndex`: one normalised form per topic (case, punctuation, word order,
  stop words, simple plurals), so "What is History?" / "What History is?" and "Cultural Heritage" /
  "cultural heritages" are one topic, wherever they are in the tree. Pure Python, microseconds.
- `restates(child, ancestors, root)`: the child's words are all words of the path above it
  ("History" under "Historical Events"; "Asian Cuisine" under "World Cuisine > Asia"); a re-ask
  gets something more specific.
- `DriftChecker` (tree/drift.py): MiniLM embeddings; a child closer to another domain than to the
  root, or closer to one of its parent's siblings than to its parent.

Near-synonyms among siblings and cousins are `tree.semantic.SemanticMatcher`; `near_synonym` here
only phrases its verdict as a reason.
"""

from __future__ import annotations

import os.path
from collections.abc import Callable, Iterable, Sequence

from topictree_hf.wordforms import content_words, singular, words

# Words that make a topic look specific without being so: "Types of Asian Cuisine" under "Asia".
GENERIC_WORDS = frozenset({
    "overview", "introduction", "intro", "basic", "basics", "fundamental", "general", "type", "kind", "aspect",
    "topic", "subtopic", "category", "theme", "area", "field", "concept", "study", "understanding", "guide",
    "various", "different", "main", "important", "major", "famous",
})


def topic_key(text: str) -> str:
    """The whole-tree dedup key: sorted distinct content words, singular.

    "What is History?" and "What History is?" -> "history"; "Cultural Heritage" and
    "cultural heritages" -> "cultural heritage". A topic made only of stop words keeps them
    ("What Is It" -> "is it what"), so it still has a key."""
    key = sorted(set(content_words(text)))
    if not key:
        key = sorted({singular(w) for w in words(text)})
    return " ".join(key)


# Endings that keep a word's topic ("history" / "historical", "japan" / "japanese"); "lioness",
# "cookie", "artist" end otherwise and stay different words.
_SAME_TOPIC_ENDINGS = frozenset({
    "", "s", "es", "e", "y", "n", "an", "ian", "ese", "ish", "al", "ial", "ical", "ic", "ics", "ing", "ed", "er",
    "ers", "ion", "ation", "ations", "ive", "ly", "ally", "ity",
})


def same_stem(a: str, b: str) -> bool:
    """Two words are one for restating: equal, or a shared stem of 4+ letters followed by endings
    that do not change the topic ("history" / "historical", "asia" / "asian", "culture" /
    "cultural"); "art" / "artist" and "lion" / "lioness" are different words."""
    if a == b:
        return True
    shared = len(os.path.commonprefix([a, b]))
    return shared >= 4 and a[shared:] in _SAME_TOPIC_ENDINGS and b[shared:] in _SAME_TOPIC_ENDINGS


def _covered(word: str, pool: Iterable[str]) -> bool:
    return any(same_stem(word, p) for p in pool)


def restates(child: str, ancestors: Sequence[str], root: str | None = None) -> str | None:
    """Why `child` only restates the path above it, or None.

    `ancestors` is the path from the root to the parent (root first); `root` defaults to its first
    item and is counted even when `ancestors` leaves it out. Generic words ("types", "overview",
    "famous") do not make a child specific. Reasons (the text before ':' is stable):
    "same as ancestor: 'X'", "restates root: 'X'" (the root's own category, "History" under
    "Historical Events"), "restates parent: 'X'", "restates path: 'A > B'"."""
    path = list(ancestors)
    if root is not None and (not path or path[0] != root):
        path.insert(0, root)
    if not path:
        return None
    key = topic_key(child)
    for topic in reversed(path):
        if topic_key(topic) == key:
            return f"same as ancestor: '{topic}'"
    specific = [w for w in content_words(child) if w not in GENERIC_WORDS]
    if not specific:
        return f"restates parent: '{path[-1]}'"
    if all(_covered(w, content_words(path[0])) for w in specific):
        return f"restates root: '{path[0]}'"
    if all(_covered(w, content_words(path[-1])) for w in specific):
        return f"restates parent: '{path[-1]}'"
    if all(_covered(w, [v for topic in path for v in content_words(topic)]) for w in specific):
        return f"restates path: '{' > '.join(path)}'"
    return None


class GlobalTopicIndex:
    """Every topic of the tree by `topic_key`: a proposed child is refused when its key is taken
    anywhere (not only among its siblings).

        index = GlobalTopicIndex.from_topics(tree_topics)
        where = index.contains("cultural heritages")   # "Historical Events > Cultural Heritage" or None
        index.add(topic, "Historical Events > History > Cultural Heritage")
    """

    def __init__(self) -> None:
        self._where: dict[str, str] = {}

    @classmethod
    def from_topics(cls, topics: Iterable[str | tuple[str, str]]) -> GlobalTopicIndex:
        """An index of `topics`: plain topics, or (topic, where) pairs (`where` names the node,
        e.g. its path joined by ' > ', and is what `contains` returns)."""
        index = cls()
        for item in topics:
            topic, where = (item, item) if isinstance(item, str) else item
            index.add(topic, where)
        return index

    def __len__(self) -> int:
        return len(self._where)

    def contains(self, topic: str) -> str | None:
        """Where a topic with the same key already is, or None."""
        return self._where.get(topic_key(topic))

    def add(self, topic: str, where: str | None = None) -> bool:
        """Remember `topic` (at `where`, default the topic itself); False when its key was taken
        (the first holder is kept)."""
        key = topic_key(topic)
        if key in self._where:
            return False
        self._where[key] = where if where is not None else topic
        return True

    def check_and_add(self, topic: str, where: str | None = None) -> str | None:
        """"duplicate in tree: 'X'" when the key is taken (and nothing is added), else add and None."""
        found = self.contains(topic)
        if found is not None:
            return f"duplicate in tree: '{found}'"
        self.add(topic, where)
        return None


def near_synonym(similar: Callable[[str, Sequence[str]], str | None], topic: str, siblings: Sequence[str],
                 cousins: Sequence[str] = ()) -> str | None:
    """"near-synonym: 'X'" when `similar` (a `SemanticMatcher`, cosine on MiniLM vectors) finds a
    sibling or cousin at or above its threshold, else None. Siblings are searched first so the
    reason names the closest relative."""
    close = similar(topic, list(siblings)) or (similar(topic, list(cousins)) if cousins else None)
    return None if close is None else f"near-synonym: '{close}'"
