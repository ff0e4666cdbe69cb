"""The stage API: every command and every runner goes through here. Library code: it reports
through callbacks and a `Watcher`, never prints.

    tree_stage(config, where, run_dir, progress)            -> TopicTree  (build or resume; an imported tree as is)
    import_tree(run_dir, file)                              -> TopicTree  (bring your own, marked in manifest.json)
    generate_stage(config, where, run_dir, tree, progress)  -> Summary    (variant=: a baseline arm)
    build_stage(run_dir, out, overwrite)                    -> BuildResult

`where` is an Engine (the work runs here, `LocalRunner`) or a `Runner` (runners/: where the work
runs, e.g. `RayRunner`). The commands chain the stages as the CLI does, with the run dir prepared
first and the engine (or cluster) opened only while it is needed: `runner` is a `RunnerChoice`
(default: the config's engine in this process; runners/open.py opens it and reports through the
watcher) or a function that opens an Engine or Runner of the caller's own:

    run_tree(...), run_generate(...), run_baseline(...), run_all(...)
    compare(dir, baseline=None, ...)  -> Comparison  (`topictree eval`, at equal N; eval/compare.py)

The baseline variants (`VARIANTS`, the arms of the diversity ablation) differ in where the contexts
come from and whether each sample gets its own angle; model, sampling, formats, sample count and
de-duplication are the config's in every arm:

    naive          the root alone, one fixed angle        (what repeated prompting gives)
    naive+angles   the root alone, a different angle per sample
    flat           one level of as many subtopics as the tree has leaves, angles on
    tree           the tree's paths, one fixed angle
    tree+angles    the tree's paths, angles on            (what `topictree run` does)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from topictree_hf.config import Config
from topictree_hf.engines import Engine
from topictree_hf.errors import ConfigError, RunDirError
from topictree_hf.eval.compare import compare
from topictree_hf.generation.allocate import Task, total_tasks
from topictree_hf.generation.generator import Progress, generate_pending
from topictree_hf.generation.summary import Summary
from topictree_hf.rundir import RunDir
from topictree_hf.runners.base import Runner
from topictree_hf.runners.local import LocalRunner
from topictree_hf.runners.open import OpenEvents, RunnerChoice, open_where
from topictree_hf.tree.builder import LevelProgress, TreeBuilder, embedding_checks
from topictree_hf.tree.io import load_any
from topictree_hf.tree.model import TopicTree
from topictree_hf.tree.render import render_png

if TYPE_CHECKING:
    from collections.abc import Iterator

    from topictree_hf.dataset import BuildResult

logger = logging.getLogger(__name__)
Where = Engine | Runner
Variant = Literal["naive", "naive+angles", "flat", "tree", "tree+angles"]
VARIANTS: tuple[str, ...] = get_args(Variant)
OpenWhere = Callable[[], AbstractContextManager[Where]]


class Watcher(OpenEvents):
    """How a caller follows a command: progress callbacks, the engine or cluster being opened
    (`OpenEvents`), and a report after each stage. This one shows nothing; the CLI's draws bars and
    prints summaries."""

    def tree_progress(self, depth: int) -> AbstractContextManager[LevelProgress | None]:
        return nullcontext()

    def tree_done(self, tree: TopicTree) -> None:
        """The tree is ready (built, resumed or imported)."""

    def sample_progress(self, total: int, label: str) -> AbstractContextManager[Progress | None]:
        return nullcontext()

    def generate_done(self, summary: Summary, run_dir: RunDir) -> None:
        """The generate stage finished (its summary is also in run_dir/summary.json)."""

    eval_progress = False  # draw the evaluation's progress bars (stderr)

    def eval_done(self, result: dict[str, Any], dataset_dir: Path) -> None:
        """`topictree run` measured the dataset (`eval_stage`); the card has the table."""


def as_runner(where: Where) -> Runner:
    return where if isinstance(where, Runner) else LocalRunner(where)


def opener(config: Config, runner: RunnerChoice | OpenWhere | None, watcher: Watcher) -> OpenWhere:
    """How a command opens where its work runs; a RunnerChoice is checked first (Ray installed),
    before anything is written."""
    if runner is None or isinstance(runner, RunnerChoice):
        choice = runner or RunnerChoice()
        choice.check()
        return partial(open_where, config, choice, watcher)
    return runner


# ---------------------------------------------------------------- the stages


def tree_stage(config: Config, where: Where, run_dir: RunDir, progress: LevelProgress | None = None) -> TopicTree:
    """Build (or resume) the tree where `where` runs it; write topic_tree.json and topic_tree.png.
    A tree the run dir marks as brought (`import_tree`, the baseline's) is used as is."""
    if run_dir.tree_source() in ("imported", "baseline"):
        return TopicTree.load(run_dir.tree_file)
    tree = as_runner(where).build_tree(config, run_dir, build_tree, progress)
    if not run_dir.tree_png.exists():  # built on a Ray node that does not share the run dir
        draw_tree(tree, run_dir)
    if run_dir.read_manifest() is not None:
        run_dir.mark_tree_source("built")
    return tree


def build_tree(config: Config, engine: Engine, run_dir: RunDir, progress: LevelProgress | None = None) -> TopicTree:
    """The tree stage's work on one engine (a runner decides where this is called)."""
    similar, drift = embedding_checks(config.tree)
    builder = TreeBuilder(engine, config.tree, seed=config.generation.seed, journal=run_dir.tree_journal,
                          similar=similar, drift=drift)
    tree = builder.build(config.root, progress)
    tree.save(run_dir.tree_file)
    draw_tree(tree, run_dir)
    return tree


def import_tree(run_dir: RunDir, file: Path) -> TopicTree:
    """Use the tree in `file` (topic_tree.json, paths JSONL, outline) instead of building one; the
    manifest says so, and a tree journal of an earlier build (another tree) is removed."""
    tree = load_any(file)
    tree.save(run_dir.tree_file)
    run_dir.tree_journal.unlink(missing_ok=True)
    run_dir.mark_tree_source("imported")
    draw_tree(tree, run_dir)
    return tree


def baseline_tree(config: Config, run_dir: RunDir) -> TopicTree:
    """The naive baseline's tree: the root alone, so every prompt carries only the root topic."""
    tree = TopicTree.new(config.root)
    tree.save(run_dir.tree_file)
    run_dir.mark_tree_source("baseline")
    return tree


def draw_tree(tree: TopicTree, run_dir: RunDir) -> None:
    try:
        render_png(tree, run_dir.tree_png)
    except (OSError, ValueError, ImportError) as exc:  # a picture is never worth losing a run
        logger.warning("could not draw %s: %s", run_dir.tree_png, exc)


def generate_stage(config: Config, where: Where, run_dir: RunDir, tree: TopicTree,
                   progress: Progress | None = None, *, variant: str | None = None) -> Summary:
    """Generate every sample of `tree` not journaled yet, where `where` runs the work; write
    summary.json. `variant` names a baseline arm (recorded in the summary); `generation.angles`
    decides per-sample angles."""
    runner = as_runner(where)

    def execute(tasks: Iterator[Task], summary: Summary, bar: Progress | None) -> None:
        runner.generate(config, run_dir, tasks, summary, bar)

    summary = generate_pending(config, run_dir, tree, execute, progress)
    head = {"baseline": variant} if variant else {}
    run_dir.write_summary(head | {"tree": tree.stats(), "generation": summary.to_dict(), "runner": runner.name})
    return summary


def build_stage(run_dir: RunDir | Path | str, out: Path | str | None = None, overwrite: bool = False, *,
                neighbours: bool = True) -> BuildResult:
    """Package the run dir as a dataset folder (see topictree_hf.dataset); `neighbours=False` skips
    the nearest-neighbour columns (embedding every row)."""
    # Imported here, not at the top: `datasets` pulls in huggingface_hub, which reads HF_HUB_OFFLINE
    # once at import, and the CLI decides that variable per command.
    from topictree_hf.dataset import build_dataset

    path = run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)
    return build_dataset(path, out, overwrite=overwrite, neighbours=neighbours)


