"""The run directory: everything a run writes, append-only, so every stage can resume.

    RUN_DIR/
      manifest.json      tool version, run-dir format version, the config fingerprint per stage
      config.yaml        the resolved config (re-runnable, no secrets)
      tree.jsonl         tree journal: one line per completed level
      topic_tree.json    the finished tree (see tree/model.py)
      topic_tree.png     a picture of it
      plans.jsonl        leaf plans (generation.plan): one line per planned slot, its item or null
      samples-NNNNN.jsonl  sample journals (one record per valid sample; several shards allowed)
      failures.jsonl     samples that failed after retries, with their reason
      failures-*.jsonl   more failure journals (a runner's per-worker shards), read like failures.jsonl
      summary.json       counts of the last run

Journal lines are the records of records.py: `Sample.to_json()` in samples-*.jsonl, `Failure.to_json()`
in failures.jsonl. An imported tree (`topictree tree --import`) is marked in manifest.json
(`"tree_source": "imported"`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from topictree_hf import __version__
from topictree_hf.config import STAGES, Config, field_stages, resolved_dict
from topictree_hf.errors import RunDirError
from topictree_hf.journal import read_jsonl, write_json_atomic
from topictree_hf.provenance import tool_source
from topictree_hf.records import Failure, RecordError, Sample

RUN_FORMAT_VERSION = 1
TREE_SOURCE = "tree_source"  # manifest key: "built", "imported" or "baseline" (see RunDir.tree_source)
# Which config keys shape each stage's output (a change there makes existing results stale), as the
# config's fields declare it (config.Shapes).
STAGE_KEYS = {stage: tuple(k for k, shapes in field_stages().items() if stage in (shapes or ())) for stage in STAGES}


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    manifest = property(lambda self: self.path / "manifest.json")
    config_file = property(lambda self: self.path / "config.yaml")
    tree_journal = property(lambda self: self.path / "tree.jsonl")
    tree_file = property(lambda self: self.path / "topic_tree.json")
    tree_png = property(lambda self: self.path / "topic_tree.png")
    failures = property(lambda self: self.path / "failures.jsonl")
    plans = property(lambda self: self.path / "plans.jsonl")  # the leaf plans (generation.plan)
    summary = property(lambda self: self.path / "summary.json")

    def sample_shard(self, index: int = 0) -> Path:
        return self.path / f"samples-{index:05d}.jsonl"

    def sample_shards(self) -> list[Path]:
        return sorted(self.path.glob("samples-*.jsonl"))

    def iter_samples(self) -> Iterator[Sample]:
        """Every journaled sample once (first record per id wins), across all shards; a line that is
        not a valid sample is skipped here (the build counts it with its reason)."""
        return read_samples(self.sample_shards())

    def failure_shards(self) -> list[Path]:
        """failures.jsonl (when it exists), then any failures-*.jsonl a runner left."""
        return [p for p in [self.failures] if p.exists()] + sorted(self.path.glob("failures-*.jsonl"))

    def iter_failures(self) -> Iterator[Failure]:
        """Every failure once (first record per id wins), across failures.jsonl and a runner's shards."""
        return (Failure.from_json(record) for _, record in journal_lines(self.failure_shards()))

    def journaled_ids(self) -> set[str]:
        """Every id with a result (a sample line, valid or not, or a failure): what a rerun skips."""
        return Journaled.read(self).ids

    def prepare(self, config: Config, force: bool = False) -> None:
        """Create the run dir, or check that an existing one was made by a compatible version and,
        for every stage that already has results here, the same config (else one line saying what
        differs; `--force` goes on with the new values). A Hub model the run loads is fetched here
        when the local cache lacks it, and the commit it resolved to is recorded (engines/hub.py)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"run dir {self.path} is not writable ({exc.strerror}); pass --run-dir DIR "
                              "with a writable folder") from None
        current = fingerprints(config)
        old = self.read_manifest()
        if old is not None:
            if old.get("format_version") != RUN_FORMAT_VERSION:
                raise RunDirError(f"run dir {self.path} was made by topictree-hf {old.get('tool_version')} "
                                  f"(format {old.get('format_version')}), incompatible with this version; "
                                  "use a new --run-dir")
            keys = tuple(k for stage in self.stages_with_results() for k in STAGE_KEYS[stage])
            changed = _changed_keys(old.get("config", {}), resolved_dict(config), tuple(dict.fromkeys(keys)))
            if changed and not force:
                raise RunDirError(f"the config changed since {self.path} was made ({', '.join(changed)}); "
                                  "use a new --run-dir, or pass --force to continue with the new values")
        self.check_journals()
        manifest = {"tool_version": __version__, "tool_source": tool_source(), "format_version": RUN_FORMAT_VERSION,
                    "fingerprints": current, "config": config.model_dump(mode="json")}  # nulls kept: see _has
        if old is not None and TREE_SOURCE in old:
            manifest[TREE_SOURCE] = old[TREE_SOURCE]
        from topictree_hf.engines.hub import PINS, pin_models  # fetches a Hub model not in the cache yet

        pins = pin_models(config, (old or {}).get(PINS), force)
        if pins:
            manifest[PINS] = pins  # the commit of each Hub model: generation.yaml and the card name it
        write_json_atomic(self.manifest, manifest)
        self.config_file.write_text(yaml.safe_dump(resolved_dict(config), sort_keys=False), encoding="utf-8")

    def check_journals(self) -> None:
        """Read every journal once, so a corrupted one is reported before any model is loaded."""
        for path in [self.tree_journal, self.plans, *self.sample_shards(), self.failures]:
            for _ in read_jsonl(path):
                pass

    def stages_with_results(self) -> list[str]:
        stages = ["tree"] if self.tree_journal.exists() else []
        if self.sample_shards() or self.failure_shards() or self.plans.exists():
            stages.append("generate")
        return stages

    def tree_source(self) -> str | None:
        """Where topic_tree.json came from: "built" (the tree stage), "imported" (`topictree tree
        --import`), "baseline" (the one-node tree of `topictree baseline`), or None (no tree yet).
        A run dir made before the manifest said so holds an imported tree when it has a tree file
        but no tree journal."""
        manifest = self.read_manifest() or {}
        if isinstance(manifest.get(TREE_SOURCE), str):
            return str(manifest[TREE_SOURCE])
        if not self.tree_file.exists():
            return None
        return "built" if self.tree_journal.exists() else "imported"

    def mark_tree_source(self, source: str) -> None:
        manifest = self.read_manifest()
        if manifest is None:
            raise RunDirError(f"run dir {self.path} has no manifest.json; prepare it first")
        write_json_atomic(self.manifest, manifest | {TREE_SOURCE: source})

    def read_manifest(self) -> dict[str, Any] | None:
        return _read_mapping(self.manifest, json.loads)

    def read_saved_config(self) -> dict[str, Any] | None:
        """config.yaml as plain data (the resolved config of the last command), or None if absent."""
        return _read_mapping(self.config_file, yaml.safe_load)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.summary, summary)


# ---------------------------------------------------------------- the one reader of the sample journals


def journal_lines(paths: Iterable[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, record) of every journal line with an id, the first line per id across `paths` in order:
    the one reader behind `iter_samples`, `iter_failures`, `journaled_ids`, `Journaled` and the Ray
    blocks. A line without an id (missing, empty, not a string) is skipped by all of them alike: it
    cannot be resumed, de-duplicated against or counted. A runner's failure shards (failures-*.jsonl)
    are read leniently (a bad line in the middle is skipped with a warning), every other journal strictly."""
    seen: set[str] = set()
    for path in paths:
        for record in read_jsonl(path, strict_middle=not path.name.startswith("failures-")):
            sid = record.get("id")
            if isinstance(sid, str) and sid and sid not in seen:
                seen.add(sid)
                yield sid, record


