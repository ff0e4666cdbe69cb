"""Reading a finished run dir for packaging: its resolved config, its tree, its counts.

Everything here fails with one line naming the run dir and the command that fixes it, because a
build usually runs at the end of a long generation and the user needs to know what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from topictree_hf.config import Config
from topictree_hf.errors import RunDirError
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree


@dataclass(slots=True)
class RunSource:
    run: RunDir
    config: Config
    config_data: dict[str, Any]
    tree: TopicTree
    tool_version: str | None
    summary: dict[str, Any]
    tool_source: dict[str, Any] = field(default_factory=dict)  # version, commit, dirty (provenance.tool_source)

    @property
    def provenance(self) -> dict[str, Any]:
        """What the manifest recorded about the code that made the run: its `tool_source` ({"version",
        "commit", "dirty"}), or for a run dir made before that was recorded, its version alone."""
        return self.tool_source or {"version": self.tool_version}

    @property
    def made_by(self) -> str:
        """Which code made the run, as the card says it everywhere: "0.1.0 (commit 1a2b3c4d5e6f)",
        "..., with local changes)" when the checkout was dirty, the version alone when no commit was
        recorded, "unknown" when not even the version was."""
        return made_with(self.provenance)


def made_with(made_by: dict[str, Any]) -> str:
    """A provenance record (provenance.tool_source) as text; see `RunSource.made_by`."""
    text = str(made_by.get("version") or "unknown")
    commit = made_by.get("commit")
    if isinstance(commit, str) and commit:
        text += f" (commit {commit[:12]}{', with local changes' if made_by.get('dirty') else ''})"
    return text


def load_run(run_dir: Path | str) -> RunSource:
    """Open `run_dir` for packaging, or raise RunDirError saying what is missing."""
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        raise RunDirError(f"run dir {run.path} does not exist; pass the folder `topictree run` wrote "
                          "(runs/<name> by default)")
    manifest = run.read_manifest() or {}
    data = manifest.get("config")
    if not isinstance(data, dict):
        data = run.read_saved_config()
    if data is None:
        raise RunDirError(f"{run.path} is not a topictree run dir (no manifest.json or config.yaml); "
                          "pass the folder `topictree run` wrote")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        loc = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise RunDirError(f"the config saved in {run.path} is not valid for this version of topictree-hf "
                          f"(at {loc or 'top level'}); rerun generation in a new --run-dir") from None
    if not run.tree_file.is_file():
        raise RunDirError(f"run dir {run.path} has no topic_tree.json; build the tree first with "
                          f"`topictree run` (or `topictree tree`) on that run dir")
    tree = TopicTree.load(run.tree_file)
    if not run.sample_shards():
        raise RunDirError(f"run dir {run.path} has no samples-*.jsonl; generate samples first with "
                          "`topictree run` on that run dir")
    made_by = manifest.get("tool_source")
    return RunSource(run, config, data, tree, manifest.get("tool_version"), _read_summary(run),
                     made_by if isinstance(made_by, dict) else {})


def _read_summary(run: RunDir) -> dict[str, Any]:
    """summary.json is informative only (counts for the card): a missing or broken one is skipped."""
    try:
        data = json.loads(run.summary.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