# ---------------------------------------------------------------- the commands


Opening = RunnerChoice | OpenWhere


def run_tree(config: Config, run_dir: RunDir, runner: Opening | None = None, watcher: Watcher | None = None, *,
             force: bool = False, import_file: Path | None = None) -> TopicTree:
    """`topictree tree`: the tree stage (or an imported tree) in a prepared run dir."""
    watcher = watcher or Watcher()
    open_where = opener(config, runner, watcher)
    run_dir.prepare(config, force)
    if import_file is not None:
        tree = import_tree(run_dir, import_file)
    else:
        with open_where() as where, watcher.tree_progress(config.tree.depth) as bar:
            tree = tree_stage(config, where, run_dir, bar)
    watcher.tree_done(tree)
    return tree


def run_generate(config: Config, run_dir: RunDir, runner: Opening | None = None, watcher: Watcher | None = None,
                 *, force: bool = False) -> Summary:
    """`topictree generate`: samples for the tree already in the run dir."""
    if not run_dir.tree_file.exists():
        raise RunDirError(f"{run_dir.tree_file} does not exist; build the tree first with `topictree tree` "
                          "(same config and --run-dir)")
    watcher = watcher or Watcher()
    open_where = opener(config, runner, watcher)
    run_dir.prepare(config, force)
    tree = TopicTree.load(run_dir.tree_file)
    with open_where() as where:
        return _generate(config, where, run_dir, tree, watcher)


