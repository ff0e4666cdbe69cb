"""Lexical diversity: exact duplicates, distinct-n, self-BLEU, compression ratio.

- exact duplicates: texts equal to an earlier text up to case, whitespace and punctuation
  (`dedup.text.normalize_text`, the same key the dedup stage uses).
- distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over the whole set (n-grams
  never cross two samples). Higher is more diverse.
- self-BLEU (Zhu et al., 2018, Texygen): BLEU-4 of each sample in a fixed seeded sample against all
  the others as references, averaged; smoothing "method1" (epsilon 0.1) as in NLTK, which Texygen
  uses. Lower is more diverse. It grows with the number of references, so compare sets at the
  same sample size (500 by default).
- compression ratio (Shaib et al., 2024): bytes of all texts / bytes after gzip. Higher is more
  repetitive.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from topictree_hf.dedup.text import text_key
from topictree_hf.eval.text import Corpus, fixed_sample

BLEU_EPSILON = 0.1


def exact_duplicate_flags(texts: Sequence[str]) -> np.ndarray:
    """True for each text equal (up to case, whitespace and punctuation) to an earlier one."""
    seen: set[bytes] = set()
    flags = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        key = text_key(text)
        flags[i] = key in seen
        seen.add(key)
    return flags


def _ngram_keys(corpus: Corpus, n: int) -> np.ndarray:
    """One integer per word n-gram of every text (equal keys are equal n-grams)."""
    lengths = np.array([len(ids) for ids in corpus.ids], dtype=np.int64)
    if not len(lengths) or lengths.sum() < n:
        return np.zeros(0, dtype=np.int64)
    flat = np.concatenate(corpus.ids)
    ends = np.repeat(np.cumsum(lengths), lengths)
    starts = np.flatnonzero(np.arange(len(flat)) + n <= ends)
    vocab = max(len(corpus.vocab), 1)
    if vocab ** n < 2 ** 62:
        keys = np.zeros(len(starts), dtype=np.int64)
        for k in range(n):
            keys = keys * vocab + flat[starts + k]
        return keys
    rows = np.stack([flat[starts + k] for k in range(n)], axis=1)
    return np.unique(rows, axis=0, return_inverse=True)[1].ravel()


def distinct_n(corpus: Corpus, n: int) -> float | None:
    keys = _ngram_keys(corpus, n)
    if not len(keys):
        return None
    return len(np.unique(keys)) / len(keys)


def compression_ratio(texts: Sequence[str]) -> float | None:
    data = "\n".join(texts).encode("utf-8")
    if not data:
        return None
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


def _ngram_counts(tokens: list[int], max_n: int) -> Counter[tuple[int, ...]]:
    counts: Counter[tuple[int, ...]] = Counter()
    for n in range(1, max_n + 1):
        counts.update(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return counts


def _top_two(counts: list[Counter[tuple[int, ...]]]) -> dict[tuple[int, ...], tuple[int, int, int]]:
    """n-gram -> (highest count, the document holding it, second highest count), so the best count
    among all documents but one is found in O(1)."""
    best: dict[tuple[int, ...], tuple[int, int, int]] = {}
    for doc, doc_counts in enumerate(counts):
        for gram, c in doc_counts.items():
            c1, d1, c2 = best.get(gram, (0, -1, 0))
            if c > c1:
                best[gram] = (c, doc, c1)
            elif c > c2:
                best[gram] = (c1, d1, c)
    return best


def _bleu(doc: int, length: int, counts: Counter[tuple[int, ...]], best: dict[tuple[int, ...], tuple[int, int, int]],
          ref_length: int, max_n: int) -> float:
    matched, total = [0] * max_n, [0] * max_n
    for gram, c in counts.items():
        c1, d1, c2 = best[gram]
        total[len(gram) - 1] += c
        matched[len(gram) - 1] += min(c, c2 if d1 == doc else c1)
    if matched[0] == 0 or length == 0:
        return 0.0
    log_p = sum(math.log((m if m else BLEU_EPSILON) / max(1, t)) for m, t in zip(matched, total, strict=True))
    brevity = 1.0 if length > ref_length else math.exp(1 - ref_length / length)
    return brevity * math.exp(log_p / max_n)


def self_bleu(corpus: Corpus, sample_size: int = 500, seed: int = 0, max_n: int = 4) -> float | None:
    """Mean BLEU-`max_n` of each sampled text against all other sampled texts."""
    docs = [corpus.ids[i].tolist() for i in fixed_sample(len(corpus), sample_size, seed)]
    if len(docs) < 2:
        return None
    counts = [_ngram_counts(d, max_n) for d in docs]
    best = _top_two(counts)
    lengths = np.array([len(d) for d in docs])
    scores = []
    for i, tokens in enumerate(docs):
        others = np.delete(lengths, i)
        ref_length = int(others[np.lexsort((others, np.abs(others - len(tokens))))[0]])
        scores.append(_bleu(i, len(tokens), counts[i], best, ref_length, max_n))
    return float(np.mean(scores))
