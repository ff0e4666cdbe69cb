"""`build_dataset`: run dir in, Hub-layout dataset folder out.

    OUT/README.md               card (YAML configs: data/ only, dataset_info: features and sizes)
    OUT/data/{split}-NNNNN-of-NNNNN.parquet   sharded by size, rows sorted by id
    OUT/topic_tree.json         the run's tree
    OUT/generation.yaml         the resolved config (re-runnable, secrets and local paths removed)
    OUT/assets/topic_tree.png   a picture of the tree (when one can be drawn)

Everything is written into a temporary sibling folder and renamed into place only when complete,
so an interrupted build never leaves a half-written dataset where `load_dataset` or `push` would
find it, and `--overwrite` swaps the old folder out only at the very end. The temp siblings carry
the builder's process id, so the next build of the same folder cleans up after a killed one: a
half-built folder is deleted, a replaced folder that was moved aside but never swapped is put back.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets.exceptions import DatasetGenerationError

from topictree_hf import faults
from topictree_hf.dataset.bars import library_bars
from topictree_hf.dataset.builder import DEFAULT_SPILL_BYTES, TopicTreeBuilder
from topictree_hf.dataset.card import card_data, check_languages, check_license, render_card
from topictree_hf.dataset.card_context import card_context, title_of
from topictree_hf.dataset.features import FEATURES
from topictree_hf.dataset.scrub import write_generation_yaml
from topictree_hf.dataset.source import RunSource, load_run
from topictree_hf.dataset.split import SplitPlan
from topictree_hf.dataset.stats import BuildStats
from topictree_hf.dataset.verify import is_dataset_folder
from topictree_hf.errors import InputFileError, RunDirError, TopicTreeError

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_SIZE = "500MB"


@dataclass(slots=True)
class BuildResult:
    out: Path
    rows: dict[str, int]
    files: list[str]
    seconds: float
    stats: BuildStats = field(repr=False)
    embeddings: Any = field(default=None, repr=False)  # the rows' vectors (neighbours.EmbeddingCache), for eval

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def describe(self) -> str:
        """One line for the terminal: where, how many rows per split, how many files."""
        splits = ", ".join(f"{split} {n:,}" for split, n in self.rows.items())
        return (f"dataset folder {self.out}: {self.total_rows:,} rows ({splits}), {len(self.files)} parquet "
                f"file(s), built in {self.seconds:.1f}s")


def default_out_dir(run_dir: Path | str, source: RunSource | None = None) -> Path:
    """`output.dataset_dir` from the run's config, else RUN_DIR/dataset."""
    source = source or load_run(run_dir)
    return source.config.output.dataset_dir or Path(run_dir) / "dataset"


def build_dataset(run_dir: Path | str, out: Path | str | None = None, overwrite: bool = False, *,
                  max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
                  spill_bytes: int = DEFAULT_SPILL_BYTES, writer_batch_size: int | None = None,
                  neighbours: bool = True, embedder: Any = None) -> BuildResult:
    """Package the run dir `run_dir` as a dataset folder at `out` (default: `default_out_dir`).
    An existing `out` needs `overwrite=True` and must be a folder this tool built (or empty).
    `max_shard_size` bounds each parquet file (checked per row group of `writer_batch_size` rows,
    default 1000); `spill_bytes` bounds the in-memory sort buffer. `neighbours`: embed every row
    (`embedder`, default the bundled MiniLM) for `nn_similarity` and `repeat_count`; False leaves
    them null. The result's `embeddings` answers eval for those rows without embedding them again."""
    started = time.perf_counter()
    source = load_run(run_dir)
    check_license(source.config.output.license)  # fail now, not after minutes of building
    check_languages(source.config.output.language)
    target = Path(out) if out is not None else default_out_dir(run_dir, source)
    _recover_siblings(target)
    _check_target(target, source.run.path, overwrite)
    staging = _sibling(target, "tmp")
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise InputFileError(f"cannot create {target.parent} ({exc.strerror}); pass a writable --out") from None
    try:
        builder = _prepare(source, staging / ".work", max_shard_size, spill_bytes, writer_batch_size,
                           neighbours, embedder)
        rows, files = _move_shards(builder, staging)
        _write_extras(source, builder, staging)
        shutil.rmtree(staging / ".work")
        faults.crash_point("build.staged")
        _place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildResult(target, rows, files, round(time.perf_counter() - started, 3), builder.stats,
                       builder.neighbours.embeddings if builder.neighbours else None)


def _check_target(target: Path, run_dir: Path, overwrite: bool) -> None:
    if target.resolve() in (run_dir.resolve(), *run_dir.resolve().parents):
        raise InputFileError(f"--out {target} would contain the run dir {run_dir}; choose a folder outside it "
                             "(the default is RUN_DIR/dataset)")
    if not target.exists():
        return
    if not target.is_dir():
        raise InputFileError(f"--out {target} is a file; choose a folder path")
    if not overwrite:
        raise InputFileError(f"{target} already exists; pass --overwrite to replace it or choose another --out")
    if any(target.iterdir()) and not is_dataset_folder(target):
        raise InputFileError(f"refusing to replace {target}: it is not a dataset folder built by topictree; "
                             "choose another --out")


