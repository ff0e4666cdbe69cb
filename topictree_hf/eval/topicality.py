"""Is a sample about what it was generated for? Two embedding tests, one verdict.

- on-path: cosine(sample, "root > ... > leaf") >= 0.30.
- root wins: the root is the closest label to the sample among the root and 32 broad topics
  (cooking, sports, law, ...), leaving out the broad topics within cosine 0.5 of the root
  ("History" for "Historical Events"). A zero-shot test, because a broad root phrase scores low
  against any specific text: in our calibration a correct answer about Caesar's campaigns had
  cosine 0.18 with "Historical Events", no more than garbage text (0.03-0.24).
- on-topic = on-path or root wins. A baseline set, whose only path is the root, is judged by the
  same rule, so neither set is favoured.

Why 0.30 (all-MiniLM-L6-v2, texts cut at 128 word pieces; calibrated 2026-11-24 on hand-written
Q&A over 6 paths): correct answers scored 0.25-0.69 against their own path, answers that drifted to
the root's generic theme 0.23-0.49, refusals, JSON fragments and word salad 0.01-0.18, answers
about a different leaf -0.07-0.23. The threshold sits above everything unrelated; correct but
oblique answers below it are still kept when their root wins. This is a coarse guard against
garbage and drift, not a judge of correctness: word salad that repeats its topic's name
("Answer on Colonial Festivals: archive market treaty ...") still scores 0.4-0.5 and passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from topictree_hf.eval.semantic import group_codes, similarity_to

ON_PATH_THRESHOLD = 0.30
ROOT_NEIGHBOUR = 0.5
BROAD_TOPICS = (
    "Cooking", "Sports", "Music", "Personal finance", "Medicine", "Computer programming", "Law", "Travel",
    "Fashion", "Physics", "Biology", "Chemistry", "Mathematics", "Politics", "History", "Geography",
    "Visual art", "Literature", "Film", "Video games", "Cars", "Gardening", "Pets", "Religion",
    "Philosophy", "Economics", "Education", "Psychology", "Technology", "Weather", "Business",
    "Relationships",
)


def path_text(path: Any) -> str:
    return " > ".join(path)


@dataclass
class Topicality:
    path_similarity: np.ndarray
    root_similarity: np.ndarray
    on_path: np.ndarray
    root_wins: np.ndarray

    @property
    def on_topic(self) -> np.ndarray:
        return self.on_path | self.root_wins


def topicality(embedder: Any, vectors: np.ndarray, paths: Sequence[tuple[str, ...]],
               threshold: float = ON_PATH_THRESHOLD) -> Topicality:
    """Embedding tests of each sample (`vectors[i]`) against its path `paths[i]` (root first)."""
    path_codes, distinct_paths = group_codes(paths)
    root_codes, roots = group_codes([p[0] for p in paths])
    labels = [path_text(p) for p in distinct_paths] + [str(r) for r in roots] + list(BROAD_TOPICS)
    label_vectors = embedder.encode(labels)
    path_vectors = label_vectors[:len(distinct_paths)]
    root_vectors = label_vectors[len(distinct_paths):len(distinct_paths) + len(roots)]
    broad_vectors = label_vectors[len(distinct_paths) + len(roots):]
    path_sim = similarity_to(vectors, path_vectors, path_codes)
    root_sim = similarity_to(vectors, root_vectors, root_codes)
    rivals = vectors @ broad_vectors.T  # (n, broad topics)
    unrelated = (root_vectors @ broad_vectors.T) < ROOT_NEIGHBOUR  # (roots, broad topics)
    best_rival = np.where(unrelated[root_codes], rivals, -np.inf).max(axis=1)
    return Topicality(path_sim, root_sim, path_sim >= threshold, root_sim > best_rival)
