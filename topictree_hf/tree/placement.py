"""Placement: a proposed child that is not a part of its parent (issue 22).

Two mistakes a small model makes that drift (tree/drift.py) does not see, because the child stays
close to its parent:

- peer of parent: the child is another instance of the parent's kind, not a part or a sub-kind of
  it ("Chinese Cuisine" under "Asia > Indian Cuisine", "Tennis" under "Sports > Rugby", "Steamed
  Chicken" under "Steamed Fish"). What separates a peer from a sub-kind ("North Indian Cuisine",
  "Python Decorators", "Thai Cuisine" under "Southeast Asian Cuisine"):
  * a child whose name holds all of the parent's words is a sub-kind by name, never a peer;
  * upper level: the child is closer to a topic above its parent (the grandparent, the root) than
    to the parent itself, by `upper_margin`: it belongs on that level, next to the parent
    ("Tennis": 0.64 to "Sports", 0.54 to "Rugby"); a sub-kind or a part is nearer its parent;
  * same kind, another instance: child and parent share their head noun and differ in what
    qualifies it ("Chinese Cuisine" / "Indian Cuisine", "Steamed Chicken" / "Steamed Fish" share
    "steamed" and swap the noun), and the swapped words are not close enough for one to be a kind
    of the other: cosine below `swap_max` ("Thai" / "Southeast Asian" 0.61, "Salmon" / "Fish" 0.72
    are sub-kinds; "Korean" / "Southeast Asian" 0.53, "Chicken" / "Fish" 0.51 are peers). Only a
    swap in the modifier counts when the head is a broad word ("Wind Turbine" under "Wind Energy"
    swaps the head: a part);
- off subject: the child left the root's subject though it is close to its parent, because the
  parent is a place or a thing the root is not about ("Kenyan Carnage" under "World Cuisine >
  Africa > Kenya", "Solar System" under "Energy Sources > Solar Energy > Solar Panels"): what the
  child adds to the path (its residual) is much closer to another domain anchor than to the root.

Calibrated and measured on hand-labelled edges of trees the bundled Qwen 0.5B grew on five roots
(tests/data/placement_labels.jsonl, scripts/placement_labels.py; docs/quality.md, "Placement").
Like drift, the rules favour precision: a false alarm costs a re-ask and, with a weak model, a node
short of children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from topictree_hf.tree.drift import ANCHORS, CULTURE_ANCHORS, HISTORY_PROBE, residual
from topictree_hf.tree.hygiene import GENERIC_WORDS, same_stem
from topictree_hf.tree.vectors import EmbeddingCheck, VectorCache
from topictree_hf.wordforms import STOP_WORDS, singular, words

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, one row per text
# Words that end a noun phrase's head: "Instruments for Solar Energy" is about instruments.
_HEAD_BREAK = frozenset({"of", "for", "in", "on", "with", "from", "to", "by", "at", "and", "or", "about", "under"})
# Heads so broad that a child swapping them names a part, not a peer: "Wind Turbine" under "Wind Energy".
BROAD_HEADS = frozenset({
    "energy", "power", "cuisine", "food", "cooking", "culture", "history", "music", "sport", "science",
    "technology", "art", "industry", "system", "study", "life", "world", "society", "economy", "tradition",
    # processes: what replaces them names a product or a step ("Italian Bread Rolls" under "Italian Bread Making")
    "making", "technique", "method", "production", "preparation", "process", "practice", "skill", "design",
    "management", "development", "training",
})


# Everyday domains drift's anchors lack, where a child that left the subject lands ("European
# Festivals" under a cuisine root, "Sofa" under "Moroccan Cuisine"); every era has them, so a
# historical root covers them as it covers drift's CULTURE_ANCHORS.
SUBJECT_ANCHORS: tuple[str, ...] = ("Holidays and Festivals", "Home and Furniture", "Crime and Violence", "Weapons")


@dataclass(slots=True, frozen=True)
class PlacementScore:
    """How one child sits under its parent; `reason` is None when it is a part of it."""

    child: str
    parent_sim: float
    rival: str | None  # the upper topic, swapped words or anchor that decided, if any
    rival_sim: float
    reason: str | None


def phrase(text: str) -> tuple[list[str], str | None]:
    """(qualifiers, head) of a short noun phrase: "Southeast Asian Cuisine" -> (["southeast", "asian"],
    "cuisine"); "Instruments for Solar Energy" -> ([], "instrument"); generic words are dropped."""
    out: list[str] = []
    for w in words(text):
        if w in _HEAD_BREAK and out:
            break
        if w not in STOP_WORDS and singular(w) not in GENERIC_WORDS:
            out.append(singular(w))
    return (out[:-1], out[-1]) if out else ([], None)


def covers(child: str, parent: str) -> bool:
    """Whether `child` names every specific word of `parent`: a sub-kind by name ("North Indian
    Cuisine" under "Indian Cuisine", "Python Decorators" under "Python")."""
    mine = [singular(w) for w in words(child)]
    theirs = [singular(w) for w in words(parent) if w not in STOP_WORDS and singular(w) not in GENERIC_WORDS]
    return bool(theirs) and all(any(same_stem(t, m) for m in mine) for t in theirs)


def swapped(child: str, parent: str) -> tuple[str, str, bool] | None:
    """The words `child` puts in place of `parent`'s when both are one phrase with one slot changed,
    and whether the swapped slot is the head: the same head and other qualifiers ("Chinese Cuisine" /
    "Indian Cuisine" -> ("chinese", "indian", False)), or the same qualifiers and another head that
    is not a broad one ("Steamed Chicken" / "Steamed Fish" -> ("chicken", "fish", True)). None for
    any other pair."""
    (cq, ch), (pq, ph) = phrase(child), phrase(parent)
    if ch is None or ph is None:
        return None
    mine = [a for a in cq if not any(same_stem(a, b) for b in pq)]
    theirs = [b for b in pq if not any(same_stem(a, b) for a in cq)]
    # the child may not qualify more than the parent: "Cherry Mint Cream" under "Ice Cream" is a kind of it
    if same_stem(ch, ph) and mine and theirs and len(mine) <= len(theirs):
        return " ".join(mine), " ".join(theirs), False
    if (not same_stem(ch, ph) and cq and len(cq) == len(pq) and ph not in BROAD_HEADS
            and all(same_stem(a, b) for a, b in zip(cq, pq, strict=True))):
        return ch, ph, True
    return None


class PlacementChecker(EmbeddingCheck):
    """Scores children against their parent, the topics above it and, for the subject, the anchors.

        checker = PlacementChecker()                   # the bundled MiniLM, loaded on first use
        scores = checker.score_level(items)            # items: [(child, path root..parent, parent_siblings)]
        [s.reason for s in scores]                     # "peer of parent: ...", "off subject: ...", or None
    """

    def __init__(self, encode: Encode | None = None, upper_margin: float = 0.05, upper_floor: float = 0.4,
                 upper_kind: float = 0.45, swap_max: float = 0.6, head_min: float = 0.3,
                 subject_margin: float = 0.25, subject_min: float = 0.4, anchor_exclude: float = 0.45,
                 historical_root: float = 0.4, anchors: Sequence[str] = (*ANCHORS, *SUBJECT_ANCHORS)) -> None:
        self.upper_margin, self.upper_floor, self.upper_kind = upper_margin, upper_floor, upper_kind
        self.swap_max, self.head_min = swap_max, head_min
        self.subject_margin, self.subject_min, self.anchor_exclude = subject_margin, subject_min, anchor_exclude
        self.historical_root = historical_root
        self.anchors = tuple(anchors)
        self._vectors = VectorCache(encode, self.anchors)

    def score_level(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[PlacementScore]:
        """Score every (child, path root..parent, parent's siblings) of one level: one embedding
        pass for all new texts, then dot products."""
        texts = [*self.anchors, HISTORY_PROBE]
        for child, path, _ in items:
            texts += [child, residual(child, path), *path, *(swapped(child, path[-1]) or ())[:2]]
        self.vectors(texts)
        return [self.score(child, path, siblings) for child, path, siblings in items]

    def score(self, child: str, path: Sequence[str], parent_siblings: Sequence[str] = ()) -> PlacementScore:
        """Score one child of the node at `path` (root first, the parent last). `parent_siblings`
        are accepted for the same call shape as `DriftChecker.score`; the rules do not use them."""
        if not path:
            raise ValueError("path must hold at least the root")
        own, rest = self.vectors([child, residual(child, path)]), self.vectors(list(path))
        parent_sim = float(own[0] @ rest[-1])
        peer = self._peer(child, path, own[0], rest, parent_sim)
        if peer is not None:
            return peer
        off = self._off_subject(child, path, own, rest)
        if off is not None:
            return off
        return PlacementScore(child, parent_sim, None, -1.0, None)

    def _peer(self, child: str, path: Sequence[str], own: np.ndarray, rest: np.ndarray,
              parent_sim: float) -> PlacementScore | None:
        parent = path[-1]
        if len(path) < 2 or covers(child, parent):
            return None
        # closer to a topic above the parent, as a whole and by what it adds to the path, so that a
        # word it shares with the grandparent ("Sushi Sauce" under "Sushi > Soba Sushi") does not decide
        res = self.vectors([residual(child, path)])[0]
        upper = rest[:-1] @ own
        pull = np.minimum(upper - parent_sim, rest[:-1] @ res - float(res @ rest[-1]))
        # only a topic the parent is itself a kind of: under "World Cuisine > Africa > Kenya", "Street
        # Food" is nearer the root than "Kenya" because Kenya is a place, not a cuisine
        pull = np.where(rest[:-1] @ rest[-1] >= self.upper_kind, pull, -1.0)
        k = int(np.argmax(pull))
        if float(pull[k]) >= self.upper_margin and float(upper[k]) >= self.upper_floor:
            return PlacementScore(child, parent_sim, path[k], float(upper[k]),
                                  f"peer of parent: a topic like '{parent}' (closer to '{path[k]}'), not part of it")
        swap = swapped(child, parent)
        if swap is not None:
            mine, theirs, head = swap
            a, b = self.vectors([mine, theirs])
            sim = float(a @ b)
            # a head far from the parent's names a part or a use ("Solar Irrigation" under "Solar Panel")
            if sim < self.swap_max and (not head or sim >= self.head_min):
                return PlacementScore(child, parent_sim, f"{mine} / {theirs}", sim,
                                      f"peer of parent: another kind like '{parent}', not a kind of it")
        return None

    def _off_subject(self, child: str, path: Sequence[str], own: np.ndarray, rest: np.ndarray) -> PlacementScore | None:
        """The child as a whole and what it adds to its path (its residual) are both much closer to
        one other domain than to the root's subject (the root, and the anchors that are the path's
        own domains). Closeness to the parent excuses it only under a parent on the root's subject
        ("Health Insurance" under "Personal Finance > Insurance"), not under a place or a thing the
        root is not about ("Sofa" under "African Cuisine > Moroccan Cuisine"). Under a historical
        root the domains every era has (drift's CULTURE_ANCHORS) never compete. Children of the root
        are drift's case."""
        if len(path) < 2:
            return None
        anchors = self.vectors(list(self.anchors))
        home = (anchors @ rest.T).max(axis=1) >= self.anchor_exclude  # the path's own domains never compete
        probe = self.vectors([HISTORY_PROBE])[0]
        if float(probe @ rest[0]) >= self.historical_root:
            home |= np.array([a in CULTURE_ANCHORS or a in SUBJECT_ANCHORS for a in self.anchors], dtype=bool)
        margins = []
        for vec in own:  # the whole child, then its residual
            subject = max(float(vec @ rest[0]), float((anchors[home] @ vec).max(initial=-1.0)))
            margins.append(np.where(home, -1.0, anchors @ vec) - subject)
        margin = np.minimum(*margins)
        k = int(np.argmax(margin))
        rival = float(anchors[k] @ own[0])
        on_subject = float(rest[-1] @ rest[0]) >= self.subject_min
        if float(margin[k]) < self.subject_margin or (on_subject and float(own[0] @ rest[-1]) >= rival):
            return None
        return PlacementScore(child, float(own[0] @ rest[-1]), self.anchors[k], rival,
                              f"off subject: about '{self.anchors[k]}', not '{path[0]}'")