def run_baseline(config: Config, run_dir: RunDir, runner: Opening | None = None, watcher: Watcher | None = None,
                 *, force: bool = False, variant: Variant = "naive", flat_size: int | None = None,
                 tree_file: Path | None = None) -> Summary:
    """`topictree baseline`: one arm of the ablation (see VARIANTS above) in a prepared run dir.
    `flat_size`: subtopics of the flat arm (default degree ** depth, the leaves of a full tree);
    `tree_file`: the tree arms use this tree (e.g. the one `topictree run` built) instead of a new one."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown baseline variant {variant!r}; choose from {', '.join(VARIANTS)}")
    config = variant_config(config, variant, flat_size)
    watcher = watcher or Watcher()
    open_where = opener(config, runner, watcher)
    run_dir.prepare(config, force)
    if variant.startswith("naive"):
        tree = baseline_tree(config, run_dir)
    elif tree_file is not None and variant != "flat":
        tree = import_tree(run_dir, tree_file)
    else:
        tree = None
    with open_where() as where:
        if tree is None:
            with watcher.tree_progress(config.tree.depth) as bar:
                tree = tree_stage(config, where, run_dir, bar)
            watcher.tree_done(tree)
        summary = _generate(config, where, run_dir, tree, watcher, variant=variant)
    return summary


def variant_config(config: Config, variant: str, flat_size: int | None = None) -> Config:
    """The config of one ablation arm: angles on or off; the flat arm's one-level tree."""
    gen = config.generation.model_copy(update={"angles": variant.endswith("angles") or variant == "flat"})
    update: dict[str, object] = {"generation": gen}
    if variant == "flat":
        size = flat_size or config.tree.degree ** config.tree.depth
        update["tree"] = config.tree.model_copy(update={"depth": 1, "degree": size})
    return config.model_copy(update=update)


def run_all(config: Config, run_dir: RunDir, runner: Opening | None = None, watcher: Watcher | None = None, *,
            force: bool = False, overwrite: bool = False, evaluate: bool = True) -> BuildResult:
    """`topictree run`: tree, samples (the engine or cluster open for both), the dataset folder, then
    (unless `evaluate` is False) its diversity figures in the card (`eval_stage`)."""
    watcher = watcher or Watcher()
    open_where = opener(config, runner, watcher)
    run_dir.prepare(config, force)
    with open_where() as where:
        with watcher.tree_progress(config.tree.depth) as bar:
            tree = tree_stage(config, where, run_dir, bar)
        watcher.tree_done(tree)
        _generate(config, where, run_dir, tree, watcher)
    result = build_stage(run_dir, config.dataset_dir, overwrite, neighbours=config.output.neighbours)
    if evaluate:
        watcher.eval_done(eval_stage(result.out, progress=watcher.eval_progress, embedder=result.embeddings),
                          result.out)
    return result


def eval_stage(dataset_dir: Path, *, progress: bool = False, embedder: Any = None) -> dict[str, Any]:
    """`topictree eval` on a dataset folder (`compare`, no baseline), the default settings (embeddings
    of at most 2,000 samples), the table written into its card's Diversity section; returns the figures.
    `embedder`: the build's vectors (`BuildResult.embeddings`), so no sample is embedded twice."""
    measured = compare(dataset_dir, names=("this set", "baseline"), progress=progress, embedder=embedder)
    measured.write_card()
    return measured.result


def _generate(config: Config, where: Where, run_dir: RunDir, tree: TopicTree, watcher: Watcher,
              variant: str | None = None) -> Summary:
    label = f"{variant} samples" if variant else "samples"
    with watcher.sample_progress(total_tasks(tree, config.generation), label) as bar:
        summary = generate_stage(config, where, run_dir, tree, bar, variant=variant)
    watcher.generate_done(summary, run_dir)
    return summary
