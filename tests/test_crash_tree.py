"""SIGKILL during `topictree tree` at three points, then a rerun: the tree comes out identical to an
uninterrupted run's, every level is journaled exactly once, and a torn last line is dropped with a
warning. Real subprocesses (tests/fake_cli.py) die at crash points of topictree_hf/faults.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from crash_support import assert_killed, assert_ok, lines, reference, start_from, topictree, tree_nodes

from topictree_hf.journal import read_jsonl

# point -> levels journaled (complete lines) when the process dies; the tree has levels 0, 1, 2
CASES = {
    "tree.level:1": [0],  # the root's level journaled, nothing after it
    "journal.torn:2": [0],  # level 1's record half written: a torn last line
    "tree.level:3": [0, 1, 2],  # every level journaled, topic_tree.json not yet written
}


@pytest.mark.parametrize("point", list(CASES))
def test_tree_resumes_after_sigkill(point: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                    caplog: pytest.LogCaptureFixture) -> None:
    ref = reference(tmp_path_factory)
    run = start_from(ref, None, tmp_path)
    args = ["tree", "c.yaml", "--run-dir", str(run)]
    assert_killed(topictree(args, tmp_path, crash_at=point))

    journal = run / "tree.jsonl"
    torn = point.startswith("journal.torn")
    assert not (run / "topic_tree.json").exists(), "the tree file appears only when the tree is complete"
    assert journal.read_bytes().endswith(b"\n") is not torn
    with caplog.at_level(logging.WARNING, logger="topictree_hf.journal"):
        kept = [r["level"] for r in read_jsonl(journal)]
    assert kept == CASES[point]
    assert ("dropped a torn last line" in caplog.text) is torn

    rerun = topictree(args, tmp_path)
    assert_ok(rerun)
    assert ("torn last line" in rerun.stderr) is torn
    assert [r["level"] for r in lines(journal)] == [0, 1, 2], "each level exactly once"
    assert lines(journal) == lines(ref.after_tree / "tree.jsonl")
    assert tree_nodes(run) == tree_nodes(ref.after_tree)
