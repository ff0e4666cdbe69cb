"""The `datasets` builder that turns a run dir into rows (the shape of datasets' `generator.py`).

datasets >= 4 no longer loads builder scripts, so this builder is imported from the installed
package and instantiated by `layout.build_dataset`, which then writes the Hub layout that
`load_dataset(folder)` and `load_dataset("user/repo")` read. It can also be used on its own:

    builder = TopicTreeBuilder(run_dir="runs/x", cache_dir="/tmp/cache")
    builder.download_and_prepare()
    ds = builder.as_dataset()

`_split_generators` reads every journal once: it converts records to rows, assigns each to a split
by its topic group, and spills rows sorted by id to run files (bounded memory). It then reads the
run files once more to embed every row and find its nearest neighbour in the whole dataset
(neighbours.py; `neighbours=False` skips this and leaves the two columns null). Each split's
`_generate_examples` then merges its runs, drops repeated ids (first journaled record wins, as in
`RunDir.iter_samples`), adds `nn_similarity` and `repeat_count`, and yields rows in id order with
keys `Key(0, row_index)`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets.builder import Key

from topictree_hf import faults
from topictree_hf.dataset.extsort import RunSpiller, merge_unique, read_run
from topictree_hf.dataset.features import FEATURES, PreEncodedFeatures
from topictree_hf.dataset.neighbours import EMPTY, Neighbours, find_neighbours
from topictree_hf.dataset.source import load_run
from topictree_hf.dataset.split import SplitPlan
from topictree_hf.dataset.stats import BuildStats
from topictree_hf.errors import RunDirError
from topictree_hf.journal import read_jsonl
from topictree_hf.progress import progress_bar
from topictree_hf.records import RecordError, Sample, turns_text
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import node_id

DEFAULT_SPILL_BYTES = 64 * 2**20


@dataclass
class TopicTreeBuilderConfig(datasets.BuilderConfig):
    """`run_dir` to read; `work_dir` for the sorted spill files (default: the system temp dir);
    `spill_bytes` is the in-memory sort buffer, the main bound on the builder's memory (with
    `neighbours`, the vectors add 1.5 KB per row); `neighbours`: fill `nn_similarity` and
    `repeat_count` (embeds every row)."""

    run_dir: str | None = None
    work_dir: str | None = None
    spill_bytes: int = DEFAULT_SPILL_BYTES
    neighbours: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.run_dir:
            raise ValueError("run_dir must be specified")
        self.run_dir = str(self.run_dir)
        if self.spill_bytes < 1:
            raise ValueError("spill_bytes must be positive")


class TopicTreeBuilder(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = TopicTreeBuilderConfig
    config: TopicTreeBuilderConfig

    def __init__(self, *args: Any, embedder: Any = None, **kwargs: Any) -> None:
        """`embedder`: what embeds the rows for the neighbour columns (default: the bundled MiniLM)."""
        kwargs.setdefault("dataset_name", "topictree")
        super().__init__(*args, **kwargs)
        self.stats = BuildStats()
        self.plan: SplitPlan | None = None
        self.embedder = embedder
        self.neighbours: Neighbours | None = None

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Synthetic samples generated per root-to-leaf path of a topic tree (topictree-hf).",
            features=PreEncodedFeatures(FEATURES),
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        source = load_run(self.config.run_dir or "")
        self.plan = SplitPlan.from_tree(source.tree, source.config.output.split)
        self.stats = BuildStats()
        if self.config.work_dir:
            Path(self.config.work_dir).mkdir(parents=True, exist_ok=True)
        spill_dir = Path(tempfile.mkdtemp(prefix="topictree-sort-", dir=self.config.work_dir))
        spiller = RunSpiller(spill_dir, self.config.spill_bytes)
        leaves = frozenset(leaf.id for leaf in source.tree.leaves())
        scan_samples(source.run, self.plan, spiller, self.stats, leaves)
        if not spiller.runs:
            os.rmdir(spill_dir)
            raise _no_rows_error(source.run, self.stats)
        self.neighbours = None
        if self.config.neighbours:
            total = self.stats.read - self.stats.dropped.total()
            self.neighbours = find_neighbours(spilled_texts(spiller.runs), self.embedder, total)
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split, "spill_dir": str(spill_dir)})
                for split in self.plan.splits if spiller.runs.get(split)]

    def _generate_examples(self, split: str, spill_dir: str) -> Iterator[tuple[Key, dict[str, Any]]]:
        runs = sorted(Path(spill_dir).glob(f"run-*-{split}.tsv"))
        duplicates = [0]
        try:
            for index, payload in enumerate(merge_unique(runs, duplicates)):
                row = json.loads(payload)
                row.update(self.neighbours.columns(split, row["id"]) if self.neighbours else EMPTY)
                self.stats.add(split, row)
                faults.crash_point("build.rows")
                yield Key(0, index), row
        finally:
            self.stats.duplicates += duplicates[0]
            _remove_if_empty(Path(spill_dir))


def scan_samples(run: RunDir, plan: SplitPlan, spiller: RunSpiller, stats: BuildStats,
                 leaves: frozenset[str]) -> None:
    """One pass over the journals (not `iter_samples`, whose set of seen ids grows with the run):
    every record becomes a row or a counted drop reason; rows go to the spiller keyed by id.
    Rows whose path is not a leaf of the tree are kept (as their own group) and counted for the card."""
    with progress_bar(None, "reading samples", unit="rows") as bar:
        for shard in run.sample_shards():
            for record in read_jsonl(shard):
                stats.read += 1
                try:
                    row = Sample.from_json(record).to_row()
                except RecordError as exc:
                    stats.dropped[str(exc)] += 1
                    continue
                if node_id(row["topic_path"]) not in leaves:
                    stats.unknown_groups += 1
                payload = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                spiller.add(plan.split_of(row["topic_path"]), row["id"], payload)
                if stats.read % 1000 == 0:
                    bar.update(1000)
    spiller.flush()


def spilled_texts(runs: dict[str, list[Path]]) -> Iterator[tuple[str, str, str]]:
    """(split, id, text) of every spilled row, each split's runs in the order `merge_unique` reads
    them, so the first of a repeated id is the row that is kept."""
    for split, paths in runs.items():
        for path in sorted(paths):
            for key, payload in read_run(path):
                yield split, key, turns_text(json.loads(payload)["messages"])


def _no_rows_error(run: RunDir, stats: BuildStats) -> RunDirError:
    """Why a run dir gives no rows, and what to do: its records are unusable, every sample failed
    (a model whose output never fits the format: everything is kept in failures.jsonl), or none exist."""
    if stats.dropped:
        reasons = ", ".join(f"{n} {r}" for r, n in stats.dropped.most_common(3))
        return RunDirError(f"run dir {run.path} has no usable samples ({reasons}); "
                           "generate samples first with `topictree run`")
    failed = Counter(f.reason for f in run.iter_failures())
    if failed:
        reasons = ", ".join(f"{r} {n}" for r, n in failed.most_common(3))
        return RunDirError(f"no valid samples: all {failed.total()} failed after retries ({reasons}; details in "
                           f"{run.failures}); the model's output never fit the format: try a stronger --model "
                           "or a higher generation.max_tokens, in a new --run-dir")
    return RunDirError(f"run dir {run.path} has no samples; generate them first with `topictree generate` "
                       "(same config and --run-dir)")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # another split's runs are still there; the last split removes the folder
