"""What several commands share: config from file + flags, progress bars, what the pipeline reports."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from topictree_hf.cli.parser import overrides
from topictree_hf.config import DEFAULT_MODEL, Config, EngineConfig, load_config
from topictree_hf.engines.registry import check_backend
from topictree_hf.generation.prompts import check_generation
from topictree_hf.generation.summary import Summary, generator_text, small_model_note
from topictree_hf.pipeline import Watcher
from topictree_hf.progress import progress_bar
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree


def config_from_args(args: argparse.Namespace, generation: bool = True) -> Config:
    """The config from file + flags, its backend a registered one; with `generation`, its templates
    and schemas are checked too, so a bad one fails before a model is loaded."""
    path = getattr(args, "config", None)
    config = load_config(path, overrides(args))
    check_backend(config.engine.backend, path)
    if generation:
        check_generation(config.generation)
    if getattr(args, "runner", None) == "ray" and config.generation.plan \
            and "plan" not in config.generation.model_fields_set:  # the default, not the user's choice
        config = config.model_copy(update={"generation": config.generation.model_copy(update={"plan": False})})
    return config


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
        f"({stats['reasks']} re-ask rounds), {stats['failures']} nodes short"
        + (f", {stats['pruned']} branches pruned (no child after the wider last try; tree.ragged keeps them)"
           if stats.get("pruned") else ""))
    hygiene = {k: v for k, v in (stats.get("hygiene") or {}).items() if v}
    if hygiene:
        counts = sorted(hygiene.items(), key=lambda kv: (-kv[1], kv[0]))
        say(f"hygiene: re-asked {sum(hygiene.values())} topics ({', '.join(f'{n} {why}' for why, n in counts)})")
    for f in failures[:5]:
        say(f"  short: {' > '.join(f.path)}: {f.reason}")
    if len(failures) > 5:
        say(f"  ... and {len(failures) - 5} more (see topic_tree.json)")


def print_generation_summary(summary: dict[str, Any]) -> None:
    counts = Summary.from_dict(summary)
    asked, delivered = counts.asked, summary.get("delivered")
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
    if counts.plan_calls:
        rejected = ", ".join(f"{n} {why}" for why, n in counts.plan_rejections.most_common())
        say(f"  plan: {counts.plan_items} items planned in {counts.plan_calls} calls ({counts.plan_requests} requests, "
            f"{counts.plan_output_tokens} tokens)" + (f", re-asked: {rejected}" if rejected else "")
            + (f", {counts.plan_given_up} slots given up" if counts.plan_given_up else ""))
    print_generator(counts)


def print_generator(summary: Summary) -> None:
    """Which model wrote the samples and how big it is; under 1B parameters, one line of warning."""
    if not summary.model_parameters:
        return  # a summary.json of an older version
    say(f"generator: {generator_text(summary.model_parameters, summary.backends)}")
    note = small_model_note(summary.model_parameters)
    if note:
        say(f"  {note}")


class CliWatcher(Watcher):
    """Progress bars on stderr, the engine or cluster being opened, and a summary after each stage;
    `shape_note` (Config.shape_note: a tree shape chosen from the sample count) is said when a tree is built."""

    def __init__(self, shape_note: str | None = None) -> None:
        self.shape_note = shape_note

    def engine_loading(self, engine: EngineConfig, backend: str) -> None:
        model = engine.model
        if engine.backend == "openai" and model == DEFAULT_MODEL:
            model = "the model the server serves"  # the engine asks the server which one
        shown = f"{backend} (auto)" if engine.backend == "auto" else backend
        say(f"loading {model} on the {shown} backend ...")

    def engine_ready(self, seconds: float, served: str | None) -> None:
        say(f"model ready in {seconds:.1f}s" + (f" ({served})" if served else ""))

    def ray_cluster(self, resources: Mapping[str, float], engine: EngineConfig) -> None:
        backend = "auto: each worker picks its own" if engine.backend == "auto" else engine.backend
        say(f"Ray cluster: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; the tree runs on "
            f"a worker with {engine.model} ({backend}), samples on one actor per worker (no leaf plans: they "
            "run on the local runner only for now)")

    def backend_chosen(self, work: str, node: str, backend: str, why: str) -> None:
        say(f"Ray {work} on {node}: backend auto -> {backend} ({why})")

    def tree_progress(self, depth: int) -> Any:
        if self.shape_note:
            say(self.shape_note)
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
