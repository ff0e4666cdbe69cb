"""One reader of the sample and failure journals (rundir.journal_lines), one answer for a line without
an id: every reader skips it (`iter_samples`, `iter_failures`, `journaled_ids`, `Journaled`, the task
plan through the stage, a Ray block and the failure-shard merge), so it is never resumed, counted or
de-duplicated against, and nothing crashes on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fake_engine import FakeEngine
from test_generation import answer, make_tree

from topictree_hf.config import Config
from topictree_hf.generation.allocate import allocate
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.journal import read_jsonl
from topictree_hf.pipeline import generate_stage
from topictree_hf.records import Failure
from topictree_hf.rundir import Journaled, RunDir, journal_lines
from topictree_hf.runners.blocks import block_name, block_paths, merge_failure_shards, process_block

NO_IDS: list[dict[str, Any]] = [{}, {"id": ""}, {"id": 7}, {"id": None}]  # no usable id: each line is skipped


def append(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def config() -> Config:
    return Config(generation={"num_samples": 9, "formats": ["qa"], "mode": "json", "plan": False, "max_retries": 0},
                  engine={"batch_size": 4})


def without_id(record: dict[str, Any], how: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "id"} | how


def test_every_reader_skips_a_line_without_an_id(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    summary = generate_stage(config(), FakeEngine(answer), run, make_tree())
    assert summary.valid == 9
    sample = next(read_jsonl(run.sample_shard(0)))
    ids = {s.id for s in run.iter_samples()}
    append(run.sample_shard(0), [without_id(sample, how) for how in NO_IDS])
    append(run.failures, [{"reason": "empty", "attempt": 0, **how} for how in NO_IDS])
    append(run.path / "failures-ray-x.jsonl", [{"reason": "empty", **how} for how in NO_IDS]
           + [{"id": "f1", "reason": "empty"}])

    assert {s.id for s in run.iter_samples()} == ids
    assert [f.id for f in run.iter_failures()] == ["f1"]
    assert run.journaled_ids() == ids | {"f1"}
    journaled = Journaled.read(run)
    assert set(journaled.kept) == ids and set(journaled.failed) == {"f1"}
    lines = [sid for sid, _ in journal_lines([*run.sample_shards(), *run.failure_shards()])]
    assert sorted(lines) == sorted(ids | {"f1"})

    engine = FakeEngine(answer)
    rerun = generate_stage(config(), engine, run, make_tree())
    assert (rerun.resumed, rerun.valid, rerun.failed, rerun.delivered) == (10, 0, 0, 9)
    assert engine.calls == [], "nothing is asked again for a line without an id"

    before = list(read_jsonl(run.failures))
    assert merge_failure_shards(run) == 1, "the shard's lines without an id are not folded in"
    assert list(read_jsonl(run.failures)) == [*before, Failure("f1", reason="empty").to_json()]


def test_a_block_skips_a_line_without_an_id_in_its_shards(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    tasks = list(allocate(make_tree(), config().generation))
    first = SampleGenerator(FakeEngine(answer), config(), run)
    process_block(first, run, tasks[:1])  # another block: a sample line to copy
    sample = next(read_jsonl(block_paths(run, block_name([tasks[0].id]))[0]))
    samples_path, failures_path = block_paths(run, block_name(t.id for t in tasks))
    append(samples_path, [without_id(sample, how) for how in NO_IDS])
    append(failures_path, [{"reason": "empty", **how} for how in NO_IDS])

    engine = FakeEngine(answer)
    name, summary = process_block(SampleGenerator(engine, config(), run), run, tasks)
    assert (summary.valid, summary.failed) == (len(tasks), 0), "the lines without an id count as nothing"
    assert sum(len(c) for c in engine.calls) == len(tasks)
    assert {sid for sid, _ in journal_lines([samples_path])} == {t.id for t in tasks}
