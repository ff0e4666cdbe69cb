"""Drift: a proposed subtopic that leaves its path ("Australia's Famous Music" under
"World Cuisine > Australia"; "African Cuisine" under "World Cuisine > Asia").

Why contrastive and not one cosine threshold: with the bundled all-MiniLM-L6-v2, good children
of "World Cuisine" can score lower against the root than drifting ones ("Bush Tucker" 0.18,
"Vegemite on Toast" 0.22, but "Australia's Famous Music" 0.27), so no absolute cut separates them.
What does separate them is the question "is this child closer to something else?":

- off the root: the child is much closer to a broad domain anchor ("Music", "Sports", ...; anchors
  close to the root or the path are left out) than to the root: margin >= `root_margin`, or a
  smaller margin when the child is barely related to the path (cosine < `root_floor` to every path
  topic and to the anchors that are the path's very domain: "Counterpoint" is near "Music" under
  "Music Theory"), and closer to that anchor than to its parent too ("Health Insurance" under
  "Personal Finance > Insurance" is near "Health and Medicine" but nearer "Insurance"). A child that
  names the root ("Egyptian Music" under "Ancient Egypt", "Economic History" under "Historical
  Events") or a path topic on the root's subject ("Travel Budgeting" under "Personal Finance >
  Budgeting") is compared whole, not by its residual: it is the path's own slice of that domain.
  Under a historical root ("Historical Events", "Ancient Egypt", "Art History": close to "History")
  the domains every era has (CULTURE_ANCHORS: "Art", "Music", "Religion", "Space and Astronomy", ...)
  win only over a child barely related to the path ("Renaissance Art", "Folk Music", "Space Race"
  are history); "Sorghum cultivation" and "Celebrity Gossip" (a present-day domain) still drift;
- off the parent: one of its parent's siblings is >= `sibling_min` and beats the parent by
  `sibling_margin` ("African Cuisine": 0.58 to "Africa", 0.27 to "Asia"; "Cadences" at 0.54 to
  "Rhythm", 0.39 to "Harmony", stays). Needs the siblings (a level is built at once, so they are
  known); without them only the root check runs.

Calibrated on labelled children in tests/test_tree_hygiene.py (docs/quality.md, "Drift"): a false
alarm costs a re-ask and, with a weak model, a node short of children, so the rules favour
precision over catching every drift.

Cost: one embedding per new child (and one for its words not already in the path), anchors and
path topics once per process; measured in docs/quality.md ("Tree hygiene cost").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from topictree_hf.tree.hygiene import GENERIC_WORDS, same_stem, topic_key
from topictree_hf.tree.vectors import EmbeddingCheck, VectorCache
from topictree_hf.wordforms import content_words, singular, words

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, one row per text

# Broad domains a drifting child tends to land in. Those close to the root or to a path topic are
# dropped per path, so "Food and Cooking" never competes with "World Cuisine".
ANCHORS: tuple[str, ...] = (
    "Music", "Sports", "Travel and Tourism", "Places and Landmarks", "History", "Science", "Technology",
    "Politics", "Food and Cooking", "Art", "Literature", "Religion", "Business", "Health and Medicine", "Nature",
    "Film and Television", "Fashion", "Agriculture and Farming", "Economics", "Education", "Law",
    "Military and War", "Animals", "Geography", "Mathematics", "Language", "Games", "Entertainment",
    "Celebrities", "Astrology", "Transportation", "Architecture", "Personal Finance", "Space and Astronomy",
    "Computers and Software", "Family and Relationships", "Weather and Climate",
)
# Domains every era and culture has: under a historical root ("Historical Events", "Ancient Egypt",
# "Art History") their history is inside ("Renaissance Art", "Folk Music", "Space Race", "Board Games"
# in Daily Life), so they win only over a child barely related to the path ("Sorghum cultivation",
# "Pizza Recipes" under "World War II"). The rest are present-day domains ("Celebrities",
# "Computers and Software", "Personal Finance", ...) and compete as under any root.
CULTURE_ANCHORS: tuple[str, ...] = (
    "Music", "Sports", "Travel and Tourism", "Places and Landmarks", "History", "Science", "Technology",
    "Politics", "Food and Cooking", "Art", "Literature", "Religion", "Business", "Health and Medicine", "Nature",
    "Film and Television", "Fashion", "Agriculture and Farming", "Economics", "Education", "Law",
    "Military and War", "Animals", "Geography", "Mathematics", "Language", "Games", "Transportation",
    "Architecture", "Space and Astronomy", "Family and Relationships", "Weather and Climate",
)
HISTORY_PROBE = "History"  # a root at least `historical_root` close to it is historical


@dataclass(slots=True, frozen=True)
class DriftScore:
    """How one child relates to its path; `reason` is None when it stays inside."""

    child: str
    root_sim: float
    parent_sim: float
    rival: str | None  # the anchor or parent-sibling it is closest to, if any competes
    rival_sim: float
    reason: str | None


class DriftChecker(EmbeddingCheck):
    """Scores children against their root, parent, parent's siblings and domain anchors.

        checker = DriftChecker()                      # loads the bundled MiniLM on first use
        scores = checker.score_level(items)           # items: [(child, path, parent_siblings)]
        drifted = [s for s in scores if s.reason]     # reason: "drift: closer to 'Music' than ..."
    """

    def __init__(self, encode: Encode | None = None, root_margin: float = 0.3, root_floor: float = 0.15,
                 floor_margin: float = 0.1, anchor_exclude: float = 0.45, sibling_margin: float = 0.2,
                 sibling_min: float = 0.45, anchors: Sequence[str] = ANCHORS, historical_root: float = 0.4,
                 culture_anchors: Sequence[str] = CULTURE_ANCHORS, subject_min: float = 0.5,
                 domain_min: float = 0.6) -> None:
        self.root_margin, self.root_floor, self.floor_margin = root_margin, root_floor, floor_margin
        self.anchor_exclude, self.sibling_margin, self.sibling_min = anchor_exclude, sibling_margin, sibling_min
        self.historical_root, self.subject_min, self.domain_min = historical_root, subject_min, domain_min
        self.anchors = tuple(anchors)
        self._culture = np.array([a in set(culture_anchors) for a in self.anchors], dtype=bool)
        self._vectors = VectorCache(encode, (*self.anchors, HISTORY_PROBE))

    def score_level(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[DriftScore]:
        """Score every (child, path root..parent, parent's siblings) of one level; one embedding
        pass for all new texts, then cheap dot products."""
        texts = [*self.anchors, HISTORY_PROBE]
        for child, path, siblings in items:
            texts += [child, residual(child, path), *path, *siblings]
        self.vectors(texts)
        return [self.score(child, path, siblings) for child, path, siblings in items]

    def historical(self, root: str) -> bool:
        """Whether `root` is a history or culture of its own ("Historical Events", "Ancient Egypt",
        "Art History"): such a root covers the history of every domain in CULTURE_ANCHORS."""
        probe, vec = self.vectors([HISTORY_PROBE, root])
        return float(probe @ vec) >= self.historical_root

    def score(self, child: str, path: Sequence[str], parent_siblings: Sequence[str] = ()) -> DriftScore:
        """Score one child of the node at `path` (root first, the parent last)."""
        if not path:
            raise ValueError("path must hold at least the root")
        root, parent = path[0], path[-1]
        own, rest, anchor_vecs = self.vectors([child, residual(child, path)]), self.vectors(list(path)), \
            self.vectors(list(self.anchors))
        root_sim = float(max(own[0] @ rest[0], own[1] @ rest[0]))
        parent_sim = float(own[0] @ rest[-1])
        # A child that names the root ("Egyptian Music" under "Ancient Egypt", "Economic History"
        # under "Historical Events") or a path topic on the root's own subject ("Travel Budgeting"
        # under "Personal Finance > Budgeting") is that domain seen through the path: its residual
        # ("Music", "Travel") would make it look off-root, so only the whole child competes with the
        # anchors. A place on the path ("Australia" under "World Cuisine") is not the root's subject:
        # "Australia's Famous Music" is still compared by its residual.
        subject = [t for i, t in enumerate(path) if i == 0 or float(rest[i] @ rest[0]) >= self.subject_min]
        mine = own[:1] if any(names(child, t) for t in subject) else own
        # anchors close to the root or a path topic do not compete; those that are its very domain
        # ("Music" for "Music Theory") count as the path when asking whether the child is near it at all
        related = (anchor_vecs @ rest.T).max(axis=1)
        home = related >= self.anchor_exclude
        sims = np.where(home, -1.0, (anchor_vecs @ mine.T).max(axis=1))
        domain = anchor_vecs[related >= self.domain_min] @ own[0]
        path_sim = float(max((rest @ own.T).max(), domain.max(initial=-1.0)))
        margins = sims - root_sim
        far = path_sim < self.root_floor  # barely related to any path topic or to the path's domain
        strong = margins >= self.root_margin
        if self._culture.any() and self.historical(root):
            strong &= ~self._culture  # "Renaissance Art", "Space Race" under "Historical Events"
        off = ~home & (strong | (far & (margins >= self.floor_margin))) & (sims > parent_sim)
        pick = np.where(off, sims, -2.0) if off.any() else sims
        best = int(np.argmax(pick)) if len(sims) else -1
        rival, rival_sim = (self.anchors[best], float(sims[best])) if best >= 0 and sims[best] > -1 else (None, -1.0)
        reason = None
        if off.any():
            reason = f"drift: closer to '{rival}' than to '{root}'"
        elif (others := [s for s in parent_siblings if topic_key(s) != topic_key(child)]) and len(path) > 1:
            sib = self.vectors(others) @ own[0]
            k = int(np.argmax(sib))
            if float(sib[k]) >= self.sibling_min and float(sib[k]) - parent_sim >= self.sibling_margin:
                rival, rival_sim = others[k], float(sib[k])
                reason = f"drift: belongs under '{rival}', not '{parent}'"
        return DriftScore(child, root_sim, parent_sim, rival, rival_sim, reason)


def names(child: str, topic: str) -> bool:
    """Whether `child` uses a specific word of `topic` ("Egyptian Music" names "Ancient Egypt";
    generic words like "types" or "famous" do not count)."""
    pool = content_words(topic)
    return any(same_stem(w, p) for w in content_words(child) if w not in GENERIC_WORDS for p in pool)


def residual(child: str, path: Sequence[str]) -> str:
    """The child's words that are not words of its path ("Australia's Famous Music" under
    "World Cuisine > Australia" -> "Famous Music"): what the child adds, compared with the root
    so that a shared place name does not hide a change of subject. The child itself if nothing is left."""
    pool = [singular(w) for topic in path for w in words(topic)]
    kept = [w for w in words(child) if not any(same_stem(singular(w), p) for p in pool)]
    return " ".join(kept) or child
