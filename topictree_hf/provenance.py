"""Where this copy of topictree-hf came from: its version and, when it can be known, the source
commit (a pip install from a git URL records it in direct_url.json; a checkout, editable or run in
place, has it in .git). Recorded in manifest.json when a run starts, so a dataset card can say
exactly which code made the data until the package is published on an index.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

__version__ = "0.1.0"  # the package's version (topictree_hf.__version__; pyproject reads it here)
DIST = "topictree-hf"


@lru_cache(maxsize=1)
def tool_source() -> dict[str, Any]:
    """{"version": "0.1.0", "commit": "<40 hex>" | None, "dirty": bool} ("dirty": the checkout had
    uncommitted changes to tracked files, so the commit alone does not reproduce it)."""
    found = _installed_commit() or _checkout_commit(Path(__file__).resolve().parent.parent)
    commit, dirty = found if found else (None, False)
    return {"version": __version__, "commit": commit, "dirty": dirty}


def _installed_commit() -> tuple[str, bool] | None:
    """The commit pip recorded for an install from a VCS URL (PEP 610)."""
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
        data = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, json.JSONDecodeError, OSError):
        return None
    commit = (data.get("vcs_info") or {}).get("commit_id") if isinstance(data, dict) else None
    return (commit, False) if isinstance(commit, str) and commit else None


def _checkout_commit(root: Path) -> tuple[str, bool] | None:
    """HEAD of the git checkout the package runs from, and whether tracked files differ from it."""
    if not (root / ".git").exists() or not (root / "topictree_hf").is_dir():
        return None
    try:
        head = _git(root, "rev-parse", "HEAD")
        changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if len(head) != 40:
        return None
    return head, bool(changes)


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()
