"""Read the samples to evaluate from a run dir or a built dataset folder.

    run dir:         samples-*.jsonl (+ failures.jsonl, topic_tree.json)   -> see rundir.py
    dataset folder:  data/{split}-NNNNN-of-NNNNN.parquet (+ README.md, topic_tree.json)

Both give the same records: `Sample.from_json` of each journal line or row, handed to `evaluate`
as `to_json()` dicts (`id`, `topic_path`, `messages`, ...); a line that is not a sample is skipped.
Every split of a dataset folder is read: the set is judged as a whole. A run dir also gives the
failure count for the valid rate: failures.jsonl records whose id never made it into a sample
journal, leaving out samples the dedup stage dropped (valid, only not new). A dataset folder holds
valid samples only, so its valid rate is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from topictree_hf.errors import InputFileError
from topictree_hf.eval.text import messages_of
from topictree_hf.records import DEDUP_REASONS, RecordError, Sample
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

COLUMNS = ("id", "topic_path", "leaf", "depth", "format", "messages")
TREE_FILE = "topic_tree.json"
CARD_FILE = "README.md"


@dataclass
class EvalSource:
    path: Path
    kind: Literal["run", "dataset"]
    records: list[dict[str, Any]]
    tree_leaves: list[tuple[str, ...]] | None = None
    failures: int | None = None

    @property
    def card(self) -> Path | None:
        return self.path / CARD_FILE if self.kind == "dataset" else None


def read_source(path: str | Path) -> EvalSource:
    """The samples, tree leaves and failure count of a run dir or a dataset folder."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise InputFileError(f"{path} {what}; pass a run dir (samples-*.jsonl) or a dataset folder (data/*.parquet)")
    if sorted((path / "data").glob("*.parquet")):
        source = EvalSource(path, "dataset", read_dataset_records(path))
    elif RunDir(path).sample_shards():
        source = read_run_dir(path)
    else:
        raise InputFileError(f"{path} is neither a run dir (samples-*.jsonl) nor a dataset folder "
                             "(data/*.parquet); pass the folder that `topictree run` or `topictree build` wrote")
    if not source.records:
        raise InputFileError(f"{path} holds no samples; generate some with `topictree run` first")
    source.tree_leaves = read_tree_leaves(path / TREE_FILE)
    return source


def read_run_dir(path: Path) -> EvalSource:
    run = RunDir(path)
    records = [s.to_json() for s in run.iter_samples()]
    ids = {r["id"] for r in records}
    failed = {f.id or f"#{n}" for n, f in enumerate(run.iter_failures()) if f.reason not in DEDUP_REASONS}
    return EvalSource(path, "run", records, failures=len(failed - ids))


def read_dataset_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for file in sorted((path / "data").glob("*.parquet")):
        records.extend(_read_parquet(file))
    return records


def _read_parquet(file: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    unreadable = f"{file} is not a readable parquet file; rebuild the dataset folder with `topictree build`"
    try:
        parquet = pq.ParquetFile(file)
    except (OSError, ValueError):
        raise InputFileError(unreadable) from None
    columns = [c for c in COLUMNS if c in parquet.schema_arrow.names]
    if "messages" not in columns or "topic_path" not in columns:
        raise InputFileError(f"{file} has no messages/topic_path columns, so `topictree build` did not write "
                             "it; rebuild the dataset folder")
    try:
        rows = parquet.read(columns=columns).to_pylist()
    except (OSError, ValueError):
        raise InputFileError(unreadable) from None
    return [sample.to_json() for sample in _samples(rows)]


def _samples(rows: list[dict[str, Any]]) -> list[Sample]:
    """The rows that are samples; `messages` stored as JSON text (datasets' `Json()` feature) is decoded."""
    out = []
    for row in rows:
        if isinstance(row.get("messages"), str):
            row["messages"] = messages_of(row)
        try:
            out.append(Sample.from_json(row))
        except RecordError:
            continue
    return out


def read_tree_leaves(path: Path) -> list[tuple[str, ...]] | None:
    """Root-to-leaf paths of the tree file beside the samples, or None when there is none."""
    if not path.is_file():
        return None
    return [tuple(p) for p in TopicTree.load(path).leaf_paths()]
