"""`topictree eval DIR [--baseline DIR2] [--json FILE]`: diversity and quality of a sample set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from topictree_hf import pipeline
from topictree_hf.cli.parser import Formatter, int_at_least
from topictree_hf.eval.report import EvalSettings

EXAMPLE = """examples:
  topictree eval runs/historical-events
  topictree eval runs/historical-events/dataset --baseline runs/historical-events-baseline --json eval.json
"""


_count = int_at_least(0, " (0 means all samples)")


def register(sub: argparse._SubParsersAction) -> None:
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
    settings = EvalSettings(turns=args.turns, embed_sample=args.embed_sample)
    measured = pipeline.compare(args.dir, args.baseline, settings=settings, equal_n=not args.unequal,
                                card=not args.no_card, progress=True)
    print(measured.table())
    print()
    print(measured.notes())
    if args.json:
        measured.write_json(Path(args.json))
        print(f"wrote {args.json}")
    if measured.write_card():
        print(f"wrote the table into the diversity section of {measured.card}")
    elif measured.card is not None:
        print(f"note: {measured.target.path} has no README.md card; the table was not written into one",
              file=sys.stderr)
    return 0
