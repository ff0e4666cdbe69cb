"""A synthetic run dir with the exact on-disk contract of a real run, without an engine (test support;
the package never imports it).

Used by the build benchmark (scripts/bench_build.py: millions of rows in seconds) and by tests that
need a run dir of a given shape. Records are `Sample`s (records.py); contents are filler text of a
chosen length, so row size (and with it shard count and memory) can be set independently of row count.
Tests of what the generator writes use the generated run dir of `generated_run.py` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from topictree_hf.config import SMOLLM2, Config
from topictree_hf.journal import Journal
from topictree_hf.records import Sample, sample_id
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree, node_id, synthetic_tree

FILLER = ("The topic is examined through its causes, its main actors and its lasting consequences, "
          "with dates, places and sources that a student can check. ")


__all__ = ["append_records", "make_synthetic_run", "synthetic_record", "synthetic_records", "synthetic_tree"]


def synthetic_record(path: list[str], index: int, seed: int, content_chars: int, fmt: str = "qa",
                     leaf_id: str = "") -> dict[str, Any]:
    """One journal line, as `Sample.to_json()` writes it (ids by the generator's own recipe)."""
    answer = (FILLER * (content_chars // len(FILLER) + 1))[:content_chars]
    leaf_id = leaf_id or node_id(path)
    return Sample(
        id=sample_id(seed, leaf_id, fmt, index), topic_path=list(path), leaf_id=leaf_id, leaf=path[-1],
        depth=len(path) - 1, format=fmt,
        messages=[{"role": "user", "content": f"Question {index} about {path[-1]}?"},
                  {"role": "assistant", "content": answer}],
        model=SMOLLM2, backend="transformers", mode="json", template=fmt, angle="causes",
        temperature=0.7, top_p=0.95, seed=seed + index, finish_reason="stop", prompt_tokens=120,
        output_tokens=content_chars // 4, attempt=0,
    ).to_json()


def synthetic_records(tree: TopicTree, samples_per_leaf: int, seed: int, content_chars: int,
                      formats: tuple[str, ...] = ("qa",)) -> Iterator[dict[str, Any]]:
    for leaf in tree.leaves():
        path = tree.path(leaf.id)
        for index in range(samples_per_leaf):
            yield synthetic_record(path, index, seed, content_chars, formats[index % len(formats)], leaf.id)


def make_synthetic_run(path: Path, *, root: str = "Historical Events", depth: int = 2, degree: int = 3,
                       samples_per_leaf: int = 2, content_chars: int = 400, seed: int = 42,
                       shards: int = 1, config: Config | None = None, batch: int = 10_000) -> RunDir:
    """Write a complete run dir (manifest, config.yaml, topic_tree.json, samples, summary);
    `config` wins over `root` when given."""
    run = RunDir(Path(path))
    config = config or Config.model_validate({"root": root, "engine": {"backend": "transformers", "model": SMOLLM2}})
    run.prepare(config)
    tree = synthetic_tree(config.root, depth, degree)
    tree.save(run.tree_file)
    journals = [Journal(run.sample_shard(i)) for i in range(shards)]
    buffer: list[dict[str, Any]] = []
    total = 0
    try:
        for record in synthetic_records(tree, samples_per_leaf, seed, content_chars,
                                        tuple(config.generation.formats)):
            buffer.append(record)
            if len(buffer) >= batch:
                journals[(total // batch) % shards].write_batch(buffer)
                total, buffer = total + len(buffer), []
        journals[(total // batch) % shards].write_batch(buffer)
        total += len(buffer)
    finally:
        for journal in journals:
            journal.close()
    run.write_summary({"samples": total, "failures": 0, "leaves": len(tree.leaves())})
    return run


def append_records(run: RunDir, records: list[dict[str, Any]], shard: int = 0) -> None:
    """Append raw records (valid or not) to a sample journal, for tests of bad input."""
    with run.sample_shard(shard).open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
