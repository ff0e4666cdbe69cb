"""Reading samples from a run dir and from a built dataset folder (folders made here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpora import tree_records, write_dataset_folder, write_run_dir

from topictree_hf.errors import InputFileError
from topictree_hf.eval import read_source
from topictree_hf.journal import Journal


def make_run_dir(path: Path, records: list[dict[str, Any]], failures: list[dict[str, Any]]) -> Path:
    write_run_dir(path, records, failures)
    with Journal(path / "samples-00002.jsonl") as journal:
        journal.write_batch(records[:1])  # a record journaled twice counts once
    return path


def test_run_dir(tmp_path: Path) -> None:
    records = tree_records(2)
    failures = [{"id": "f1", "reason": "unparseable"}, {"id": "f2", "reason": "empty"},
                {"id": records[0]["id"], "reason": "truncated"},  # failed, then succeeded on a rerun
                {"id": "f3", "reason": "near_duplicate"}]  # valid, dropped by dedup: not a failure
    source = read_source(make_run_dir(tmp_path, records, failures))
    assert source.kind == "run" and source.card is None
    assert sorted(r["id"] for r in source.records) == sorted(r["id"] for r in records)
    assert source.failures == 2
    assert len(source.tree_leaves) == 12 and ("Science and Everyday Life", "Cooking", "Fermentation") in \
        source.tree_leaves


def test_run_dir_without_failures_or_tree(tmp_path: Path) -> None:
    with Journal(tmp_path / "samples-00000.jsonl") as journal:
        journal.write_batch(tree_records(1))
    source = read_source(tmp_path)
    assert source.failures == 0 and source.tree_leaves is None and len(source.records) == 12


def test_dataset_folder_reads_every_split(tmp_path: Path) -> None:
    records = tree_records(2)
    source = read_source(write_dataset_folder(tmp_path / "ds", records))
    assert source.kind == "dataset" and source.card == tmp_path / "ds" / "README.md"
    assert source.failures is None and len(source.tree_leaves) == 12
    by_id = {r["id"]: r for r in source.records}
    assert set(by_id) == {r["id"] for r in records}
    assert by_id[records[3]["id"]]["messages"] == records[3]["messages"]
    assert by_id[records[3]["id"]]["topic_path"] == records[3]["topic_path"]


def test_messages_stored_as_json_strings(tmp_path: Path) -> None:
    records = [dict(r, messages=json.dumps(r["messages"])) for r in tree_records(1)]
    source = read_source(write_dataset_folder(tmp_path / "ds", records))
    by_id = {r["id"]: r["messages"] for r in source.records}
    assert all(by_id[r["id"]] == json.loads(r["messages"]) for r in records)  # decoded on reading


def empty_folder(p: Path) -> Path:
    return p


def missing_folder(p: Path) -> Path:
    return p / "missing"


def a_file(p: Path) -> Path:
    (p / "file.txt").write_text("x")
    return p / "file.txt"


def empty_journal(p: Path) -> Path:
    (p / "samples-00000.jsonl").write_text("")
    return p


def junk_parquet(p: Path) -> Path:
    (p / "data").mkdir()
    (p / "data" / "train-00000-of-00001.parquet").write_text("junk")
    return p


def foreign_parquet(p: Path) -> Path:
    (p / "data").mkdir()
    pq.write_table(pa.table({"x": [1]}), p / "data" / "train-00000-of-00001.parquet")
    return p


@pytest.mark.parametrize("setup, match", [
    (empty_folder, "is neither a run dir"), (missing_folder, "does not exist"), (a_file, "is a file"),
    (empty_journal, "holds no samples"), (junk_parquet, "not a readable parquet file"),
    (foreign_parquet, "no messages/topic_path columns"),
])
def test_bad_folders_raise_one_line(tmp_path: Path, setup: Any, match: str) -> None:
    with pytest.raises(InputFileError, match=match) as err:
        read_source(setup(tmp_path))
    assert "\n" not in str(err.value)
