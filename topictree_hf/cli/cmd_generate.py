"""`topictree generate` (samples for an existing tree) and `topictree run` (tree + generate + build)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from topictree_hf.cli.common import (
    config_from_args,
    count_bar,
    engine_for,
    level_bar,
    print_generation_summary,
    print_tree_summary,
    say,
)
from topictree_hf.cli.parser import COMMON_FLAGS, add_common_flags, add_config_arg, positive_int
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

if TYPE_CHECKING:
    from topictree_hf.config import Config
    from topictree_hf.engines import Engine

GEN_FLAGS = ["--samples", "--format", "--temperature", "--backend", "--model", "--base-url", "--batch-size",
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
    from topictree_hf.cli.commands import Formatter

    g = sub.add_parser("generate", help="generate samples for an existing tree", epilog=GEN_EXAMPLE,
                       formatter_class=Formatter, description="Generate samples for RUN_DIR/topic_tree.json; "
                       "a rerun skips finished samples.")
    add_config_arg(g)
    add_common_flags(g, GEN_FLAGS + ["--root"])
    g.set_defaults(func=run_generate)

    r = sub.add_parser("run", help="tree + samples + dataset folder", epilog=RUN_EXAMPLE, formatter_class=Formatter,
                       description="The whole job: build the tree, generate samples, build the dataset folder. "
                       "Every stage resumes from the run dir.")
    add_config_arg(r)
    add_common_flags(r, list(COMMON_FLAGS))
    r.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    r.add_argument("--runner", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray cluster, one engine per actor (extra `ray`)")
    r.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS, else a local one)")
    r.add_argument("--workers", type=positive_int, metavar="N", help="Ray actors (default: what the cluster fits)")
    r.set_defaults(func=run_all)


def run_generate(args: argparse.Namespace) -> int:
    from topictree_hf.errors import RunDirError

    config = config_from_args(args)
    run_dir = RunDir(config.run_dir)
    if not run_dir.tree_file.exists():
        raise RunDirError(f"{run_dir.tree_file} does not exist; build the tree first with `topictree tree` "
                          "(same config and --run-dir)")
    run_dir.prepare(config, args.force)
    tree = TopicTree.load(run_dir.tree_file)
    with engine_for(config) as engine:
        _generate(config, run_dir, tree, engine)
    return 0


def _generate(config: Config, run_dir: RunDir, tree: TopicTree, engine: Engine) -> None:
    from topictree_hf.generation.allocate import total_tasks
    from topictree_hf.pipeline import generate_stage

    with count_bar(total_tasks(tree, config.generation), "samples") as bar:
        summary = generate_stage(config, engine, run_dir, tree, bar)
    print_generation_summary(summary.to_dict())
    say(f"samples journaled in {run_dir.path}")


def run_all(args: argparse.Namespace) -> int:
    from topictree_hf.errors import ConfigError
    from topictree_hf.pipeline import tree_stage

    config = config_from_args(args)
    run_dir = RunDir(config.run_dir)
    if args.runner == "ray":
        from topictree_hf.runners.ray_runner import require_ray

        require_ray()
        run_dir.prepare(config, args.force)
        _run_on_ray(config, run_dir, args)
        _build(config, run_dir, args)
        return 0
    if args.ray_address or args.workers:
        raise ConfigError("--ray-address and --workers apply to the Ray runner; add --runner ray")
    run_dir.prepare(config, args.force)
    with engine_for(config) as engine:
        with level_bar(config.tree.depth) as bar:
            tree = tree_stage(config, engine, run_dir, progress=bar)
        print_tree_summary(tree.stats(), tree.failures)
        _generate(config, run_dir, tree, engine)
    _build(config, run_dir, args)
    return 0


def _run_on_ray(config: Config, run_dir: RunDir, args: argparse.Namespace) -> None:
    from topictree_hf.generation.allocate import total_tasks
    from topictree_hf.runners.ray_runner import RayOptions, ray_generate_stage, ray_session, ray_tree_stage

    options = RayOptions(address=args.ray_address, workers=args.workers)
    with ray_session(options) as ray:
        cluster = ray.cluster_resources()
        say(f"Ray cluster: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; building the tree on "
            f"a worker with {config.engine.model} ({config.engine.backend}) ...")
        tree = ray_tree_stage(config, run_dir, options)
        print_tree_summary(tree.stats(), tree.failures)
        with count_bar(total_tasks(tree, config.generation), "samples") as bar:
            summary = ray_generate_stage(config, run_dir, tree, options, bar)
    print_generation_summary(summary.to_dict())
    say(f"samples journaled in {run_dir.path} (one shard per block)")


def _build(config: Config, run_dir: RunDir, args: argparse.Namespace) -> None:
    try:
        from topictree_hf.dataset import build_dataset  # type: ignore[attr-defined]
    except ImportError:
        say(f"run dir ready: {run_dir.path} (dataset building comes with `topictree build`)")
        return
    result = build_dataset(run_dir.path, config.dataset_dir, overwrite=args.overwrite)
    say(f"dataset folder: {result.describe()}")
    print(config.dataset_dir)
