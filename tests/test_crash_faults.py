"""The crash-point hook itself (topictree_hf/faults.py): a no-op unless armed, exact when armed, and
a torn write that really tears; plus the cleanup a build does after a killed build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from topictree_hf import faults
from topictree_hf.dataset.layout import _recover_siblings
from topictree_hf.errors import ConfigError
from topictree_hf.journal import Journal, read_jsonl


class Died(Exception):
    pass


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def arm(spec: str | None) -> None:
        monkeypatch.setattr(faults, "_armed", faults._parse(spec))
        monkeypatch.setattr(faults, "_passes", 0)

    monkeypatch.setattr(faults, "die", lambda: (_ for _ in ()).throw(Died()))
    return arm


def test_unset_is_a_no_op(armed, tmp_path: Path) -> None:  # noqa: ANN001
    armed(None)
    for point in faults.POINTS * 3:
        faults.crash_point(point)
    with Journal(tmp_path / "j.jsonl") as journal:
        assert journal.write_batch([{"id": "a"}, {"id": "b"}]) == 2
    assert (tmp_path / "j.jsonl").read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_the_nth_pass_of_the_named_point_dies(armed) -> None:  # noqa: ANN001
    armed("gen.batch:3")
    faults.crash_point("gen.batch")
    faults.crash_point("gen.batch")
    for point in faults.POINTS:
        if point != "gen.batch":
            faults.crash_point(point)
    with pytest.raises(Died):
        faults.crash_point("gen.batch")
    faults.crash_point("gen.batch")  # once only


@pytest.mark.parametrize("spec", ["gen.batch", "gen.batch:0", "nowhere:1", "gen.batch:x"])
def test_a_malformed_value_is_one_line_naming_the_fix(armed, spec: str) -> None:  # noqa: ANN001
    armed(spec)
    with pytest.raises(ConfigError, match=r"TOPICTREE_CRASH_AT=.* is malformed; use <point>:<n>") as info:
        faults.crash_point("tree.level")
    assert "\n" not in str(info.value)


def test_a_torn_write_leaves_half_a_line_that_readers_drop(armed, tmp_path: Path,  # noqa: ANN001
                                                           caplog: pytest.LogCaptureFixture) -> None:
    armed("journal.torn:2")
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.write_batch([{"id": "a"}])
        with pytest.raises(Died):
            journal.write_batch([{"id": "b", "text": "x" * 40}, {"id": "c"}])
    data = path.read_bytes()
    assert data.startswith(b'{"id": "a"}\n{"id": "b"') and not data.endswith(b"\n")
    assert [r["id"] for r in read_jsonl(path)] == ["a"]
    assert "dropped a torn last line" in caplog.text
    with Journal(path) as journal:  # reopening cuts it before appending
        journal.write_batch([{"id": "b"}])
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_torn_write_never_ends_on_a_line_break(armed, tmp_path: Path) -> None:  # noqa: ANN001
    armed("journal.torn:1")
    path = tmp_path / "j.jsonl"
    with path.open("ab") as fh, pytest.raises(Died):
        faults.torn_write(fh, b'{"a": 1}\n{"b": 2}\n')  # 18 bytes: the first half is exactly one line
    assert path.read_bytes() == b'{"a": 1}\n{'


def test_the_env_var_arms_a_fresh_process_and_nothing_else_does() -> None:
    code = "from topictree_hf import faults; faults.crash_point('build.staged'); print('alive')"
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout == "alive\n"
    killed = subprocess.run([sys.executable, "-c", code], env={**env, faults.ENV: "build.staged:1"},
                            capture_output=True, text=True)
    assert killed.returncode == -9 and killed.stdout == ""


def test_the_env_var_is_read_at_the_first_crash_point_not_at_import() -> None:
    """Importing the package reads no environment: what counts is the value when the process first
    passes a crash point, read once then."""
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    imports = ("import os, topictree_hf.pipeline, topictree_hf.cli\n"
               "from topictree_hf import faults\n"
               "assert faults._armed is faults._UNREAD, 'nothing read at import'\n")
    set_after_import = imports + "os.environ[faults.ENV] = 'tree.level:1'\nfaults.crash_point('tree.level')"
    killed = subprocess.run([sys.executable, "-c", set_after_import], env=env, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -9, killed.stderr
    unset_after_import = imports + ("del os.environ[faults.ENV]\nfaults.crash_point('tree.level')\n"
                                    "os.environ[faults.ENV] = 'tree.level:1'  # too late: read at the first pass\n"
                                    "faults.crash_point('tree.level'); print('alive')")
    alive = subprocess.run([sys.executable, "-c", unset_after_import], env={**env, faults.ENV: "tree.level:1"},
                           capture_output=True, text=True, timeout=120)
    assert alive.returncode == 0 and alive.stdout == "alive\n", alive.stderr


def test_a_build_cleans_up_after_a_killed_build_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    target = tmp_path / "ds"
    stale_tmp = tmp_path / f".ds.tmp-{dead}-abcd1234"
    stale_old = tmp_path / f".ds.old-{dead}-abcd1234"
    live = tmp_path / f".ds.tmp-{os.getppid()}-abcd1234"  # a build still running (our parent is alive)
    other = tmp_path / f".dsx.tmp-{dead}-abcd1234"  # another folder's
    for folder in (stale_tmp, stale_old, live, other):
        folder.mkdir()
    (stale_old / "README.md").write_text("the old dataset")
    _recover_siblings(target)
    assert (target / "README.md").read_text() == "the old dataset", "a folder moved aside is put back"
    assert not stale_tmp.exists() and not stale_old.exists()
    assert live.exists() and other.exists()
