"""Which config keys make a run dir's results stale: every config field declares the stages it shapes
(config.Shapes), rundir.STAGE_KEYS is derived from that, and a rerun with a changed stage key in the
same run dir is refused with one line (`--force` goes on), through the library and the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine
from fake_model import FakeModel
from pydantic import Field

from topictree_hf.cli import main
from topictree_hf.config import Config, GenerationConfig, Shapes, field_stages, load_config
from topictree_hf.errors import RunDirError
from topictree_hf.rundir import STAGE_KEYS, RunDir


def test_every_config_field_declares_the_stages_it_shapes() -> None:
    stages = field_stages()
    undeclared = [key for key, declared in stages.items() if declared is None]
    assert not undeclared, (f"config fields without a stage declaration: {undeclared}; annotate each with "
                            "TreeKey/GenKey/BothKey when its value changes what the tree or the samples are, "
                            "else Unstaged (config.py)")
    assert {"generation.judge.threshold", "generation.custom.template", "output.split.by"} <= set(stages), \
        "nested models, optional ones too, are walked into"


def test_a_new_field_without_a_declaration_is_reported() -> None:
    class Generation(GenerationConfig):
        new_knob: int = 3

    class Extended(Config):
        generation: Generation = Field(default_factory=Generation)

    stages = field_stages(Extended)
    assert stages["generation.new_knob"] is None
    assert stages["generation.angles"] == ("generate",)


def test_stage_keys_come_from_the_declarations() -> None:
    assert "generation.angles" in STAGE_KEYS["generate"], "angles changes every prompt"
    assert {"generation.seed", "engine.model", "tree.max_reasks", "tree.max_tokens", "root"} <= set(STAGE_KEYS["tree"])
    assert {"generation.seed", "engine.model", "generation.judge.model"} <= set(STAGE_KEYS["generate"])
    for how in ("tree.force", "engine.batch_size", "engine.backend", "generation.topup_budget", "output.run_dir",
                "hub.repo_id", "name"):
        assert all(how not in keys for keys in STAGE_KEYS.values()), how


def test_a_declaration_names_a_known_stage() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        Shapes(("dataset",))


def with_results(path: Path, **overrides: Any) -> RunDir:
    """A run dir prepared with `overrides` that holds tree and sample results."""
    run = RunDir(path)
    run.prepare(load_config(overrides=overrides))
    run.tree_journal.write_text("", encoding="utf-8")
    run.sample_shard(0).write_text('{"id": "a", "messages": []}\n', encoding="utf-8")
    return run


@pytest.mark.parametrize(("key", "before", "after"), [
    ("generation.angles", True, False),
    ("generation.seed", 1, 2),
    ("tree.max_reasks", 2, 0),
    ("tree.max_tokens", 192, 64),
    ("generation.samples_per_leaf", None, 3),
    ("generation.judge", None, {"threshold": 4}),
])
def test_a_changed_stage_key_is_refused(tmp_path: Path, key: str, before: object, after: object) -> None:
    run = with_results(tmp_path / "run", **{key: before})
    with pytest.raises(RunDirError, match=r"^the config changed since .*; use a new --run-dir, or pass --force") as err:
        run.prepare(load_config(overrides={key: after}))
    assert f"{key}" in str(err.value)
    run.prepare(load_config(overrides={key: after}), force=True)


@pytest.mark.parametrize(("key", "after"), [("generation.topup_budget", 5.0), ("generation.max_retries", 3),
                                            ("engine.batch_size", 4), ("tree.force", True)])
def test_an_unstaged_key_may_change(tmp_path: Path, key: str, after: object) -> None:
    run = with_results(tmp_path / "run")
    run.prepare(load_config(overrides={key: after}))
    assert json.loads(run.manifest.read_text())["config"] == load_config(overrides={key: after}).model_dump(mode="json")


def test_an_older_manifest_without_a_key_is_accepted(tmp_path: Path) -> None:
    """A key the old manifest lacks (added by a later version, or a null an older version left out)
    does not count: the run dir was made with that setting's behaviour of its time."""
    run = with_results(tmp_path / "run")
    manifest = json.loads(run.manifest.read_text())
    del manifest["config"]["generation"]["angles"]
    del manifest["config"]["generation"]["judge"]
    run.manifest.write_text(json.dumps(manifest))
    run.prepare(load_config(overrides={"generation.angles": False, "generation.judge": {"threshold": 4}}))
    with pytest.raises(RunDirError, match=r"generation.angles: False -> True"):
        run.prepare(load_config())  # the manifest now records it


def test_the_cli_refuses_angles_changed_on_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  fake_backend: Callable[..., FakeEngine]) -> None:
    fake_backend(FakeModel())
    run_dir = tmp_path / "run"
    common = "root: Jazz\ntree: {depth: 1, degree: 2}\nengine: {backend: fake}\n"
    on, off = tmp_path / "on.yaml", tmp_path / "off.yaml"
    on.write_text(common + "generation: {num_samples: 4, angles: true}\n", encoding="utf-8")
    off.write_text(common + "generation: {num_samples: 4, angles: false}\n", encoding="utf-8")
    assert main(["run", str(on), "--run-dir", str(run_dir), "--no-eval"]) == 0
    journals = {p.name: p.read_bytes() for p in run_dir.glob("*.jsonl")}
    capsys.readouterr()

    assert main(["generate", str(off), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"topictree generate: error: the config changed since {run_dir} was made "
                           "(generation.angles: True -> False); use a new --run-dir, or pass --force to continue "
                           "with the new values")
    assert {p.name: p.read_bytes() for p in run_dir.glob("*.jsonl")} == journals, "nothing written"
    assert main(["generate", str(off), "--run-dir", str(run_dir), "--force"]) == 0
