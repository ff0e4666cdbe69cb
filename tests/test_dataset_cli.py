"""`topictree build`: exit codes, one-line errors, what goes to stdout and stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_run import make_synthetic_run

from topictree_hf.cli import build_parser, main


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_synthetic_run(tmp_path / "run").path


def test_build_prints_the_folder_and_a_summary(run_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(run_dir), "--out", str(tmp_path / "ds")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "ds")
    assert "18 rows (train 16, test 2)" in err


def test_default_out_and_overwrite(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "dataset")
    assert main(["build", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"topictree build: error: {run_dir / 'dataset'} already exists; pass --overwrite to replace it "
                   "or choose another --out")
    assert main(["build", str(run_dir), "--overwrite"]) == 0


@pytest.mark.parametrize("make", ["missing", "empty", "not-a-run"])
def test_bad_run_dirs_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str) -> None:
    target = tmp_path / make
    if make != "missing":
        target.mkdir()
    if make == "not-a-run":
        (target / "notes.txt").write_text("hello")
    assert main(["build", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("topictree build: error: ") and err.count("\n") == 1
    assert not (target / "dataset").exists()


def test_help_has_examples() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("build", "push"):
        help_text = sub.choices[name].format_help()  # type: ignore[union-attr]
        assert "example" in help_text and f"topictree {name} " in help_text


def test_cli_import_stays_light() -> None:
    """`datasets` (and with it huggingface_hub, which reads HF_HUB_OFFLINE at import) loads only when a
    command runs, after the CLI has decided the offline setting."""
    code = ("import sys, topictree_hf.cli.cmd_build, topictree_hf.cli.cmd_push; "
            "print('datasets' in sys.modules, 'huggingface_hub' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
