"""A block of sample tasks, journaled on its own: what a distributed worker does with its share.

Each block writes `samples-ray-<block>.jsonl` and `failures-ray-<block>.jsonl` in the run dir, where
`<block>` is a hash of the task ids in it. A block that is run again (its worker died, Ray retried
it elsewhere) therefore reopens the same two files, skips the ids already there and finishes the
rest: nothing is generated twice. Sample ids are stable (seed, leaf, format, index), the run dir
reader keeps the first record per id, and a rerun skips every id already in any shard (RunDir reads
samples-*.jsonl and failures-*.jsonl shards as journals of the run).

The runner folds the per-block failure shards into failures.jsonl (`merge_failure_shards`) after a
distributed run, so a finished run dir has one failure journal. Every journal is read with the run
dir's one reader (`rundir.journal_lines`: first line per id, a line without an id skipped). A block's
counts travel to the driver as `Summary.to_dict()` and are merged there (`Summary.merge`), as a local
run merges its stream's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from topictree_hf.generation.allocate import Task
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.generation.summary import Summary
from topictree_hf.journal import Journal
from topictree_hf.records import Failure
from topictree_hf.rundir import Journaled, RunDir, journal_lines, read_samples

SAMPLES_PREFIX = "samples-ray-"
FAILURES_PREFIX = "failures-ray-"


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
    before = Journaled.of([samples_path], [failures_path])
    generator.remember(read_samples([samples_path]))  # an earlier attempt's samples count for near-duplicate checks too
    summary = Summary(mode=generator.mode, valid=len(before.kept), failed=len(before.failed))
    done = before.ids
    with Journal(samples_path) as samples, Journal(failures_path) as failures:
        summary.merge(generator.generate_tasks((t for t in tasks if t.id not in done), samples, failures, progress))
    return name, summary


def block_records(run_dir: RunDir, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The journal lines of block `name` (samples, failures), once per id: what a worker that does
    not share the driver's run dir sends back (runners/ray_disk.py)."""
    samples_path, failures_path = block_paths(run_dir, name)
    return [r for _, r in journal_lines([samples_path])], [r for _, r in journal_lines([failures_path])]


def drop_block(run_dir: RunDir, name: str) -> None:
    for path in block_paths(run_dir, name):
        path.unlink(missing_ok=True)


def receive_block(run_dir: RunDir, name: str, samples: Sequence[dict[str, Any]],
                  failures: Sequence[dict[str, Any]]) -> int:
    """Journal a block's records sent by a worker into the run dir's shards of that block, each id
    once (a block sent again after a retry adds nothing); returns the lines written."""
    written = 0
    for path, records in zip(block_paths(run_dir, name), (samples, failures), strict=True):
        have = {sid for sid, _ in journal_lines([path])}
        fresh = [r for r in records if r.get("id") not in have]
        if fresh:
            with Journal(path) as journal:
                written += journal.write_batch(fresh)
    return written


def merge_failure_shards(run_dir: RunDir) -> int:
    """Fold every failures-ray-*.jsonl into failures.jsonl (ids not there yet) and delete the shards.
    Safe to repeat: a crash between the append and the deletes only leaves ids that the next merge
    finds already present."""
    shards = sorted(run_dir.path.glob(f"{FAILURES_PREFIX}*.jsonl"))
    if not shards:
        return 0
    have = {sid for sid, _ in journal_lines([run_dir.failures])}
    fresh = [Failure.from_json(record).to_json() for sid, record in journal_lines(shards) if sid not in have]
    with Journal(run_dir.failures) as journal:
        journal.write_batch(fresh)
    for shard in shards:
        shard.unlink()
    return len(fresh)
