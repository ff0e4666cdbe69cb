"""`topictree baseline`: an arm of the diversity ablation, for comparison with `topictree eval
--baseline`: the same model, sampling, formats, number of samples and de-duplication as `topictree
run`; only the contexts (root alone, a flat list, the tree) and the per-sample angles differ.

  naive          the root alone, one fixed angle (what repeating one prompt gives; the default)
  naive+angles   the root alone, a different angle per sample
  flat           one level of as many subtopics as the tree has leaves, angles on
  tree           the tree's paths, one fixed angle
  tree+angles    the tree's paths, angles on (what `topictree run` does)"""

from __future__ import annotations

import argparse
from pathlib import Path

from topictree_hf import pipeline
from topictree_hf.cli.common import CliWatcher, config_from_args, say
from topictree_hf.cli.parser import (
    Formatter,
    add_common_flags,
    add_config_arg,
    add_runner_flags,
    positive_int,
    runner_of,
)
from topictree_hf.rundir import RunDir

FLAGS = ["--root", "--depth", "--degree", "--samples", "--format", "--temperature", "--backend", "--model",
         "--base-url", "--batch-size", "--seed"]
EXAMPLE = """examples:
  topictree run config.yaml && topictree baseline config.yaml --out runs/naive
  topictree eval runs/historical-events/dataset --baseline runs/naive
  topictree baseline config.yaml --variant tree --tree runs/historical-events/topic_tree.json --out runs/tree-fixed
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="an ablation arm (default: naive, root topic only) to compare with",
                       epilog=EXAMPLE, formatter_class=Formatter,
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_config_arg(p)
    add_common_flags(p, FLAGS)
    add_runner_flags(p)
    p.add_argument("--out", required=True, metavar="DIR2", help="run dir for the baseline samples")
    p.add_argument("--variant", default="naive", metavar="V",
                   help=f"the arm: {', '.join(pipeline.VARIANTS)} (default naive)")
    p.add_argument("--flat-size", type=positive_int, metavar="N",
                   help="subtopics of the flat arm (default degree ** depth, the leaves of a full tree)")
    p.add_argument("--tree", type=Path, metavar="FILE",
                   help="tree arms: use this tree (e.g. RUN_DIR/topic_tree.json of `topictree run`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config = config.model_copy(update={"output": config.output.model_copy(update={"run_dir": Path(args.out)})})
    run_dir = RunDir(Path(args.out))
    pipeline.run_baseline(config, run_dir, runner_of(args), CliWatcher(config.shape_note),
                          force=args.force,
                          variant=args.variant, flat_size=args.flat_size, tree_file=args.tree)
    say(f"{args.variant} samples in {run_dir.path}; compare: topictree eval DATASET --baseline {run_dir.path}")
    return 0
