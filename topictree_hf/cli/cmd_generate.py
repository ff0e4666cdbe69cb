"""`topictree generate` (samples for an existing tree) and `topictree run` (tree + generate + build)."""

from __future__ import annotations

import argparse

from topictree_hf import pipeline
from topictree_hf.cli.common import CliWatcher, config_from_args, say
from topictree_hf.cli.parser import (
    COMMON_FLAGS,
    Formatter,
    add_common_flags,
    add_config_arg,
    add_runner_flags,
    runner_of,
)
from topictree_hf.rundir import RunDir

GEN_FLAGS = ["--samples", "--plan", "--format", "--temperature", "--backend", "--model", "--base-url", "--batch-size",
             "--seed", "--run-dir"]
RUN_EXAMPLE = """examples:
  topictree run --root "Historical Events" --depth 2 --degree 3 --samples 18
  topictree run config.yaml --backend vllm --model /models/Qwen2.5-7B-Instruct --samples 100000
  topictree run config.yaml --backend openai --base-url http://127.0.0.1:8000/v1
  topictree run config.yaml --backend openai --base-url http://h1:8000/v1,http://h2:8000/v1
  topictree run config.yaml --runner ray --ray-address auto --backend vllm --model /models/M   (docs/scaling.md)
"""
GEN_EXAMPLE = """examples:
  topictree generate config.yaml                 # samples for RUN_DIR/topic_tree.json, resumable
  topictree generate --run-dir runs/history --samples 500 --format qa,chat
"""


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="generate samples for an existing tree", epilog=GEN_EXAMPLE,
                       formatter_class=Formatter, description="Generate samples for RUN_DIR/topic_tree.json; "
                       "a rerun skips finished samples.")
    add_config_arg(g)
    add_common_flags(g, GEN_FLAGS + ["--root"])
    add_runner_flags(g)
    g.set_defaults(func=run_generate)

    r = sub.add_parser("run", help="tree + samples + dataset folder", epilog=RUN_EXAMPLE, formatter_class=Formatter,
                       description="The whole job: build the tree, generate samples, build the dataset folder. "
                       "Every stage resumes from the run dir.")
    add_config_arg(r)
    add_common_flags(r, list(COMMON_FLAGS))
    r.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    r.add_argument("--no-eval", action="store_true",
                   help="skip the closing `topictree eval` (duplicates, diversity, topicality in the card)")
    add_runner_flags(r)
    r.set_defaults(func=run_all)


def run_generate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.shape_note:  # the tree exists already: its shape is the run dir's, not one chosen from the count
        saved = (RunDir(config.run_dir).read_saved_config() or {}).get("tree") or {}
        if isinstance(saved.get("depth"), int) and isinstance(saved.get("degree"), int):
            config = config.with_shape(saved["depth"], saved["degree"])
    pipeline.run_generate(config, RunDir(config.run_dir), runner_of(args), CliWatcher(config.shape_note),
                          force=args.force)
    return 0


def run_all(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = pipeline.run_all(config, RunDir(config.run_dir), runner_of(args), CliWatcher(config.shape_note),
                              force=args.force, overwrite=args.overwrite, evaluate=not args.no_eval)
    say(f"dataset folder: {result.describe()}")
    print(config.dataset_dir)
    return 0
