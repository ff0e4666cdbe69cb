"""What several commands share: config from file + flags, the engine, progress bars, summaries."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from topictree_hf.cli.parser import overrides
from topictree_hf.config import BUNDLED_MODEL, Config, load_config
from topictree_hf.engines import Engine, create_engine
from topictree_hf.generation.generator import Summary, check_generation
from topictree_hf.pipeline import Watcher
from topictree_hf.progress import progress_bar
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree


def config_from_args(args: argparse.Namespace, generation: bool = True) -> Config:
    """The config from file + flags; with `generation`, its templates and schemas are checked too,
    so a bad one fails before a model is loaded."""
    config = load_config(getattr(args, "config", None), overrides(args))
    if generation:
        check_generation(config.generation)
    return config


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def engine_for(config: Config) -> Iterator[Engine]:
    start = time.perf_counter()
    backend = config.engine.backend
    if backend == "auto":
        from topictree_hf.engines.auto import pick_backend

        backend = f"{pick_backend()} (auto)"
    model = config.engine.model
    if config.engine.backend == "openai" and model == BUNDLED_MODEL:
        model = "the model the server serves"  # the engine asks the server which one
    say(f"loading {model} on the {backend} backend ...")
    engine = create_engine(config.engine)
    served = f" ({engine.model_name})" if engine.model_name != config.engine.model else ""
    say(f"model ready in {time.perf_counter() - start:.1f}s{served}")
    try:
        yield engine
    finally:
        engine.close()


@contextmanager
def level_bar(depth: int) -> Iterator[Callable[[int, int, int], None]]:
    bar = progress_bar(depth, "tree levels", unit="level")
    state = {"level": -1}

    def update(level: int, done: int, total: int) -> None:
        bar.set_postfix_str(f"depth {level + 1}: {done}/{total} nodes complete")
        if done == total and state["level"] != level:
            state["level"] = level
            bar.update(1)

    try:
        yield update
    finally:
        bar.close()


@contextmanager
def count_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    bar = progress_bar(total, desc, unit="sample")
    try:
        yield bar.update
    finally:
        bar.close()


def print_tree_summary(stats: dict[str, Any], failures: list[Any]) -> None:
    say(f"tree: {stats['nodes']} nodes, {stats['leaves']} leaves, per level {stats['nodes_per_level']}, "
        f"branching {stats['effective_branching']}, {stats['engine_calls']} engine calls "
        f"({stats['reasks']} re-ask rounds), {stats['failures']} nodes short")
    hygiene = {k: v for k, v in (stats.get("hygiene") or {}).items() if v}
    if hygiene:
        counts = sorted(hygiene.items(), key=lambda kv: (-kv[1], kv[0]))
        say(f"hygiene: re-asked {sum(hygiene.values())} topics ({', '.join(f'{n} {why}' for why, n in counts)})")
    for f in failures[:5]:
        say(f"  short: {' > '.join(f.path)}: {f.reason}")
    if len(failures) > 5:
        say(f"  ... and {len(failures) - 5} more (see topic_tree.json)")


def print_generation_summary(summary: dict[str, Any]) -> None:
    asked, delivered = summary.get("asked", summary["requested"]), summary.get("delivered")
    if delivered is not None:
        share = 100 * delivered / asked if asked else 100.0
        say(f"delivered {delivered} of {asked} samples ({share:.0f}%) with {summary.get('requests', 0)} requests "
            f"(budget {summary.get('budget', 0)}, {summary.get('topups', 0)} top-ups)")
        if summary.get("short_reason"):
            say(f"  {asked - delivered} missing: {summary['short_reason']}")
    say(f"samples: {summary['valid']} valid this run (+{summary['resumed']} from before), {summary['failed']} "
        f"failed, {summary['retried']} retried, mode {summary['mode']}, "
        f"{summary['output_tokens_per_s']} output tok/s over {summary['seconds']}s")
    if summary["rejections"]:
        say("  rejected (before retries): " + ", ".join(f"{k} {v}" for k, v in sorted(summary["rejections"].items())))
    if summary["failures"]:
        say("  failed for good: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["failures"].items()))
            + " (see failures.jsonl)")
    if summary.get("judge_requests"):
        scores = ", ".join(f"{k}: {v}" for k, v in summary.get("judge_scores", {}).items())
        timing = f", {summary['judge_seconds']}s" if summary.get("judge_seconds") else ""
        say(f"  judge: {summary['judge_requests']} requests, {summary.get('judge_tokens', 0)} tokens{timing}; "
            f"scores {scores or 'none'}" + (f", {summary['judge_unparsed']} unparsed" if summary.get("judge_unparsed")
                                            else ""))


class CliWatcher(Watcher):
    """Progress bars on stderr and a summary after each stage."""

    def tree_progress(self, depth: int) -> Any:
        return level_bar(depth)

    def tree_done(self, tree: TopicTree) -> None:
        print_tree_summary(tree.stats(), tree.failures)

    def sample_progress(self, total: int, label: str) -> Any:
        return count_bar(total, label)

    def generate_done(self, summary: Summary, run_dir: RunDir) -> None:
        print_generation_summary(summary.to_dict())
        say(f"samples journaled in {run_dir.path}")

    eval_progress = True

    def eval_done(self, result: dict[str, Any], dataset_dir: Path) -> None:
        print_eval_summary(result)
        say(f"the full table is in the Diversity section of {dataset_dir / 'README.md'}")


def print_eval_summary(result: dict[str, Any]) -> None:
    """The closing evaluation in two lines (the card has the whole table)."""
    d, q = result["diversity"], result["quality"]

    def pct(value: Any) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    vendi = d.get("vendi_score")
    say(f"eval: {result['samples']} samples, exact dup {pct(d.get('exact_duplicate_rate'))}, near dup "
        f"{pct(d.get('near_duplicate_rate'))}, semantic dup {pct(d.get('semantic_duplicate_rate'))}, distinct-2 "
        f"{d.get('distinct_2', 0):.3f}, Vendi {'n/a' if vendi is None else f'{vendi:.1f}'}, "
        f"on-topic {pct(q.get('on_topic_rate'))}")
