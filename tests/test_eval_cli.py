"""`topictree eval DIR [--baseline DIR2] [--json FILE]`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpora import CARD, templated_records, tree_records, write_dataset_folder, write_run_dir

from topictree_hf.cli import main

FAST = ["--embed-sample", "24"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "run", tree_records(3), [{"id": "x", "reason": "bad json"}])


@pytest.fixture
def baseline_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "naive", templated_records(36), tree=False)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset_folder(tmp_path / "ds", tree_records(3))


def test_run_dir_prints_the_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| metric | better | run |")
    assert "| valid rate (passed format validation) | higher | 97.3% |" in out  # 36 of 37
    assert "| leaf coverage | higher | 100.0% |" in out
    assert "of at most 24 samples: 24 of 36 here" in out


def test_baseline_adds_ratios_and_json(run_dir: Path, baseline_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "out" / "eval.json"
    assert main(["eval", str(run_dir), "--baseline", str(baseline_dir), "--json", str(out_json), *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| metric | better | run | naive | ratio | ahead |")
    exact_row = next(line for line in out.splitlines() if line.startswith("| exact duplicates |"))
    assert exact_row.endswith("| 0.00x | run |")  # fewer duplicates: the run is ahead
    data = json.loads(out_json.read_text())
    assert data["set"]["kind"] == "run" and data["baseline"]["path"] == str(baseline_dir)
    assert data["baseline"]["diversity"]["near_duplicate_rate"] > data["set"]["diversity"]["near_duplicate_rate"]


def test_dataset_folder_gets_the_table_in_its_card(dataset: Path, baseline_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(dataset), *FAST]) == 0
    card = (dataset / "README.md").read_text()
    assert "Not measured yet" not in card
    section = card.split("<!-- topictree:diversity:start -->")[1].split("<!-- topictree:diversity:end -->")[0]
    assert "| metric | better | ds |" in section and "topictree eval DATASET_DIR" in section
    assert card.startswith(CARD.split("<!-- topictree")[0]) and card.endswith("## Example record\n")
    assert "wrote the table into the diversity section" in capsys.readouterr().out
    assert main(["eval", str(dataset), "--baseline", str(baseline_dir), *FAST]) == 0  # rewritten, not appended
    again = (dataset / "README.md").read_text()
    assert again.count("<!-- topictree:diversity:start -->") == 1 and "| ds | naive | ratio | ahead |" in again


def test_no_card_leaves_the_card_alone(dataset: Path) -> None:
    assert main(["eval", str(dataset), "--no-card", *FAST]) == 0
    assert (dataset / "README.md").read_text() == CARD


def test_dataset_folder_without_a_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_dataset_folder(tmp_path / "ds", tree_records(2), card=None)
    assert main(["eval", str(folder), *FAST]) == 0
    assert "has no README.md card" in capsys.readouterr().err


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("topictree eval: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path)]) == 2
    assert "is neither a run dir (samples-*.jsonl) nor a dataset folder" in one_line_error(capsys)


def test_bad_baseline_fails_before_any_work(run_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--baseline", str(tmp_path / "nope")]) == 2
    assert "does not exist" in one_line_error(capsys)


def test_card_without_markers_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_dataset_folder(tmp_path / "ds", tree_records(2), card="# hand-edited card\n")
    assert main(["eval", str(folder)]) == 2
    assert "diversity:start" in one_line_error(capsys)
    assert (folder / "README.md").read_text() == "# hand-edited card\n"


def test_unwritable_json_exits_2(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    assert main(["eval", str(run_dir), "--json", str(tmp_path / "blocker" / "x.json"), *FAST]) == 2
    assert "cannot write" in one_line_error(capsys)


def test_usage_errors_exit_2(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(run_dir), "--embed-sample", "-3"])
    assert exc.value.code == 2 and "must be at least 0 (0 means all samples)" in capsys.readouterr().err


def test_baseline_comparison_is_at_equal_n_and_names_the_arm(run_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A larger baseline is cut to the set's count (seeded), the notes say so, `--unequal` keeps
    all; a baseline run dir names its ablation arm from summary.json."""
    big = write_run_dir(tmp_path / "big", templated_records(60), tree=False)
    (big / "summary.json").write_text(json.dumps({"baseline": "naive+angles"}))
    out_json = tmp_path / "eq.json"
    assert main(["eval", str(run_dir), "--baseline", str(big), "--json", str(out_json), *FAST]) == 0
    out = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert data["set"]["samples"] == data["baseline"]["samples"] == 36
    assert "| run | big (naive+angles) | ratio | ahead |" in out
    assert "Both sets are measured at N = 36 (the larger cut by a seeded pick from 60)" in out
    assert main(["eval", str(run_dir), "--baseline", str(big), "--json", str(out_json), "--unequal", *FAST]) == 0
    assert json.loads(out_json.read_text())["baseline"]["samples"] == 60
    assert "Both sets are measured at N" not in capsys.readouterr().out
