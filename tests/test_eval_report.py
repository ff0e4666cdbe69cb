"""`evaluate` on constructed corpora: every figure moves the right way (real embedding model)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from corpora import garbage_records, leaf_paths, templated_records, tree_records

from topictree_hf.errors import ConfigError, InputFileError
from topictree_hf.eval import EvalSettings, evaluate, format_table

LEAVES = [tuple(p) for p in leaf_paths()]


@pytest.fixture(scope="module")
def tree() -> dict[str, Any]:
    return evaluate(tree_records(5), tree_leaves=LEAVES, failures=4)


@pytest.fixture(scope="module")
def templated() -> dict[str, Any]:
    return evaluate(templated_records(60))


@pytest.fixture(scope="module")
def garbage() -> dict[str, Any]:
    return evaluate(garbage_records(60), tree_leaves=LEAVES)


HIGHER = ("distinct_1", "distinct_2", "distinct_3", "vendi_score")
LOWER = ("exact_duplicate_rate", "near_duplicate_rate", "semantic_duplicate_rate", "self_bleu",
         "compression_ratio", "mean_pairwise_cosine")


@pytest.mark.parametrize("key", HIGHER + LOWER)
def test_varied_text_beats_templated_near_copies(tree: dict, templated: dict, key: str) -> None:
    ours, theirs = tree["diversity"][key], templated["diversity"][key]
    assert (ours > theirs) if key in HIGHER else (ours < theirs), (key, ours, theirs)


def test_templated_copies_are_mostly_duplicates(templated: dict) -> None:
    d = templated["diversity"]
    assert d["near_duplicate_rate"] >= d["exact_duplicate_rate"] > 0.5
    assert d["semantic_duplicate_rate"] > 0.9 and d["vendi_score"] < 2.0


def test_on_topic_diversity_only_counts_on_topic_samples(tree: dict, templated: dict) -> None:
    assert tree["on_topic"]["samples"] >= 0.9 * tree["samples"]
    assert tree["on_topic"]["vendi_score"] > 5 * templated["on_topic"]["vendi_score"]
    assert tree["on_topic"]["near_duplicate_rate"] < templated["on_topic"]["near_duplicate_rate"]


def test_garbage_is_lexically_diverse_but_fails_the_guards(tree: dict, garbage: dict) -> None:
    assert garbage["diversity"]["distinct_3"] > tree["diversity"]["distinct_3"]  # why guards exist
    assert garbage["quality"]["on_topic_rate"] < 0.1 < 0.9 < tree["quality"]["on_topic_rate"]
    assert garbage["quality"]["mean_path_similarity"] < tree["quality"]["mean_path_similarity"] - 0.2
    assert garbage["on_topic"] == {"samples": 0} or garbage["on_topic"]["samples"] < 6


def test_tree_figures(tree: dict, templated: dict) -> None:
    t = tree["tree"]
    assert t["leaves"] == 12 and t["paths_with_samples"] == 12 and t["leaf_coverage"] == 1.0
    assert t["leaf_entropy_normalized"] == pytest.approx(1.0)
    assert t["intra_path_similarity"] > t["inter_path_similarity"] + 0.2
    assert templated["tree"]["leaf_coverage"] is None and templated["tree"]["inter_path_similarity"] is None


def test_leaf_coverage_drops_when_leaves_have_no_samples() -> None:
    records = [r for r in tree_records(2) if r["topic_path"][1] != "Cooking"]
    result = evaluate(records, tree_leaves=LEAVES, settings=EvalSettings(embed_sample=10))
    assert result["tree"]["leaf_coverage"] == pytest.approx(9 / 12)
    assert result["tree"]["leaf_entropy_normalized"] < 1.0


def test_valid_rate_from_failures(tree: dict, templated: dict) -> None:
    assert tree["quality"]["valid_rate"] == pytest.approx(60 / 64)
    assert templated["quality"]["valid_rate"] is None


def test_deterministic_and_independent_of_record_order(tree: dict) -> None:
    records = tree_records(5)
    random.Random(9).shuffle(records)
    again = evaluate(records, tree_leaves=LEAVES, failures=4)
    assert again["diversity"] == pytest.approx(tree["diversity"], abs=1e-6)
    assert again["quality"] == pytest.approx(tree["quality"], abs=1e-6)


def test_embed_sample_caps_what_is_embedded() -> None:
    result = evaluate(tree_records(5), settings=EvalSettings(embed_sample=20, self_bleu_sample=10))
    assert result["samples"] == 60 and result["embedded"] == 20
    assert result["settings"]["embed_sample"] == 20


def test_table_has_every_row_and_ratios(tree: dict, templated: dict) -> None:
    table = format_table(tree, templated, ("tree", "naive"))
    assert table.splitlines()[0] == "| metric | better | tree | naive | ratio | ahead |"
    assert "| near-duplicates (MinHash, word 5-grams, J >= 0.8) | lower | 0.0% |" in table
    assert "| Vendi score* | higher |" in table and "x |" in table
    vendi = next(line for line in table.splitlines() if line.startswith("| Vendi score* |"))
    assert vendi.endswith("| tree |")  # the tree set is the more diverse one: ahead on Vendi
    assert next(line for line in table.splitlines() if line.startswith("| leaves in the tree |")).endswith("|  |")
    assert "n/a" not in format_table(tree).split("Spread over the tree")[0]


@pytest.mark.parametrize("records, match", [
    ([], "no samples"),
    ([{"id": "a", "topic_path": ["r"]}], "no messages"),
    ([{"id": "a", "messages": [{"role": "user", "content": "q"}]}], "no topic_path"),
])
def test_bad_records_raise_one_line(records: list, match: str) -> None:
    with pytest.raises(InputFileError, match=match):
        evaluate(records)


@pytest.mark.parametrize("field, value", [("near_threshold", 0.0), ("semantic_threshold", 1.5),
                                          ("embed_sample", -1), ("turns", "system"), ("embed_max_tokens", 4)])
def test_settings_name_the_bad_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        EvalSettings(**{field: value})
