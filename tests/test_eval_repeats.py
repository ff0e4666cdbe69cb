"""Where the repeats are (eval/repeats.py): duplicate pairs split by where the two samples sit in
the tree, in `evaluate`'s result, the JSON, the printed table and the card (real embedding model)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from corpora import CARD, FACTS, record, write_dataset_folder, write_run_dir

from topictree_hf import pipeline
from topictree_hf.dedup.minhash import bands_for
from topictree_hf.eval import EvalSettings, evaluate
from topictree_hf.eval.repeats import PLACES, TreePlaces, near_repeats, semantic_repeats

# A depth-3 tree: leaves x, y under A1 (siblings), z under A2 (same branch A as x and y), w under B.
X, Y, Z, W = (["R", "A", "A1", "x"], ["R", "A", "A1", "y"], ["R", "A", "A2", "z"], ["R", "B", "B1", "w"])
FILLER = [fact for leaves in FACTS.values() for facts in leaves.values() for fact in facts]  # 72 unrelated facts
LONG = " ".join(FILLER[60:66])  # about 80 words: changing the last word keeps Jaccard near 0.97


def crafted() -> list[dict[str, Any]]:
    """Four duplicate pairs, one per place, among samples that are otherwise unrelated:
    same leaf (x, x), sibling leaves (x, y), same branch (y, z), elsewhere (z, w; a near copy, one
    word changed, not an exact one)."""
    texts = [(X, FILLER[0]), (X, FILLER[0]),  # same leaf
             (X, FILLER[7]), (Y, FILLER[7]),  # sibling leaves
             (Y, FILLER[14]), (Z, FILLER[14]),  # same branch
             (Z, LONG), (W, LONG.rsplit(" ", 1)[0] + " forever."),  # elsewhere
             (X, FILLER[21]), (Y, FILLER[28]), (Z, FILLER[35]), (W, FILLER[42]), (W, FILLER[49])]  # no twin
    return [record(path, "Tell me something.", text, i, "repeats") for i, (path, text) in enumerate(texts)]


ONE_EACH = {"same_leaf": 1, "sibling_leaves": 1, "same_branch": 1, "elsewhere": 1, "pairs": 4}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return evaluate(crafted())


def test_each_pair_is_counted_where_it_sits(result: dict[str, Any]) -> None:
    repeats = result["repeats"]
    assert repeats["semantic"] == ONE_EACH | {"samples": 13}
    assert repeats["near"] == ONE_EACH | {"samples": 13}


def test_a_set_without_a_tree_has_only_same_leaf_pairs() -> None:
    """The naive baseline: every path is the root alone, one leaf, so every pair is "same leaf"."""
    records = [dict(r, topic_path=["R"], leaf="R", depth=0, leaf_id="") for r in crafted()]
    repeats = evaluate(records, settings=EvalSettings(embed_sample=0))["repeats"]
    for kind in ("semantic", "near"):
        assert repeats[kind] == {"same_leaf": 4, "sibling_leaves": 0, "same_branch": 0, "elsewhere": 0,
                                 "pairs": 4, "samples": 13}


def test_semantic_pairs_are_among_the_embedded_sample_near_pairs_among_all() -> None:
    repeats = evaluate(crafted(), settings=EvalSettings(embed_sample=5))["repeats"]
    assert repeats["semantic"]["samples"] == 5 and repeats["near"] == ONE_EACH | {"samples": 13}
    assert repeats["semantic"]["pairs"] <= 4


def test_the_table_json_and_card_show_the_split(result: dict[str, Any], tmp_path: Path) -> None:
    folder = write_dataset_folder(tmp_path / "ds", crafted(), card=CARD)
    measured = pipeline.compare(folder, settings=EvalSettings(embed_sample=0))
    table = measured.table()
    assert "| duplicate pairs: where the two samples sit | semantic (cosine >= 0.9)* | near (J >= 0.8) |" in table
    assert "| sibling leaves (same parent) | 1 (25.0%) | 1 (25.0%) |" in table
    assert "| all duplicate pairs (among samples) | 4 among 13 | 4 among 13 |" in table
    measured.write_json(tmp_path / "eval.json")
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["set"]["repeats"]["near"] == ONE_EACH | {"samples": 13}
    assert measured.write_card()
    card = (folder / "README.md").read_text()
    assert "| same branch (same depth-1 topic) | 1 (25.0%) | 1 (25.0%) |" in card
    assert "all its pairs are same leaf" in card


def test_with_a_baseline_each_set_has_its_columns(tmp_path: Path) -> None:
    ours = write_run_dir(tmp_path / "ours", crafted())
    naive = write_run_dir(tmp_path / "naive", [dict(r, topic_path=["R"]) for r in crafted()], tree=False)
    table = pipeline.compare(ours, naive, settings=EvalSettings(embed_sample=0)).table()
    assert "| ours: semantic (cosine >= 0.9)* | ours: near (J >= 0.8) | naive: semantic (cosine >= 0.9)* |" in table
    assert "| same leaf | 1 (25.0%) | 1 (25.0%) | 4 (100.0%) | 4 (100.0%) |" in table


# ---------------------------------------------------------------- against brute force (no model)


def random_paths(rng: np.random.Generator, n: int) -> list[tuple[str, ...]]:
    """Paths of depth 0 to 3 (ragged, and the root alone), so every place occurs."""
    return [("R", *(f"{level}{rng.integers(0, 3)}" for level in "abc"[:rng.integers(0, 4)])) for _ in range(n)]


def place(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    if a == b:
        return 0
    if a[:-1] == b[:-1]:
        return 1
    return 2 if a[:-1][:2] == b[:-1][:2] else 3


def brute(paths: list[tuple[str, ...]], duplicate: Any) -> np.ndarray:
    out = np.zeros(len(PLACES), dtype=np.int64)
    for i, j in itertools.combinations(range(len(paths)), 2):
        if duplicate(i, j):
            out[place(paths[i], paths[j])] += 1
    return out


def test_semantic_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    paths = random_paths(rng, 300)
    centres = rng.normal(size=(20, 16))
    vectors = centres[rng.integers(0, 20, 300)] + 0.3 * rng.normal(size=(300, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    sims = vectors @ vectors.T
    expected = brute(paths, lambda i, j: sims[i, j] >= 0.9)
    assert expected.sum() > 100 and expected.min() > 0
    np.testing.assert_array_equal(semantic_repeats(vectors, TreePlaces.of(paths), 0.9), expected)


def test_near_pairs_match_brute_force_lsh() -> None:
    """Exact copies (one class, counted by formula) and near copies (LSH candidates, verified)."""
    rng = np.random.default_rng(1)
    paths = random_paths(rng, 300)
    signatures = rng.integers(0, 50, size=(30, 128)).astype(np.uint32)[rng.integers(0, 30, 300)]
    noise = rng.random(signatures.shape) < 0.12
    signatures[noise] = rng.integers(0, 2**32 - 1, int(noise.sum()), dtype=np.uint32)
    signatures[:40] = signatures[0]
    rows = 128 // bands_for(0.8)

    def candidate_and_close(i: int, j: int) -> bool:
        equal = signatures[i] == signatures[j]
        return bool(equal.mean() >= 0.8 and equal.reshape(-1, rows).all(axis=1).any())

    expected = brute(paths, candidate_and_close)
    assert expected.sum() > 780 and expected.min() > 0  # C(40, 2) = 780 exact pairs alone
    np.testing.assert_array_equal(near_repeats(signatures, TreePlaces.of(paths), 0.8), expected)