def read_samples(paths: Iterable[Path]) -> Iterator[Sample]:
    """The samples of these journals, once per id; a line that is not a valid sample is skipped."""
    for _, record in journal_lines(paths):
        try:
            yield Sample.from_json(record)
        except RecordError:
            continue


@dataclass
class Journaled:
    """What the journals hold, by id: the requests each took (attempt + 1), for kept samples (a line in
    a sample journal, valid or not) and for failures (an id kept is not failed)."""

    kept: dict[str, int]
    failed: dict[str, int]

    @classmethod
    def read(cls, run_dir: RunDir) -> Journaled:
        return cls.of(run_dir.sample_shards(), run_dir.failure_shards())

    @classmethod
    def of(cls, samples: Iterable[Path], failures: Iterable[Path]) -> Journaled:
        kept = {sid: _requests(record.get("attempt")) for sid, record in journal_lines(samples)}
        failed = {sid: _requests(record.get("attempt")) for sid, record in journal_lines(failures) if sid not in kept}
        return cls(kept, failed)

    @property
    def ids(self) -> set[str]:
        return set(self.kept) | set(self.failed)

    def requests(self, ids: Iterable[str]) -> int:
        return sum(self.kept.get(i, 0) or self.failed.get(i, 0) for i in ids)


def _requests(attempt: object) -> int:
    return attempt + 1 if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 0 else 1


def _read_mapping(path: Path, parse: Callable[[str], Any]) -> dict[str, Any] | None:
    """A JSON/YAML file of the run dir that must hold a mapping: None if absent, RunDirError if broken."""
    if not path.exists():
        return None
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        data = None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is corrupted; restore it or use a new --run-dir")
    return data


def _get(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def _changed_keys(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Keys whose value differs; a key the old config does not have (a setting added by a later
    version) does not count: the run dir was made with that setting's behaviour of its time."""
    return [f"{k}: {_get(old, k)!r} -> {_get(new, k)!r}" for k in keys
            if _has(old, k) and _get(old, k) != _get(new, k)]


def _has(data: dict[str, Any], dotted: str) -> bool:
    """Whether the old config recorded `dotted`: the key itself, or a block above it that was off
    (`generation.judge: null`). Older manifests left null values out: for those, not known."""
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
        if node is None:
            return True
    return True


def fingerprints(config: Config) -> dict[str, str]:
    data = resolved_dict(config)
    return {stage: hashlib.sha256(json.dumps([_get(data, k) for k in keys], sort_keys=True, default=str)
                                  .encode()).hexdigest()[:16] for stage, keys in STAGE_KEYS.items()}
