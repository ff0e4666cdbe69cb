"""`compare(dir, baseline=None)`: a sample set measured, alone or next to a baseline at equal N, and
the table for the dataset card's Diversity section. `topictree eval` and the closing evaluation of
`topictree run` (pipeline.eval_stage) both go through here.

The equal-N rule: duplicate rates, distinct-n, self-BLEU and Vendi all grow with the number of
samples, so with a baseline the larger set is cut to the smaller one's count by the seeded pick of
`equal_size` (unless `equal_n=False`), and the result says from how many (`equal_n`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topictree_hf.errors import InputFileError
from topictree_hf.eval.readers import EvalSource, read_source
from topictree_hf.eval.report import EvalSettings, evaluate
from topictree_hf.eval.table import card_body, check_card_section, full_table, table_notes, write_card_section
from topictree_hf.eval.text import equal_size

Records = list[dict[str, Any]]
DEFAULT_NAMES = ("this set", "baseline")


@dataclass
class Comparison:
    """What `compare` measured: the set (and the baseline), their figures, the column names, and the
    dataset card to write the table into (None for a run dir, or when the card is left alone)."""

    target: EvalSource
    result: dict[str, Any]
    baseline: EvalSource | None = None
    baseline_result: dict[str, Any] | None = None
    names: tuple[str, str] = DEFAULT_NAMES
    card: Path | None = None

    def table(self) -> str:
        return full_table(self.result, self.baseline_result, self.names)

    def notes(self) -> str:
        return table_notes(self.result, self.baseline_result)

    def write_card(self) -> bool:
        """Put the table in the card's Diversity section; False when there is no card file to write."""
        if self.card is None or not self.card.is_file():
            return False
        command = "topictree eval DATASET_DIR" + (" --baseline BASELINE_DIR" if self.baseline else "")
        write_card_section(self.card, card_body(self.result, self.baseline_result, self.names, command))
        return True

    def write_json(self, path: Path) -> None:
        """Every figure of both sets as JSON."""
        base = self.baseline
        data = {"set": {"path": str(self.target.path), "kind": self.target.kind, **self.result},
                "baseline": {"path": str(base.path), "kind": base.kind, **(self.baseline_result or {})}
                if base else None}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputFileError(f"cannot write {path} ({exc.strerror}); pass --json with a writable path") from None


def at_equal_n(sets: Sequence[Records], seed: int = 0) -> tuple[list[Records], int | None]:
    """Every set cut to the smallest one's count (a seeded pick in id order), and the largest count
    when something was cut (None when all were the same size already)."""
    size, largest = min(len(s) for s in sets), max(len(s) for s in sets)
    if largest == size:
        return list(sets), None
    return [equal_size(s, size, seed) for s in sets], largest


def compare(path: Path | str, baseline: Path | str | None = None, *, settings: EvalSettings | None = None,
            equal_n: bool = True, card: bool = True, names: tuple[str, str] | None = None,
            embedder: Any = None, progress: bool = False) -> Comparison:
    """Measure the set at `path` (a run dir or a dataset folder), next to `baseline` when given (at
    equal N unless `equal_n` is False). Every input, and the card section to write into (`card`),
    is checked before the slow part. `names`: the two columns (default: from the folders)."""
    settings = settings or EvalSettings()
    target = read_source(path)
    base = read_source(baseline) if baseline is not None else None
    card_file = target.card if card else None
    if card_file is not None and card_file.is_file():
        check_card_section(card_file)
    sources = [target, base] if base else [target]
    sets, cut_from = [s.records for s in sources], None
    if base is not None and equal_n:
        sets, cut_from = at_equal_n(sets)
    results = [evaluate(r, tree_leaves=s.tree_leaves, failures=s.failures, settings=settings, embedder=embedder,
                        progress=progress) for r, s in zip(sets, sources, strict=True)]
    if cut_from is not None:
        results[0]["equal_n"] = cut_from
    return Comparison(target, results[0], base, results[1] if base else None, names or column_names(target, base),
                      card_file)


def column_names(target: EvalSource, base: EvalSource | None) -> tuple[str, str]:
    """The folders' names ("this set"/"baseline" when they are the same), the baseline's ablation arm added."""
    names = (_name(target.path), _name(base.path) if base else DEFAULT_NAMES[1])
    if names[0] == names[1]:  # runs/a/dataset vs runs/b/dataset
        names = DEFAULT_NAMES
    variant = _variant(base.path) if base is not None else ""
    if variant and variant != f" ({names[1]})":
        names = (names[0], names[1] + variant)
    return names


def _variant(path: Path) -> str:
    """" (naive)" for a run dir made by `topictree baseline --variant naive`, else ""."""
    for folder in (path, path.parent):
        try:
            variant = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("baseline")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(variant, str) and variant:
            return f" ({variant})"
    return ""


def _name(path: Path) -> str:
    return path.resolve().name or str(path)
