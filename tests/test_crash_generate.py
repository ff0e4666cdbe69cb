"""SIGKILL during `topictree generate` at three points (and once from outside, at a random moment),
then a rerun: every sample id is journaled exactly once, valid or failed, and the journals equal
those of an uninterrupted run; a torn last line is dropped with a warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from crash_support import TESTS, assert_killed, assert_ok, lines, reference, start_from, topictree

from topictree_hf.config import GenerationConfig
from topictree_hf.generation.allocate import allocate
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

# gen.generated counts completions (one per sample request), gen.batch flush groups (<= batch_size
# records): the 12th completion comes after some flush group was journaled, before the last one
POINTS = ["gen.batch:2", "journal.torn:3", "gen.generated:12"]


def journaled_ids(run: Path) -> list[str]:
    """Ids in the journals as a rerun sees them (a torn last line dropped)."""
    rd = RunDir(run)
    return [s.id for s in rd.iter_samples()] + [f.id for f in rd.iter_failures() if f.id]


def check_complete(run: Path, ref_samples: dict, ref_failures: dict, before: list[str]) -> None:
    samples, failures = lines(run / "samples-00000.jsonl"), lines(run / "failures.jsonl")
    ids = [r["id"] for r in samples + failures]
    assert len(ids) == len(set(ids)), "an id journaled twice"
    tree = TopicTree.load(run / "topic_tree.json")
    gen = GenerationConfig.model_validate(yaml.safe_load((run.parent / "c.yaml").read_text())["generation"])
    expected = set(ref_samples) | set(ref_failures)  # the allocation and the top-ups of an uninterrupted run
    assert {t.id for t in allocate(tree, gen)} <= expected
    assert set(ids) == expected, "ids missing or extra"
    assert {r["id"]: r for r in samples} == ref_samples
    assert {r["id"]: r for r in failures} == ref_failures
    assert set(before) <= set(ids)
    summary = json.loads((run / "summary.json").read_text())["generation"]
    assert summary["resumed"] == len(before)
    assert summary["resumed"] + summary["valid"] + summary["failed"] == len(expected)


@pytest.mark.parametrize("point", POINTS)
def test_generate_resumes_after_sigkill(point: str, tmp_path: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    ref = reference(tmp_path_factory)
    run = start_from(ref, ref.after_tree, tmp_path)
    args = ["generate", "c.yaml", "--run-dir", str(run)]
    assert_killed(topictree(args, tmp_path, crash_at=point))

    torn = point.startswith("journal.torn")
    ends = [p.read_bytes().endswith(b"\n") for p in (run / "samples-00000.jsonl", run / "failures.jsonl")
            if p.exists() and p.stat().st_size]
    assert (not all(ends)) is torn
    before = journaled_ids(run)  # raises on a line that is bad in the middle
    assert 0 < len(before) < len(ref.samples()) + len(ref.failures())
    assert len(before) == len(set(before))

    rerun = topictree(args, tmp_path)
    assert_ok(rerun)
    assert ("torn last line" in rerun.stderr) is torn
    check_complete(run, ref.samples(), ref.failures(), before)


def test_generate_resumes_after_sigkill_from_outside(tmp_path: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """No crash point: the test kills the process itself once the first flush group is journaled."""
    ref = reference(tmp_path_factory)
    proc, run, args = generate_until_first_flush(ref, tmp_path)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()  # type: ignore[union-attr]
    before = journaled_ids(run)
    assert 0 < len(before) < len(ref.samples()) + len(ref.failures())
    assert_ok(topictree(args, tmp_path))
    check_complete(run, ref.samples(), ref.failures(), before)


def test_sigterm_stops_like_ctrl_c_and_the_rerun_resumes(tmp_path: Path,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """`kill PID` (SIGTERM) runs the same clean-up as Ctrl-C: exit 130, one line, engine closed."""
    ref = reference(tmp_path_factory)
    proc, run, args = generate_until_first_flush(ref, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "topictree generate: interrupted; rerun the same command to resume"
    before = journaled_ids(run)
    assert 0 < len(before) < len(ref.samples()) + len(ref.failures())
    assert_ok(topictree(args, tmp_path))
    check_complete(run, ref.samples(), ref.failures(), before)


def generate_until_first_flush(ref: Any, tmp_path: Path) -> tuple[subprocess.Popen[str], Path, list[str]]:
    """`topictree generate` in a real process (scripted model, slowed down), returned running once its
    first flush group is journaled: the moment to stop it from outside."""
    run = start_from(ref, ref.after_tree, tmp_path)
    args = ["generate", "c.yaml", "--run-dir", str(run)]
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1", "FAKE_FLAKY": "1", "FAKE_DELAY": "0.05"}
    env.pop("TOPICTREE_CRASH_AT", None)
    proc = subprocess.Popen([sys.executable, str(TESTS / "fake_cli.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shard = run / "samples-00000.jsonl"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not (shard.exists() and shard.stat().st_size):
        time.sleep(0.01)
    assert proc.poll() is None, f"generate ended before it could be stopped: {proc.stderr.read()}"  # type: ignore[union-attr]
    return proc, run, args
