"""Shared by tests/test_crash_*.py: run the real CLI in a subprocess with the scripted model
(fake_cli.py), kill it at a crash point (topictree_hf/faults.py), and compare what a rerun leaves
with a run that was never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

TESTS = Path(__file__).resolve().parent
CONFIG = """\
root: Historical Events
tree: {depth: 3, degree: 2}
generation: {num_samples: 24, formats: [qa, chat]}
engine: {backend: fake, batch_size: 4}
"""


def topictree(args: list[str], cwd: Path, crash_at: str | None = None, timeout: float = 120,
              **env: str) -> subprocess.CompletedProcess[str]:
    """`topictree ARGS` in a fresh process with backend `fake` (flaky: re-asks, retries, failures)."""
    environ = {**os.environ, "TOPICTREE_NO_PROGRESS": "1", "FAKE_FLAKY": "1", **env}
    environ.pop("TOPICTREE_CRASH_AT", None)
    if crash_at:
        environ["TOPICTREE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, str(TESTS / "fake_cli.py"), *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def assert_killed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -signal.SIGKILL, f"expected death by SIGKILL, got {proc.returncode}: {proc.stderr}"


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a journal, strictly: a complete file has no torn or unreadable line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends with a torn line"
    return [json.loads(x) for x in data.splitlines()]


def read_dataset(folder: Path) -> list[dict[str, Any]]:
    rows = [row for f in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def tree_nodes(run: Path) -> tuple[list[Any], list[Any]]:
    data = json.loads((run / "topic_tree.json").read_text())
    return sorted((n["id"], n["parent"], n["topic"]) for n in data["nodes"]), data["failures"]


@dataclass
class Reference:
    """One uninterrupted run, and snapshots of its run dir after each stage."""

    root: Path
    after_tree: Path
    after_generate: Path
    dataset: Path

    @property
    def config(self) -> Path:
        return self.root / "c.yaml"

    def samples(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in lines(self.after_generate / "samples-00000.jsonl")}

    def failures(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in lines(self.after_generate / "failures.jsonl")}


_REFERENCE: list[Reference] = []


def reference(tmp_path_factory: Any) -> Reference:
    """Made once per session (three subprocesses), shared by every crash test."""
    if _REFERENCE:
        return _REFERENCE[0]
    root = tmp_path_factory.mktemp("reference")
    (root / "c.yaml").write_text(CONFIG)
    run = root / "run"
    assert_ok(topictree(["tree", "c.yaml", "--run-dir", str(run)], root))
    shutil.copytree(run, root / "after_tree")
    assert_ok(topictree(["generate", "c.yaml", "--run-dir", str(run)], root))
    shutil.copytree(run, root / "after_generate")
    assert_ok(topictree(["build", str(run), "--out", str(root / "ds")], root))
    ref = Reference(root, root / "after_tree", root / "after_generate", root / "ds")
    samples, failures = ref.samples(), ref.failures()
    assert len(samples) >= 12 and failures, "the flaky model must leave both samples and failures"
    assert not set(samples) & set(failures)
    _REFERENCE.append(ref)
    return ref


def start_from(ref: Reference, snapshot: Path | None, tmp: Path) -> Path:
    """A fresh working folder holding the config and (optionally) a copy of a stage's run dir."""
    shutil.copyfile(ref.config, tmp / "c.yaml")
    if snapshot is not None:
        shutil.copytree(snapshot, tmp / "run")
    return tmp / "run"
