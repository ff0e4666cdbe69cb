"""External merge sort of rows by id, in bounded memory.

Rows must come out sorted by id (stable shard contents, diff-able rebuilds) and de-duplicated, for
runs of millions of samples. Holding them all, or even a set of every id, grows with the run; so
rows are buffered up to a byte budget, sorted, spilled to a run file per split, and the runs are
merged lazily with `heapq.merge`. Memory is the budget plus one line per open run.

A run file line is `json(key) TAB payload`: JSON escapes tabs and newlines inside strings, so the
first tab ends the key and every record is exactly one line.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

MAX_FANIN = 64  # runs merged at once; more are merged in rounds to bound open files


class RunSpiller:
    """Collects (split, key, payload) and writes sorted run files once `budget_bytes` is reached."""

    def __init__(self, folder: Path, budget_bytes: int = 64 * 2**20) -> None:
        self.folder = folder
        self.budget = budget_bytes
        self.runs: dict[str, list[Path]] = {}
        self._buffer: list[tuple[str, str, bytes]] = []
        self._size = 0
        self._count = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, split: str, key: str, payload: bytes) -> None:
        self._buffer.append((split, key, payload))
        self._size += len(payload) + len(key) + 64
        if self._size >= self.budget:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        # Python's sort is stable: equal keys keep their arrival order, so "first record wins"
        # survives the sort, and heapq.merge breaks ties by run order (earlier runs first).
        self._buffer.sort(key=lambda item: (item[0], item[1]))
        handles: dict[str, BinaryIO] = {}
        try:
            for split, key, payload in self._buffer:
                fh = handles.get(split)
                if fh is None:
                    path = self.folder / f"run-{self._count:05d}-{split}.tsv"
                    fh = handles[split] = path.open("wb")
                    self.runs.setdefault(split, []).append(path)
                fh.write(json.dumps(key).encode() + b"\t" + payload + b"\n")
        finally:
            for fh in handles.values():
                fh.close()
        self._count += 1
        self._buffer, self._size = [], 0


def read_run(path: Path) -> Iterator[tuple[str, bytes]]:
    """(key, payload) of one run file, in its order; the file is kept."""
    with path.open("rb", buffering=1 << 20) as fh:
        for line in fh:
            key, _, payload = line.rstrip(b"\n").partition(b"\t")
            yield json.loads(key), payload


def _merge(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    return heapq.merge(*(read_run(p) for p in paths), key=lambda item: item[0])


def _reduce_fanin(paths: list[Path]) -> list[Path]:
    """Merge runs in groups of MAX_FANIN until few enough remain to merge at once."""
    round_no = 0
    while len(paths) > MAX_FANIN:
        merged = []
        for start in range(0, len(paths), MAX_FANIN):
            group = paths[start:start + MAX_FANIN]
            out = group[0].with_name(f"merge{round_no}-{start:06d}-{group[0].name}")
            with out.open("wb") as fh:
                for key, payload in _merge(group):
                    fh.write(json.dumps(key).encode() + b"\t" + payload + b"\n")
            for path in group:
                path.unlink()
            merged.append(out)
        paths, round_no = merged, round_no + 1
    return paths


def merge_unique(paths: Iterable[Path], duplicates: list[int] | None = None) -> Iterator[bytes]:
    """Payloads of all runs in key order, the first of each key only; deletes the runs when done.
    `duplicates[0]` is incremented per dropped repeat (a list so the caller sees the count)."""
    paths = _reduce_fanin(list(paths))
    previous: str | None = None
    try:
        for key, payload in _merge(paths):
            if key == previous:
                if duplicates is not None:
                    duplicates[0] += 1
                continue
            previous = key
            yield payload
    finally:
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass
