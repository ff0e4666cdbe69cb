"""External merge sort: sorted, first-of-each-key, bounded fan-in, files removed afterwards."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from topictree_hf.dataset import extsort
from topictree_hf.dataset.extsort import RunSpiller, merge_unique


def spill(folder: Path, items: list[tuple[str, str, dict]], budget: int) -> RunSpiller:
    spiller = RunSpiller(folder, budget)
    for split, key, row in items:
        spiller.add(split, key, json.dumps(row).encode())
    spiller.flush()
    return spiller


def test_many_small_runs_merge_into_sorted_unique_rows(tmp_path: Path) -> None:
    rng = random.Random(0)
    keys = [f"{rng.randrange(10**6):06d}" for _ in range(3000)]
    items = [("train" if i % 3 else "test", k, {"k": k, "n": i}) for i, k in enumerate(keys)]
    spiller = spill(tmp_path, items, budget=4_000)
    assert len(spiller.runs["train"]) > 20
    duplicates = [0]
    merged = [json.loads(p) for p in merge_unique(spiller.runs["train"], duplicates)]
    expected: dict[str, int] = {}
    for split, key, row in items:
        if split == "train":
            expected.setdefault(key, row["n"])  # the first occurrence wins
    assert [r["k"] for r in merged] == sorted(expected)
    assert all(r["n"] == expected[r["k"]] for r in merged)
    assert duplicates[0] == sum(s == "train" for s, _, _ in items) - len(expected)
    assert not list(tmp_path.glob("run-*-train.tsv"))
    assert list(tmp_path.glob("run-*-test.tsv"))  # the other split's runs are untouched


def test_fan_in_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extsort, "MAX_FANIN", 3)
    items = [("train", f"{i:04d}", {"i": i}) for i in reversed(range(200))]
    spiller = spill(tmp_path, items, budget=300)
    assert len(spiller.runs["train"]) > 9  # needs two rounds of merging at fan-in 3
    merged = [json.loads(p)["i"] for p in merge_unique(spiller.runs["train"])]
    assert merged == list(range(200))
    assert list(tmp_path.iterdir()) == []


def test_keys_and_payloads_with_tabs_newlines_and_unicode(tmp_path: Path) -> None:
    rows = [("train", "b\tkey", {"t": "line\nbreak\ttab"}), ("train", "a\u2028é", {"t": "ünïcode \u2029"})]
    spiller = spill(tmp_path, rows, budget=10**6)
    out = [json.loads(p) for p in merge_unique(spiller.runs["train"])]
    assert out == [{"t": "ünïcode \u2029"}, {"t": "line\nbreak\ttab"}]  # "a..." sorts before "b..."
