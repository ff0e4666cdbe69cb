"""What `topictree run` leaves behind besides the rows: the card's Diversity section filled by the
closing evaluation (`--no-eval` skips it), a Reproduce section that says how to install the exact
code that made the set, and a generation.yaml naming the model an openai server served."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_engine import FakeEngine
from fake_model import FakeModel
from synthetic_run import make_synthetic_run

from topictree_hf import pipeline
from topictree_hf.config import Config
from topictree_hf.dataset.card import read_section
from topictree_hf.dataset.scrub import publishable_config, write_generation_yaml
from topictree_hf.dataset.source import load_run
from topictree_hf.rundir import RunDir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Recorder(pipeline.Watcher):
    def __init__(self) -> None:
        self.evals: list[tuple[dict[str, Any], Path]] = []

    def eval_done(self, result: dict[str, Any], dataset_dir: Path) -> None:
        self.evals.append((result, dataset_dir))


def run(tmp_path: Path, evaluate: bool = True) -> tuple[Path, Recorder]:
    config = Config(tree={"depth": 2, "degree": 2}, generation={"num_samples": 8, "formats": ["qa"]},
                    output={"run_dir": str(tmp_path / "run"), "dataset_dir": str(tmp_path / "ds")})
    watcher = Recorder()
    result = pipeline.run_all(config, RunDir(tmp_path / "run"), lambda: nullcontext(FakeEngine(FakeModel())),
                              watcher, evaluate=evaluate)
    return result.out, watcher


def test_run_ends_with_the_evaluation_in_the_card(tmp_path: Path) -> None:
    out, watcher = run(tmp_path)
    [(result, where)] = watcher.evals
    assert where == out and result["samples"] == 8
    section = read_section((out / "README.md").read_text(encoding="utf-8"), "diversity")
    assert section is not None and "Not measured yet" not in section
    assert "near-duplicates" in section and "Vendi score" in section and "topictree eval DATASET_DIR" in section


def test_no_eval_leaves_the_section_for_a_later_eval(tmp_path: Path) -> None:
    out, watcher = run(tmp_path, evaluate=False)
    assert watcher.evals == []
    section = read_section((out / "README.md").read_text(encoding="utf-8"), "diversity")
    assert section is not None and "Not measured yet" in section


def test_the_cli_flag_and_the_printed_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_model import register_fake

    from topictree_hf.cli import main
    from topictree_hf.engines.registry import restore_backend

    try:
        register_fake(name="fake-closing")
        args = ["run", "--backend", "fake-closing", "--depth", "1", "--degree", "3", "--samples", "6",
                "--run-dir", str(tmp_path / "r")]
        assert main(args) == 0
        err = capsys.readouterr().err
        assert "eval: 6 samples, exact dup" in err and "Vendi" in err
        assert main([*args, "--no-eval", "--overwrite"]) == 0
        assert "eval:" not in capsys.readouterr().err
    finally:
        restore_backend("fake-closing", None)


@pytest.mark.parametrize("dirty", [False, True])
def test_reproduce_names_the_source_commit_not_a_package_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               dirty: bool) -> None:
    monkeypatch.setattr("topictree_hf.rundir.tool_source",
                        lambda: {"version": "0.1.0", "commit": COMMIT, "dirty": dirty})
    out, _ = run(tmp_path, evaluate=False)
    card = (out / "README.md").read_text(encoding="utf-8")
    reproduce = card.split("## Reproduce", 1)[1].split("\n## ", 1)[0]
    assert f"checkout {COMMIT}" in reproduce and "not on a package index" in reproduce
    assert ("local changes" in reproduce) is dirty
    assert "pypi.org" not in card and 'topictree-hf==' not in card
    assert f"0.1.0 (commit {COMMIT[:12]}" in card  # the header and the generation table say which code


def test_reproduce_without_a_recorded_commit_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("topictree_hf.rundir.tool_source", lambda: {"version": "0.1.0", "commit": None,
                                                                    "dirty": False})
    out, _ = run(tmp_path, evaluate=False)
    reproduce = (out / "README.md").read_text(encoding="utf-8").split("## Reproduce", 1)[1]
    assert "was\n# not recorded" in reproduce and "checkout" not in reproduce.split("## ", 1)[0]


def test_tool_source_of_this_checkout() -> None:
    from topictree_hf.provenance import tool_source

    made_by = tool_source()
    assert made_by["version"]
    if (Path(__file__).resolve().parent.parent / ".git").exists():  # tests run from a checkout here
        assert isinstance(made_by["commit"], str) and len(made_by["commit"]) == 40


def test_generation_yaml_records_the_model_the_openai_server_served(tmp_path: Path) -> None:
    source = load_run(make_synthetic_run(tmp_path / "run").path)
    source.config = source.config.model_copy(
        update={"engine": source.config.engine.model_copy(update={"backend": "openai"})})
    assert publishable_config(source, {"Qwen/Qwen2.5-7B-Instruct"})["engine"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert publishable_config(source, {"a", "b"})["engine"]["model"] == source.config.engine.model  # not one model
    write_generation_yaml(source, tmp_path / "generation.yaml", {"Qwen/Qwen2.5-7B-Instruct"})
    text = (tmp_path / "generation.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text)["engine"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert "the model the server served" in text
    local = load_run(make_synthetic_run(tmp_path / "local").path)  # other backends: the config's model as is
    assert publishable_config(local, {"something-else"})["engine"]["model"] == local.config.engine.model
