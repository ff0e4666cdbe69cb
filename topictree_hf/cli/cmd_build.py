"""`topictree build RUN_DIR [--out DIR] [--overwrite]`: package a run dir as a dataset folder."""

from __future__ import annotations

import argparse
import sys

from topictree_hf import pipeline
from topictree_hf.cli.common import say
from topictree_hf.cli.parser import Formatter

EXAMPLE = """examples:
  topictree build runs/historical-events                    # writes runs/historical-events/dataset
  topictree build runs/historical-events --out history-qa --overwrite
  python -c "import datasets; print(datasets.load_dataset('history-qa'))"
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="package a run dir as a Hugging Face dataset folder", epilog=EXAMPLE,
                       formatter_class=Formatter,
                       description="Write README.md (card), data/*.parquet (train/test split by topic), "
                       "topic_tree.json, generation.yaml and assets/ into a folder that load_dataset "
                       "reads and `topictree push` uploads.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run dir `topictree run` wrote (runs/<name>)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="dataset folder (default: output.dataset_dir of the run's config, else RUN_DIR/dataset)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--no-neighbours", action="store_true",
                   help="leave nn_similarity and repeat_count empty (they embed every row: minutes per "
                   "10k rows on CPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = pipeline.build_stage(args.run_dir, args.out, overwrite=args.overwrite, neighbours=not args.no_neighbours)
    say(result.describe())
    for reason, count in result.stats.dropped.most_common():
        say(f"  dropped {count} record(s): {reason}")
    print(result.out)
    sys.stdout.flush()
    return 0
