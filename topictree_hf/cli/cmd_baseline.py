"""`topictree baseline`: the naive approach, for comparison with `topictree eval --baseline`: the
same model, sampling, formats and number of samples, but every prompt carries only the root topic,
one fixed angle, and no de-duplication (what repeating one prompt gives)."""

from __future__ import annotations

import argparse
from pathlib import Path

from topictree_hf import pipeline
from topictree_hf.cli.common import CliWatcher, config_from_args, engine_for, say
from topictree_hf.cli.parser import add_common_flags, add_config_arg
from topictree_hf.rundir import RunDir

FLAGS = ["--root", "--samples", "--format", "--temperature", "--backend", "--model", "--base-url", "--batch-size",
         "--seed"]
EXAMPLE = """example:
  topictree run config.yaml && topictree baseline config.yaml --out runs/naive
  topictree eval runs/historical-events/dataset --baseline runs/naive
"""


def register(sub: argparse._SubParsersAction) -> None:
    from topictree_hf.cli.commands import Formatter

    p = sub.add_parser("baseline", help="naive samples (root topic only) to compare with", epilog=EXAMPLE,
                       formatter_class=Formatter, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_config_arg(p)
    add_common_flags(p, FLAGS)
    p.add_argument("--out", required=True, metavar="DIR2", help="run dir for the baseline samples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config = config.model_copy(update={"output": config.output.model_copy(update={"run_dir": Path(args.out)})})
    run_dir = RunDir(Path(args.out))
    pipeline.run_baseline(config, run_dir, lambda: engine_for(config), CliWatcher(), force=args.force)
    say(f"baseline samples in {run_dir.path}; compare: topictree eval DATASET --baseline {run_dir.path}")
    return 0
