"""A block of sample tasks, journaled on its own: what a distributed worker does with its share.

Each block writes `samples-ray-<block>.jsonl` and `failures-ray-<block>.jsonl` in the run dir, where
`<block>` is a hash of the task ids in it. A block that is run again (its worker died, Ray retried
it elsewhere) therefore reopens the same two files, skips the ids already there and finishes the
rest: nothing is generated twice. Sample ids are stable (seed, leaf, format, index), the run dir
reader keeps the first record per id, and a rerun skips every id already in any shard (RunDir reads
samples-*.jsonl and failures-*.jsonl shards as journals of the run).

The runner folds the per-block failure shards into failures.jsonl (`merge_failure_shards`) after a
distributed run, so a finished run dir has one failure journal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import SampleGenerator, Summary
from topictree_hf.journal import Journal, read_jsonl
from topictree_hf.records import Failure, RecordError, Sample
from topictree_hf.rundir import RunDir

SAMPLES_PREFIX = "samples-ray-"
FAILURES_PREFIX = "failures-ray-"
COUNTS = ("valid", "failed", "retried", "output_tokens", "engine_calls", "requests", "judge_requests",
          "judge_prompt_tokens", "judge_output_tokens", "judge_unparsed")


def task_row(task: Task) -> dict[str, Any]:
    """A task as a flat row (Arrow-friendly: the path travels as JSON text)."""
    return {"id": task.id, "leaf_id": task.leaf_id, "path": json.dumps(list(task.path), ensure_ascii=False),
            "index": task.index, "format": task.format, "angle": task.angle}


def tasks_from_columns(batch: dict[str, Sequence[Any]]) -> list[Task]:
    """Tasks back from a columnar batch (dict of arrays or lists, as Ray Data hands them over)."""
    cols = {k: list(v.tolist() if hasattr(v, "tolist") else v) for k, v in batch.items()}
    return [Task(str(i), str(leaf), tuple(json.loads(path)), int(index), str(fmt), str(angle))
            for i, leaf, path, index, fmt, angle in zip(cols["id"], cols["leaf_id"], cols["path"], cols["index"],
                                                         cols["format"], cols["angle"], strict=True)]


def block_name(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def block_paths(run_dir: RunDir, name: str) -> tuple[Path, Path]:
    return run_dir.path / f"{SAMPLES_PREFIX}{name}.jsonl", run_dir.path / f"{FAILURES_PREFIX}{name}.jsonl"


def process_block(generator: SampleGenerator, run_dir: RunDir, tasks: Sequence[Task],
                  progress: Callable[[int], None] | None = None) -> tuple[str, Summary]:
    """Generate, judge and journal one block of tasks in its own shards; returns the block's name and
    its counts (what an earlier, interrupted attempt at the same block journaled included)."""
    name = block_name(t.id for t in tasks)
    samples_path, failures_path = block_paths(run_dir, name)
    summary = Summary(mode=generator.mode)
    before = list(read_jsonl(samples_path))
    done = {r["id"] for r in before} | {r["id"] for r in read_jsonl(failures_path)}
    generator.remember(_samples(before))  # an earlier attempt's samples count for near-duplicate checks too
    summary.valid, summary.failed = len(before), len(done) - len({r["id"] for r in before})
    with Journal(samples_path) as samples, Journal(failures_path) as failures:
        generator.generate_tasks((t for t in tasks if t.id not in done), samples, failures, summary, progress)
    return name, summary


def _samples(records: Iterable[dict[str, Any]]) -> Iterable[Sample]:
    for record in records:
        try:
            yield Sample.from_json(record)
        except RecordError:
            continue


def summary_row(name: str, summary: Summary) -> dict[str, Any]:
    """One block's counts as a flat row (the result a Ray worker hands back)."""
    row: dict[str, Any] = {"block": name, "mode": summary.mode, "error_type": "", "error": ""}
    row.update({k: int(getattr(summary, k)) for k in COUNTS})
    row["judge_seconds"] = float(summary.judge_seconds)
    row["rejections"] = json.dumps(dict(summary.rejections))
    row["failures"] = json.dumps(dict(summary.failures))
    row["judge_scores"] = json.dumps({str(k): v for k, v in summary.judge_scores.items()})
    return row


def add_row(total: Summary, row: dict[str, Any]) -> None:
    for key in COUNTS:
        setattr(total, key, getattr(total, key) + int(row[key]))
    total.judge_seconds += float(row.get("judge_seconds") or 0.0)
    total.rejections.update(json.loads(row["rejections"]))
    total.failures.update(json.loads(row["failures"]))
    total.judge_scores.update({int(k): v for k, v in json.loads(row.get("judge_scores") or "{}").items()})
    total.mode = total.mode or str(row["mode"])


def merge_failure_shards(run_dir: RunDir) -> int:
    """Fold every failures-ray-*.jsonl into failures.jsonl (ids not there yet) and delete the shards.
    Safe to repeat: a crash between the append and the deletes only leaves ids that the next merge
    finds already present."""
    shards = sorted(run_dir.path.glob(f"{FAILURES_PREFIX}*.jsonl"))
    if not shards:
        return 0
    have = {Failure.from_json(r).id for r in read_jsonl(run_dir.failures)}
    fresh = []
    for shard in shards:
        for record in read_jsonl(shard, strict_middle=False):
            failure = Failure.from_json(record)
            if failure.id not in have:
                have.add(failure.id)
                fresh.append(failure.to_json())
    with Journal(run_dir.failures) as journal:
        journal.write_batch(fresh)
    for shard in shards:
        shard.unlink()
    return len(fresh)
