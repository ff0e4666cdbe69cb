"""Counts gathered while rows stream through the builder, for the card.

Every row is counted where it is kept (per split, per depth-1 branch, per format, per template) and
every record that is not kept is counted with its reason, so the card accounts for the whole run.
Memory is bounded by the number of distinct branches/formats/templates, not by the row count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SplitStats:
    rows: int = 0
    branches: Counter[str] = field(default_factory=Counter)
    example: dict[str, Any] | None = None


@dataclass
class BuildStats:
    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    unknown_groups: int = 0
    splits: dict[str, SplitStats] = field(default_factory=dict)
    formats: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)

    def add(self, split: str, row: dict[str, Any]) -> None:
        """Count one kept row; the first row of a split (smallest id) becomes its example."""
        stats = self.splits.get(split)
        if stats is None:
            stats = self.splits[split] = SplitStats()
        if stats.example is None:
            stats.example = row
        stats.rows += 1
        path = row["topic_path"]
        stats.branches[path[1] if len(path) > 1 else path[0]] += 1
        self.formats[row["format"]] += 1
        self.templates[row.get("template") or row["format"]] += 1
        self.models[row.get("model") or "unknown"] += 1
        self.backends[row.get("backend") or "unknown"] += 1
        self.modes[row.get("mode") or "unknown"] += 1

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.splits.values())

    def branch_table(self) -> list[dict[str, Any]]:
        """One entry per depth-1 branch with its count in each split, biggest first."""
        names = Counter[str]()
        for stats in self.splits.values():
            names.update(stats.branches)
        return [{"branch": name, "total": total,
                 **{split: stats.branches.get(name, 0) for split, stats in self.splits.items()}}
                for name, total in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))]

    def example(self) -> dict[str, Any] | None:
        for split in ("train", *self.splits):
            stats = self.splits.get(split)
            if stats is not None and stats.example is not None:
                return stats.example
        return None
