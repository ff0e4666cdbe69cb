"""SIGKILL during `topictree build` at three points, then a rerun: the dataset folder is byte for
byte an uninterrupted build's (every id once), a half-built folder never sits where `load_dataset` or
`push` would read it, the run dir is untouched, and the killed build's temp folders are cleaned up
(a folder being replaced is put back, never lost)."""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_support import assert_killed, assert_ok, lines, read_dataset, reference, start_from, topictree
from synthetic_run import make_synthetic_run

from topictree_hf.cli import main
from topictree_hf.dataset import build_dataset
from topictree_hf.engines import registry

POINTS = ["build.rows:5", "build.staged:1", "build.swap:1"]


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder: Path) -> list[Path]:
    return sorted(p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


@pytest.mark.parametrize("point", POINTS)
def test_build_recovers_after_sigkill(point: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    ref = reference(tmp_path_factory)
    run = start_from(ref, ref.after_generate, tmp_path)
    ds = tmp_path / "ds"
    args = ["build", str(run), "--out", str(ds)]
    swap = point.startswith("build.swap")
    old_rows: list = []
    if swap:  # an older, different dataset is being replaced
        build_dataset(make_synthetic_run(tmp_path / "older", depth=1, degree=2).path, ds)
        old_rows = read_dataset(ds)
        args.append("--overwrite")
    journals = {p.name: p.read_bytes() for p in run.glob("*.jsonl")}

    assert_killed(topictree(args, tmp_path, crash_at=point))
    assert not ds.exists(), "nothing half-built (or half-swapped) where load_dataset would look"
    left = siblings(ds)
    assert left, "the killed build leaves its temp folder behind"
    assert {p.name: p.read_bytes() for p in run.glob("*.jsonl")} == journals, "the run dir is read-only to build"
    if swap:
        moved = [p for p in left if ".old-" in p.name]
        assert len(moved) == 1 and read_dataset(moved[0]) == old_rows
        # a rerun without --overwrite puts the old folder back and refuses, losing nothing
        monkeypatch.setitem(registry._REGISTRY, "fake", lambda cfg: None)  # the run's config names it
        assert main(args[:-1]) == 2
        assert "already exists" in capsys.readouterr().err
        assert read_dataset(ds) == old_rows
        assert "an interrupted build had moved it aside" in caplog.text
        assert siblings(ds) == []

    rerun = topictree(args, tmp_path)
    assert_ok(rerun)
    assert ("left by an interrupted build" in rerun.stderr) is not swap  # swap: cleaned up just above
    rows = read_dataset(ds)
    assert len({r["id"] for r in rows}) == len(rows), "an id twice in the dataset"
    assert rows == read_dataset(ref.dataset)
    assert files(ds) == files(ref.dataset), "byte for byte the folder an uninterrupted build wrote"
    assert {r["id"] for r in rows} == {r["id"] for r in lines(run / "samples-00000.jsonl")}
    assert (ds / "README.md").is_file() and (ds / "topic_tree.json").is_file()
    assert siblings(ds) == [], "temp folders of the killed build are cleaned up"
