"""The pipeline's streaming dedup filter."""

from __future__ import annotations

import random

import numpy as np
import pytest
from corpora import templated_records, tree_records

from topictree_hf.dedup import NearDuplicateFilter
from topictree_hf.dedup.minhash import MinHasher, near_duplicate_flags
from topictree_hf.errors import ConfigError
from topictree_hf.eval import sample_text
from topictree_hf.eval.text import Corpus

WORDS = [f"w{i}" for i in range(500)]


def text(rng: random.Random, n: int = 80) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_reasons_and_counts() -> None:
    rng = random.Random(0)
    first, other = text(rng), text(rng)
    near = first.split()
    near[40] = "edited"
    dedup = NearDuplicateFilter()
    reasons = [dedup.seen_or_add(t) for t in (first, first.upper() + "  ", " ".join(near), other)]
    assert reasons == [None, "exact", "near", None]
    assert dedup.counts == {"seen": 4, "kept": 2, "exact": 1, "near": 1, "semantic": 0}
    assert dedup.dropped == 2


def test_dropped_texts_are_not_remembered() -> None:
    """A chain of small edits is compared with the first text, not with the last dropped one."""
    rng = random.Random(1)
    words = text(rng, 100).split()
    dedup = NearDuplicateFilter(threshold=0.8)
    reasons = []
    for step in range(12):
        words[step * 8] = f"edit{step}"
        reasons.append(dedup.seen_or_add(" ".join(words)))
    assert reasons[0] is None and "near" in reasons and reasons[-1] is None  # drifted far enough: kept


def test_threshold_decides() -> None:
    rng = random.Random(2)
    base = text(rng, 100).split()
    edited = list(base)
    for i in range(0, 100, 10):
        edited[i] = "x"  # Jaccard of 5-grams about 0.35
    loose, strict = NearDuplicateFilter(threshold=0.3), NearDuplicateFilter(threshold=0.8)
    for dedup in (loose, strict):
        dedup.seen_or_add(" ".join(base))
    assert loose.seen_or_add(" ".join(edited)) == "near"
    assert strict.seen_or_add(" ".join(edited)) is None


def test_same_drops_as_the_eval_near_duplicate_rate() -> None:
    texts = [sample_text(r) for r in tree_records(3) + templated_records(30)]
    dedup = NearDuplicateFilter()
    dropped = [dedup.seen_or_add(t) is not None for t in texts]
    flags = near_duplicate_flags(MinHasher().signatures(Corpus.from_texts(texts)))
    assert dropped == flags.tolist() and sum(dropped) > 20


def test_semantic_check_uses_the_embedder_once_per_batch() -> None:
    calls: list[int] = []

    class Recording:
        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            vectors = np.zeros((len(texts), 4), dtype=np.float32)
            for i, t in enumerate(texts):
                vectors[i, 0 if "cat" in t else 1] = 1.0
            return vectors

    dedup = NearDuplicateFilter(semantic_threshold=0.9, embedder=Recording())
    reasons = dedup.check_batch(["a cat sat on a mat today", "my cat is asleep in the sun now",
                                 "stocks fell sharply this morning", "a cat sat on a mat today"])
    assert reasons == [None, "semantic", None, "exact"]
    assert calls == [4]
    assert dedup.seen_or_add("the cat again, yet another phrasing here") == "semantic" and calls == [4, 1]
    assert dedup.counts["semantic"] == 2 and dedup.counts["kept"] == 2


def test_semantic_with_the_real_model() -> None:
    dedup = NearDuplicateFilter(semantic_threshold=0.85)
    reasons = dedup.check_batch(["How do black holes form from dying stars?",
                                 "How do dying stars turn into black holes?",
                                 "What is the best way to knead bread dough?"])
    assert reasons == [None, "semantic", None]


@pytest.mark.parametrize("kwargs, match", [({"threshold": 0}, "threshold"), ({"semantic_threshold": 2.0}, "semantic"),
                                           ({"bands": 7}, "bands"), ({"num_perm": 4}, "num_perm")])
def test_bad_settings_raise_one_line(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NearDuplicateFilter(**kwargs)
