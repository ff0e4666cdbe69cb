"""`evaluate(records)`: every diversity figure and quality guard of a sample set, as one dict.

Figures from words and MinHash use every sample. Figures from embeddings (semantic duplicates,
pairwise cosine, Vendi, topicality, intra/inter-path similarity) use a fixed seeded sample of at
most `embed_sample` samples (2,000 by default), each cut at 128 word pieces (the length the model
was trained at): embedding all 10k samples of a set takes minutes on a 2-core CPU. Records are put
in id order first, so the result does not depend on the order they were read in. Same input and
settings, same numbers.

Result groups: "quality" (valid, on-topic rates), "diversity" (all samples), "on_topic" (the
diversity of the on-topic samples of the embedded sample only), "tree" (how samples spread over
the leaves), "repeats" (duplicate pairs by where the two samples sit in the tree: repeats.py),
"settings", and counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from topictree_hf.dedup.minhash import MinHasher, near_duplicate_flags
from topictree_hf.errors import ConfigError, InputFileError
from topictree_hf.eval import coverage, lexical, semantic
from topictree_hf.eval.repeats import repeats
from topictree_hf.eval.text import Corpus, Turns, fixed_sample, in_id_order, sample_text
from topictree_hf.eval.topicality import ON_PATH_THRESHOLD, Topicality, topicality


@dataclass(frozen=True)
class EvalSettings:
    turns: Turns = "all"
    near_threshold: float = 0.8
    ngram: int = 5
    num_perm: int = 128
    bands: int | None = None  # None: from near_threshold (16 bands of 8 rows for 0.8)
    semantic_threshold: float = 0.9
    on_path_threshold: float = ON_PATH_THRESHOLD
    self_bleu_sample: int = 500
    embed_sample: int = 2000
    embed_max_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.turns not in ("all", "assistant"):
            raise ConfigError(f"eval turns={self.turns!r} must be 'all' or 'assistant'")
        for name in ("near_threshold", "semantic_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"eval {name}={getattr(self, name)} must be in (0, 1]")
        if not -1.0 <= self.on_path_threshold <= 1.0:
            raise ConfigError(f"eval on_path_threshold={self.on_path_threshold} must be in [-1, 1]")
        for name in ("self_bleu_sample", "embed_sample"):
            if getattr(self, name) < 0:
                raise ConfigError(f"eval {name}={getattr(self, name)} must be >= 0 (0 means all samples)")
        if not 8 <= self.embed_max_tokens <= 256:
            raise ConfigError(f"eval embed_max_tokens={self.embed_max_tokens} must be in [8, 256]")


def topic_path_of(record: dict[str, Any]) -> tuple[str, ...]:
    path = record.get("topic_path")
    if not isinstance(path, list | tuple) or not path or not all(isinstance(p, str) for p in path):
        raise InputFileError(f"sample {record.get('id', '?')} has no topic_path (a list of topics, root "
                             "first); evaluate samples written by topictree")
    return tuple(path)


def evaluate(records: Iterable[dict[str, Any]], *, tree_leaves: Collection[tuple[str, ...]] | None = None,
             failures: int | None = None, settings: EvalSettings | None = None, embedder: Any = None,
             progress: bool = False) -> dict[str, Any]:
    """Diversity and quality figures of sample `records` (see the module docstring). `tree_leaves`
    (root-to-leaf paths) enables leaf coverage; `failures` (samples that failed validation) enables
    the valid rate; `embedder` defaults to the bundled `Embedder.load()`."""
    s = settings or EvalSettings()
    ordered = in_id_order(records)
    if not ordered:
        raise InputFileError("no samples to evaluate; generate some with `topictree run` first")
    paths = [topic_path_of(r) for r in ordered]
    corpus = Corpus.from_texts(sample_text(r, s.turns) for r in ordered)
    signatures = MinHasher(s.num_perm, s.ngram, seed=s.seed + 1).signatures(corpus)
    exact = lexical.exact_duplicate_flags(corpus.texts)
    near = near_duplicate_flags(signatures, s.near_threshold, s.bands, exact)

    picked = fixed_sample(len(ordered), s.embed_sample, s.seed)
    if embedder is None:
        from topictree_hf.embeddings import Embedder

        embedder = Embedder.load()
    vectors = embedder.encode([corpus.texts[i] for i in picked], progress=progress, max_length=s.embed_max_tokens)
    topic = topicality(embedder, vectors, [paths[i] for i in picked], s.on_path_threshold)

    n = len(ordered)
    return {
        "samples": n,
        "embedded": len(picked),
        "quality": _quality(topic, n, failures),
        "diversity": {
            "exact_duplicate_rate": float(exact.mean()),
            "near_duplicate_rate": float(near.mean()),
            **_embedding_figures(vectors, s),
            **_lexical_figures(corpus, s),
        },
        "on_topic": _on_topic_figures(corpus, signatures, vectors, picked, topic.on_topic, s),
        "tree": _tree_figures(paths, tree_leaves, vectors, [paths[i] for i in picked]),
        "repeats": repeats(vectors, picked, signatures, paths, s),
        "settings": asdict(s),
    }


def _quality(topic: Topicality, n: int, failures: int | None) -> dict[str, Any]:
    return {
        "valid_rate": n / (n + failures) if failures is not None else None,
        "on_topic_rate": float(topic.on_topic.mean()),
        "on_path_rate": float(topic.on_path.mean()),
        "root_wins_rate": float(topic.root_wins.mean()),
        "mean_path_similarity": float(topic.path_similarity.mean()),
        "mean_root_similarity": float(topic.root_similarity.mean()),
    }


def _lexical_figures(corpus: Corpus, s: EvalSettings) -> dict[str, Any]:
    return {
        "distinct_1": lexical.distinct_n(corpus, 1),
        "distinct_2": lexical.distinct_n(corpus, 2),
        "distinct_3": lexical.distinct_n(corpus, 3),
        "self_bleu": lexical.self_bleu(corpus, s.self_bleu_sample, s.seed),
        "compression_ratio": lexical.compression_ratio(corpus.texts),
    }


def _embedding_figures(vectors: np.ndarray, s: EvalSettings) -> dict[str, Any]:
    flags = semantic.semantic_duplicate_flags(vectors, s.semantic_threshold)
    return {
        "semantic_duplicate_rate": float(flags.mean()) if len(flags) else None,
        "mean_pairwise_cosine": semantic.mean_pairwise_cosine(vectors),
        "vendi_score": semantic.vendi_score(vectors),
    }


def _on_topic_figures(corpus: Corpus, signatures: np.ndarray, vectors: np.ndarray, picked: np.ndarray,
                      on_topic: np.ndarray, s: EvalSettings) -> dict[str, Any]:
    """Diversity over the on-topic samples of the embedded sample (duplicates among them only)."""
    keep = picked[on_topic]
    if not len(keep):
        return {"samples": 0}
    sub = corpus.subset(keep.tolist())
    exact = lexical.exact_duplicate_flags(sub.texts)
    near = near_duplicate_flags(signatures[keep], s.near_threshold, s.bands, exact)
    return {
        "samples": len(keep),
        "near_duplicate_rate": float(near.mean()),
        **_embedding_figures(vectors[on_topic], s),
        "distinct_2": lexical.distinct_n(sub, 2),
    }


def _tree_figures(paths: list[tuple[str, ...]], tree_leaves: Collection[tuple[str, ...]] | None,
                  vectors: np.ndarray, picked_paths: list[tuple[str, ...]]) -> dict[str, Any]:
    bits, normalized = coverage.leaf_entropy(paths, tree_leaves)
    codes, _ = semantic.group_codes(picked_paths)
    intra, inter = semantic.intra_inter_similarity(vectors, codes)
    return {
        "leaves": len(tree_leaves) if tree_leaves else None,
        "paths_with_samples": len(set(paths)),
        "leaf_coverage": coverage.leaf_coverage(paths, tree_leaves),
        "leaf_entropy_bits": bits,
        "leaf_entropy_normalized": normalized,
        "intra_path_similarity": intra,
        "inter_path_similarity": inter,
    }
