"""One record type: the generator writes `Sample`s, the journals hold them, the builder's rows, the
dataset features and the card's field table come from the same type; old journals still build."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from synthetic_run import make_synthetic_run

from topictree_hf.dataset import FEATURES, build_dataset
from topictree_hf.dataset.card_context import field_table
from topictree_hf.journal import read_jsonl
from topictree_hf.records import Failure, RecordError, Sample, row_columns, sample_id
from topictree_hf.rundir import RunDir


def test_features_and_card_fields_come_from_the_sample_type() -> None:
    columns = [f.name for f in fields(Sample) if f.name != "leaf_id"]
    assert columns == [name for name, *_ in row_columns()]
    columns += ["nn_similarity", "repeat_count"]  # added by the build from the whole dataset (dataset/neighbours.py)
    assert list(FEATURES) == columns
    assert [f["name"] for f in field_table()] == columns
    assert "0: the first try" in {f["name"]: f["doc"] for f in field_table()}["attempt"]


def test_the_generator_writes_exactly_the_sample_fields(generated_run: RunDir) -> None:
    names = {f.name for f in fields(Sample)}
    lines = list(read_jsonl(generated_run.sample_shard(0)))
    assert len(lines) == 48 and all(set(line) == names for line in lines)
    for line in lines:
        sample = Sample.from_json(line)
        assert sample.to_json() == line  # nothing lost, nothing added
        assert sample.attempt == 0 and sample.template == sample.format  # one convention each
    ids = {sample_id(42, s.leaf_id, s.format, i) for s in map(Sample.from_json, lines) for i in range(3)}
    assert {line["id"] for line in lines} <= ids, "ids made by the one recipe (seed 42, leaf, format, index)"
    row = Sample.from_json(lines[0]).to_row()
    assert list(row) == list(FEATURES)[:-2]  # the build adds the two neighbour columns


def test_a_journal_written_before_the_sample_type_still_builds(tmp_path: Path) -> None:
    """Old lines: template with its file suffix, no leaf_id/leaf/depth, some optional keys missing."""
    run = make_synthetic_run(tmp_path / "run", depth=1, degree=2, samples_per_leaf=2)
    old = []
    for line in read_jsonl(run.sample_shard(0)):
        for key in ("leaf_id", "leaf", "depth", "backend", "angle"):
            line.pop(key)
        old.append(line | {"template": f"{line['format']}.jinja", "attempt": 1})
    run.sample_shard(0).write_text("".join(json.dumps(r) + "\n" for r in old))
    result = build_dataset(run.path, tmp_path / "ds")
    assert result.total_rows == 4 and not result.stats.dropped
    sample = next(run.iter_samples())
    assert (sample.template, sample.leaf, sample.depth, sample.backend) == ("qa", sample.topic_path[-1], 1, None)


@pytest.mark.parametrize(("record", "reason"), [
    ({"topic_path": ["A"], "format": "qa", "messages": [{"role": "user", "content": "x"}]}, "missing id"),
    ({"id": "x", "topic_path": "A", "format": "qa", "messages": []}, "bad topic_path"),
    ({"id": "x", "topic_path": ["A"], "messages": [{"role": "user", "content": "x"}]}, "missing format"),
    ({"id": "x", "topic_path": ["A"], "format": "qa", "messages": []}, "no messages"),
    ({"id": "x", "topic_path": ["A"], "format": "qa", "messages": [{"role": "user", "content": None}]},
     "message content is not text"),
    (["not", "an", "object"], "record is not an object"),
])
def test_a_bad_line_is_one_short_reason(record: object, reason: str) -> None:
    with pytest.raises(RecordError, match=f"^{reason}$"):
        Sample.from_json(record)


def test_failure_records_round_trip_and_tolerate_old_lines() -> None:
    failure = Failure("id1", ["A", "B"], "qa", "invalid", "invalid: missing answer", "raw", 2)
    assert Failure.from_json(failure.to_json()) == failure
    old = Failure.from_json({"id": "id2", "reason": "length"})
    assert (old.id, old.reason, old.described(), old.topic_path) == ("id2", "length", "length", [])
    assert Failure.from_json({"detail": "x"}).id is None