def _prepare(source: RunSource, work: Path, max_shard_size: int | str, spill_bytes: int,
             writer_batch_size: int | None, neighbours: bool, embedder: Any) -> TopicTreeBuilder:
    builder = TopicTreeBuilder(run_dir=str(source.run.path), work_dir=str(work), spill_bytes=spill_bytes,
                               cache_dir=str(work / "cache"), writer_batch_size=writer_batch_size,
                               neighbours=neighbours, embedder=embedder)
    work.mkdir(parents=True, exist_ok=True)
    try:
        with library_bars():
            builder.download_and_prepare(output_dir=str(work / "prepared"), file_format="parquet",
                                         max_shard_size=max_shard_size)
    except DatasetGenerationError as exc:
        cause = exc.__cause__
        if isinstance(cause, TopicTreeError):
            raise cause from None
        if isinstance(cause, OSError):
            raise RunDirError(f"writing the dataset failed ({cause.strerror or cause}); free disk space "
                              "or pass another --out, then rerun") from None
        raise
    return builder


def _move_shards(builder: TopicTreeBuilder, staging: Path) -> tuple[dict[str, int], list[str]]:
    """Rename datasets' `topictree-{split}[-SSSSS-of-NNNNN].parquet` to the Hub's data/ layout."""
    prepared = staging / ".work" / "prepared"
    data = staging / "data"
    data.mkdir()
    rows, files = {}, []
    for split, info in builder.info.splits.items():
        shards = sorted(prepared.glob(f"{builder.dataset_name}-{split}*.parquet"))
        for index, shard in enumerate(shards):
            name = f"{split}-{index:05d}-of-{len(shards):05d}.parquet"
            os.replace(shard, data / name)
            files.append(f"data/{name}")
        rows[split] = info.num_examples
    return rows, files


def _write_extras(source: RunSource, builder: TopicTreeBuilder, staging: Path) -> None:
    shutil.copyfile(source.run.tree_file, staging / "topic_tree.json")
    write_generation_yaml(source, staging / "generation.yaml", builder.stats.models)
    has_picture = _write_picture(source, staging / "assets" / "topic_tree.png")
    plan = builder.plan or SplitPlan("leaf", 0, frozenset())
    info = _card_info(builder, staging)
    config = source.config
    data = card_data(license_id=config.output.license, languages=config.output.language,
                     pretty_name=title_of(config), info=info, splits=list(builder.info.splits),
                     tags=sorted(builder.stats.formats))
    summary = builder.neighbours.summary() if builder.neighbours else None
    card = render_card(data, card_context(source, builder.stats, plan, has_picture, summary))
    card.save(staging / "README.md")


def _card_info(builder: TopicTreeBuilder, staging: Path) -> datasets.DatasetInfo:
    """dataset_info as push_to_hub writes it: features, per-split sizes, parquet download size."""
    splits = datasets.SplitDict()
    for split, info in builder.info.splits.items():
        splits.add(datasets.SplitInfo(name=split, num_bytes=info.num_bytes, num_examples=info.num_examples))
    download = sum(p.stat().st_size for p in (staging / "data").glob("*.parquet"))
    dataset_size = sum(s.num_bytes for s in splits.values())
    return datasets.DatasetInfo(config_name="default", features=FEATURES, splits=splits,
                                download_size=download, dataset_size=dataset_size,
                                size_in_bytes=download + dataset_size)


def _write_picture(source: RunSource, path: Path) -> bool:
    """Copy the run's picture; else draw one; else go on without (the card then shows none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if source.run.tree_png.is_file():
        shutil.copyfile(source.run.tree_png, path)
        return True
    try:
        from topictree_hf.tree.render import render_png
    except ImportError as exc:
        logger.warning("no tree picture in the dataset: cannot draw one (%s)", exc)
        path.parent.rmdir()
        return False
    try:
        render_png(source.tree, path)
    except Exception as exc:  # a picture is decoration: never lose a finished build over it
        logger.warning("no tree picture in the dataset: drawing failed (%s: %s)", exc.__class__.__name__, exc)
    if path.is_file():
        return True
    shutil.rmtree(path.parent, ignore_errors=True)
    return False


def _place(staging: Path, target: Path) -> None:
    """Rename the finished folder into place; an old one is moved aside first and deleted last,
    and put back if the swap fails."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = _sibling(target, "old")
    os.replace(target, old)
    faults.crash_point("build.swap")
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sibling(target: Path, kind: str) -> Path:
    """A hidden temp sibling of `target`: `.NAME.tmp-PID-RANDOM` (the build) or `.NAME.old-PID-RANDOM`
    (the folder it replaces, until the swap is done)."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _recover_siblings(target: Path) -> None:
    """Clean up after builds of `target` that were killed (their process is gone; a live build's
    siblings are left alone): a half-built folder is deleted (it would hold a dataset's worth of disk
    forever), and a replaced folder moved aside but never swapped out is put back where it was."""
    if not target.parent.is_dir():
        return
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.*-*-*")):
        kind, _, rest = path.name[len(target.name) + 2 :].partition("-")
        pid = rest.split("-", 1)[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not target.exists():
            logger.warning("put %s back at %s: an interrupted build had moved it aside", path.name, target)
            os.replace(path, target)
        else:
            logger.warning("removed %s, left by an interrupted build", path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, signal 0 would be a Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (EPERM), or no such check on this platform
        return True
    return True
