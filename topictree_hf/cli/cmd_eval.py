"""`topictree eval DIR [--baseline DIR2] [--json FILE]`: diversity and quality of a sample set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from topictree_hf.cli.parser import int_at_least
from topictree_hf.errors import InputFileError

EXAMPLE = """examples:
  topictree eval runs/historical-events
  topictree eval runs/historical-events/dataset --baseline runs/historical-events-baseline --json eval.json
"""


_count = int_at_least(0, " (0 means all samples)")


def register(sub: argparse._SubParsersAction) -> None:
    from topictree_hf.cli.commands import Formatter

    p = sub.add_parser("eval", help="measure the diversity and quality of a run dir or dataset folder",
                       description="Measure duplicates, lexical and semantic diversity, topicality and the\n"
                       "spread over the tree of DIR (a run dir or a dataset folder). On a dataset folder\n"
                       "the table also goes into the card's diversity section.",
                       epilog=EXAMPLE, formatter_class=Formatter)
    p.add_argument("dir", metavar="DIR", help="run dir (samples-*.jsonl) or dataset folder (data/*.parquet)")
    p.add_argument("--baseline", metavar="DIR2", help="a second set to compare with (ratios DIR / DIR2)")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    p.add_argument("--no-card", action="store_true", help="leave a dataset folder's README.md card as it is")
    p.add_argument("--unequal", action="store_true",
                   help="with --baseline: measure every sample of both sets (default: both at the smaller "
                   "set's count, a seeded pick, since duplicate rates and Vendi grow with N)")
    p.add_argument("--embed-sample", type=_count, default=2000, metavar="N",
                   help="samples embedded for the semantic figures (fixed seed; 0 = all; default 2000)")
    p.add_argument("--turns", choices=("all", "assistant"), default="all",
                   help="measure user and assistant turns (default) or assistant turns only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from topictree_hf.eval import EvalSettings, evaluate, read_source
    from topictree_hf.eval.table import card_body, check_card_section, format_table, table_notes, write_card_section
    from topictree_hf.eval.text import equal_size

    settings = EvalSettings(turns=args.turns, embed_sample=args.embed_sample)
    target = read_source(args.dir)  # every input is checked before the slow part
    base = read_source(args.baseline) if args.baseline else None
    card = target.card if target.card is not None and not args.no_card else None
    if card is not None and card.is_file():
        check_card_section(card)
    sets = [target, base] if base else [target]
    size = min(len(s.records) for s in sets)
    cut = base is not None and not args.unequal and max(len(s.records) for s in sets) > size
    results = [evaluate(equal_size(s.records, size) if cut else s.records, tree_leaves=s.tree_leaves,
                        failures=s.failures, settings=settings, progress=True) for s in sets]
    result, baseline = results[0], (results[1] if base else None)
    if cut:
        result["equal_n"] = max(len(s.records) for s in sets)
    names = (_name(target.path), _name(base.path) if base else "baseline")
    if names[0] == names[1]:  # runs/a/dataset vs runs/b/dataset
        names = ("this set", "baseline")
    variant = _variant(base.path) if base is not None else ""
    if variant and variant != f" ({names[1]})":
        names = (names[0], names[1] + variant)
    print(format_table(result, baseline, names))
    print()
    print(table_notes(result, baseline))
    if args.json:
        _write_json(Path(args.json), {"set": {"path": str(target.path), "kind": target.kind, **result},
                                      "baseline": {"path": str(base.path), "kind": base.kind, **results[1]}
                                      if base else None})
        print(f"wrote {args.json}")
    if card is not None and card.is_file():
        command = "topictree eval DATASET_DIR" + (" --baseline BASELINE_DIR" if base else "")
        write_card_section(card, card_body(result, baseline, names, command))
        print(f"wrote the table into the diversity section of {card}")
    elif card is not None:
        print(f"note: {target.path} has no README.md card; the table was not written into one", file=sys.stderr)
    return 0


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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot write {path} ({exc.strerror}); pass --json with a writable path") from None
