"""Each metric on inputs whose answer is known (no model needed)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from topictree_hf.dedup.minhash import LSHIndex, MinHasher, jaccard_estimate, near_duplicate_flags
from topictree_hf.errors import ConfigError
from topictree_hf.eval import coverage, lexical, semantic
from topictree_hf.eval.text import Corpus, fixed_sample, sample_text

WORDS = [f"w{i}" for i in range(400)]


def random_text(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(text: str, rng: random.Random, changes: int) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), changes):
        words[i] = "changed"
    return " ".join(words)


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = t.lower().split()
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def test_sample_text_skips_system_turns_and_decodes_json() -> None:
    record = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                           {"role": "assistant", "content": "A"}]}
    assert sample_text(record) == "Q\nA"
    assert sample_text(record, "assistant") == "A"
    assert sample_text({"messages": '[{"role": "user", "content": "Q"}]'}) == "Q"


def test_minhash_estimates_jaccard_and_is_the_same_in_every_instance() -> None:
    rng = random.Random(1)
    base = random_text(rng, 200)
    hasher = MinHasher()
    for changes in (2, 8, 30):
        other = edit(base, rng, changes)
        estimate = jaccard_estimate(hasher.signature_of_text(base), hasher.signature_of_text(other))
        assert estimate == pytest.approx(true_jaccard(base, other), abs=0.13)
    np.testing.assert_array_equal(MinHasher().signature_of_text(base), hasher.signature_of_text(base))
    assert not np.array_equal(MinHasher(seed=2).signature_of_text(base), hasher.signature_of_text(base))


def test_batched_signatures_equal_one_by_one() -> None:
    rng = random.Random(2)
    texts = [random_text(rng, rng.randint(0, 80)) for _ in range(50)] + ["one two"]
    hasher = MinHasher()
    batched = hasher.signatures(Corpus.from_texts(texts))
    for text, signature in zip(texts, batched, strict=True):
        np.testing.assert_array_equal(signature, hasher.signature_of_text(text))


def test_near_duplicate_flags_keep_the_first_of_each_group() -> None:
    rng = random.Random(3)
    base = [random_text(rng, 100) for _ in range(20)]
    texts = base + [edit(t, rng, 1) for t in base[:5]] + [edit(t, rng, 40) for t in base[5:10]]
    flags = near_duplicate_flags(MinHasher().signatures(Corpus.from_texts(texts)))
    assert flags[:20].sum() == 0 and flags[20:25].all() and not flags[25:].any()


def test_lsh_index_finds_near_copies_through_growth() -> None:
    rng = np.random.default_rng(0)
    kept = rng.integers(0, 2**32, size=(5000, 128), dtype=np.uint32)  # grows from 1,024 slots 4 times
    index = LSHIndex(128, 16)
    for signature in kept:
        assert index.find(signature, 0.8) is None
        index.add(signature)
    assert index.size == 5000
    for i in rng.integers(0, 5000, size=100):
        near, far = kept[i].copy(), kept[i].copy()
        near[rng.choice(128, 12, replace=False)] += 1  # estimated Jaccard 0.91
        far[rng.choice(128, 40, replace=False)] += 1  # 0.69
        assert index.find(near, 0.8) == i and index.find(far, 0.8) is None


def test_lsh_bands_must_divide_the_permutations() -> None:
    with pytest.raises(ConfigError, match="bands=7 must divide num_perm=128"):
        LSHIndex(128, 7)


def test_exact_duplicates_ignore_case_spacing_and_punctuation() -> None:
    """The same key as the generator's ExactDeduper and the tree's sibling check (dedup.text)."""
    flags = lexical.exact_duplicate_flags(["Hello  World", "hello world", "hello, world!", "Hello World\n",
                                           "hello worlds"])
    assert flags.tolist() == [False, True, True, True, False]


def test_distinct_n_counts_unique_ngrams_within_samples() -> None:
    corpus = Corpus.from_texts(["a b a b", "a b c"])
    assert lexical.distinct_n(corpus, 1) == pytest.approx(3 / 7)
    assert lexical.distinct_n(corpus, 2) == pytest.approx(3 / 5)  # ab ba ab | ab bc ("b a" never crosses)
    assert lexical.distinct_n(Corpus.from_texts(["a"]), 2) is None


def test_self_bleu_is_one_for_copies_and_low_for_unrelated_texts() -> None:
    copies = Corpus.from_texts(["the cat sat on the mat today"] * 5)
    assert lexical.self_bleu(copies) == pytest.approx(1.0)
    rng = random.Random(4)
    unrelated = Corpus.from_texts([random_text(rng, 30) for _ in range(30)])
    assert lexical.self_bleu(unrelated) < 0.2


def test_self_bleu_by_hand() -> None:
    # hypothesis "a b c d" against the single reference "a b c e": p1=3/4, p2=2/3, p3=1/2, p4=0 -> 0.1/1
    corpus = Corpus.from_texts(["a b c d", "a b c e"])
    expected = math.exp((math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2) + math.log(0.1)) / 4)
    assert lexical.self_bleu(corpus) == pytest.approx(expected)


def test_compression_ratio_grows_with_repetition() -> None:
    rng = random.Random(5)
    varied = [random_text(rng) for _ in range(50)]
    assert lexical.compression_ratio([varied[0]] * 50) > 3 * lexical.compression_ratio(varied)
    assert lexical.compression_ratio([]) is None


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_vendi_counts_effective_distinct_items() -> None:
    basis = np.eye(8, dtype=np.float32)
    assert semantic.vendi_score(np.repeat(basis[:1], 10, axis=0)) == pytest.approx(1.0)
    assert semantic.vendi_score(np.repeat(basis[:4], 5, axis=0)) == pytest.approx(4.0)
    rng = np.random.default_rng(0)
    wide = unit(rng.normal(size=(500, 64)))  # n > dim goes through the dim x dim matrix
    kernel = wide.astype(np.float64) @ wide.T.astype(np.float64) / 500
    eig = np.linalg.eigvalsh(kernel)
    eig = eig[eig > 1e-12]
    assert semantic.vendi_score(wide) == pytest.approx(math.exp(-(eig * np.log(eig)).sum()), rel=1e-6)


def test_pairwise_and_path_similarities_match_the_full_matrix() -> None:
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(40, 16)))
    codes = rng.integers(0, 5, size=40)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    off = ~np.eye(40, dtype=bool)
    same = (codes[:, None] == codes[None, :]) & off
    assert semantic.mean_pairwise_cosine(x) == pytest.approx(sims[off].mean(), abs=1e-6)
    intra, inter = semantic.intra_inter_similarity(x, codes)
    assert intra == pytest.approx(sims[same].mean(), abs=1e-6)
    assert inter == pytest.approx(sims[codes[:, None] != codes[None, :]].mean(), abs=1e-6)
    assert semantic.intra_inter_similarity(x, np.zeros(40, dtype=np.int64))[1] is None


def test_semantic_duplicates_keep_the_first_across_blocks() -> None:
    rng = np.random.default_rng(2)
    base = unit(rng.normal(size=(30, 32)))
    near = unit(base[:10] + 0.05 * rng.normal(size=(10, 32)))
    flags = semantic.semantic_duplicate_flags(np.concatenate([base, near]), 0.9, block=7)
    assert flags.tolist() == [False] * 30 + [True] * 10


def test_leaf_coverage_and_entropy() -> None:
    leaves = [("r", "a"), ("r", "b"), ("r", "c"), ("r", "d")]
    even = [leaf for leaf in leaves for _ in range(3)]
    assert coverage.leaf_coverage(even, leaves) == 1.0
    assert coverage.leaf_entropy(even, leaves) == (pytest.approx(2.0), pytest.approx(1.0))
    skewed = [("r", "a")] * 9 + [("r", "b")]
    assert coverage.leaf_coverage(skewed, leaves) == 0.5
    bits, normalized = coverage.leaf_entropy(skewed, leaves)
    assert bits < 0.5 and normalized < 0.25
    assert coverage.leaf_coverage(skewed, None) is None
    assert coverage.leaf_entropy([("r",)] * 4) == (0.0, None)


def test_fixed_sample_is_seeded_and_sorted() -> None:
    a = fixed_sample(1000, 50, seed=0)
    assert len(a) == 50 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, fixed_sample(1000, 50, seed=0))
    assert not np.array_equal(a, fixed_sample(1000, 50, seed=1))
    np.testing.assert_array_equal(fixed_sample(10, 50), np.arange(10))
    np.testing.assert_array_equal(fixed_sample(10, 0), np.arange(10))
