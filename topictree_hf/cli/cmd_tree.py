"""`topictree tree` (build the tree only) and `topictree show FILE` (print a tree)."""

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
from topictree_hf.tree.io import export_paths, load_any
from topictree_hf.tree.render import render_text

TREE_FLAGS = ["--root", "--depth", "--degree", "--temperature", "--backend", "--model", "--base-url",
              "--batch-size", "--seed", "--run-dir"]
TREE_EXAMPLE = """examples:
  topictree tree --root "Historical Events" --depth 3 --degree 4
  topictree tree config.yaml --run-dir runs/history
  topictree tree --root "Historical Events" --import my_outline.yaml   # bring your own tree
  topictree tree config.yaml --export paths.jsonl                     # DeepFabric/promptwright paths
"""
SHOW_EXAMPLE = """examples:
  topictree show runs/historical-events/topic_tree.json --depth 2
  topictree show paths.jsonl
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tree", help="build the topic tree only (RUN_DIR/topic_tree.json)", epilog=TREE_EXAMPLE,
                       formatter_class=Formatter, description="Expand the root level by level into a topic tree.")
    add_config_arg(p)
    add_common_flags(p, TREE_FLAGS)
    add_runner_flags(p)
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="use this tree instead of generating one: topic_tree.json, {\"path\": [...]} JSONL, "
                        "or a YAML/JSON outline")
    p.add_argument("--export", metavar="FILE", help="also write the leaf paths as {\"path\": [...]} JSONL")
    p.set_defaults(func=run_tree)

    s = sub.add_parser("show", help="print a tree in the terminal", epilog=SHOW_EXAMPLE, formatter_class=Formatter,
                       description="Print a topic tree (topic_tree.json, paths JSONL or outline).")
    s.add_argument("file", help="topic_tree.json, paths .jsonl, or outline .yaml/.json")
    s.add_argument("--depth", type=positive_int, default=None, metavar="N", help="show N levels")
    s.set_defaults(func=run_show)


def run_tree(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    run_dir = RunDir(config.run_dir)
    import_file = Path(args.import_file) if args.import_file else None
    tree = pipeline.run_tree(config, run_dir, runner_of(args), CliWatcher(config.shape_note), force=args.force,
                             import_file=import_file)
    if args.export:
        n = export_paths(tree, Path(args.export))
        say(f"wrote {n} paths to {args.export}")
    print(run_dir.tree_file)
    return 0


def run_show(args: argparse.Namespace) -> int:
    tree = load_any(Path(args.file))
    print(render_text(tree, args.depth))
    return 0
