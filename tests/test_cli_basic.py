"""The CLI's plumbing: `topictree init`, parser errors, every command's --help, and the mapping of
errors to one line on stderr with exit code 2 (a traceback only under TOPICTREE_DEBUG), in process
through `main([...])` and in a real `python -m topictree_hf` subprocess."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from topictree_hf import __version__
from topictree_hf.cli import commands, main
from topictree_hf.cli.cmd_init import example_config
from topictree_hf.config import load_config
from topictree_hf.errors import ModelNotFoundError


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def exit_code(argv: list[str]) -> int:
    """`main` returns a code, argparse raises SystemExit: either way, the code the shell would see."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_init_then_init_again_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    assert exit_code(["init", str(path)]) == 0
    capsys.readouterr()
    path.write_text("root: Mine\n", encoding="utf-8")

    assert exit_code(["init", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("topictree init: error:") and "already exists; pass --overwrite" in line
    assert path.read_text(encoding="utf-8") == "root: Mine\n", "the user's file is untouched"

    assert exit_code(["init", str(path), "--overwrite"]) == 0
    assert path.read_text(encoding="utf-8") == example_config()


def test_init_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert exit_code(["init", "-"]) == 0
    out = capsys.readouterr().out
    assert out == example_config()
    (tmp_path / "c.yaml").write_text(out, encoding="utf-8")
    assert load_config(tmp_path / "c.yaml").root == "Historical Events"


def test_init_into_an_unwritable_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert exit_code(["init", str(tmp_path / "file" / "c.yaml")]) == 2
    assert "choose a writable path" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "expect"), [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["init", "--bogus"], "unrecognized arguments: --bogus"),
    (["init", "a.yaml", "b.yaml"], "unrecognized arguments: b.yaml"),
    (["tree", "--depth", "zero"], "argument --depth: 'zero' is not an integer"),
    (["tree", "--degree", "0"], "argument --degree: '0' must be at least 1"),
])
def test_parser_errors_are_one_line_exit_2(argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expect in line and "--help" in line


def test_no_command_prints_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([]) == 2
    out = capsys.readouterr().out
    assert "usage: topictree" in out and "examples:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"topictree-hf {__version__}"


def subcommands() -> list[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    for command in commands.COMMANDS:
        command.register(sub)
    return list(sub.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: topictree {command}" in out
    assert "example" in out and f"topictree {command}" in out.split("example", 1)[1]


@pytest.fixture
def boom_command(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """A command `boom` that raises whatever the test puts in the returned list."""
    raised: list[BaseException] = []

    def register(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser("boom")
        p.set_defaults(func=lambda _args: (_ for _ in ()).throw(raised[0]))

    monkeypatch.setattr(commands, "COMMANDS", [*commands.COMMANDS, types.SimpleNamespace(register=register)])
    monkeypatch.delenv("TOPICTREE_DEBUG", raising=False)
    return raised


def test_library_error_becomes_one_line_exit_2(boom_command: list[BaseException],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    boom_command.append(ModelNotFoundError("model path ./x does not exist;\n   pass a local folder"))
    assert exit_code(["boom"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == "topictree boom: error: model path ./x does not exist; pass a local folder"


def test_debug_variable_shows_the_traceback(boom_command: list[BaseException],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    boom_command.append(ModelNotFoundError("model path ./x does not exist"))
    monkeypatch.setenv("TOPICTREE_DEBUG", "1")
    with pytest.raises(ModelNotFoundError):
        main(["boom"])


def test_unexpected_error_is_one_line_exit_1(boom_command: list[BaseException],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    boom_command.append(KeyError("oops"))
    assert exit_code(["boom"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "internal error: KeyError" in line and "TOPICTREE_DEBUG=1" in line


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "topictree_hf", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_subprocess_bad_input_exit_2_one_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("root: x\n")
    done = run_cli("init", "c.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "already exists; pass --overwrite" in one_error_line(done.stderr)
    assert done.stdout == ""

    done = run_cli("init", "--bogus", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments: --bogus" in one_error_line(done.stderr)


def test_subprocess_init_writes_a_loadable_config(tmp_path: Path) -> None:
    done = run_cli("init", "new.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_config(tmp_path / "new.yaml").engine.backend == "auto"
