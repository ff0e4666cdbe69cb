"""The user's config: YAML into pydantic (extra="forbid"), every bad value one `ConfigError` line that
names the fix, flags (dotted overrides) win over the file, and `topictree init` writes a config that
loads and round-trips."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from topictree_hf.cli import main
from topictree_hf.cli.parser import add_common_flags, overrides
from topictree_hf.config import DEFAULT_MODEL, MAX_LEAVES, SMOLLM2, Config, load_config, resolved_dict
from topictree_hf.engines.models import BUNDLED
from topictree_hf.engines.registry import check_backend, known_backends
from topictree_hf.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str | None = None, **flags: object) -> str:
    """The one-line message that loading this YAML (and these dotted overrides) fails with."""
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as err:
        load_config(path, {k.replace("__", "."): v for k, v in flags.items()})
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_yaml_fills_nested_models(tmp_path: Path) -> None:
    path = write(tmp_path, """
root: Marine Biology
tree: {depth: 3, degree: 4, dedup: exact}
generation: {formats: [qa, chat], num_samples: 40, temperature: 0.3, seed: 7, max_tokens: 128}
engine: {backend: openai, base_url: "http://127.0.0.1:8000/v1", max_concurrency: 8}
output: {run_dir: runs/marine, split: {test_size: 0.2, by: subtree}}
hub: {repo_id: someone/marine, private: false}
""")
    config = load_config(path)
    assert config.root == "Marine Biology"
    assert (config.tree.depth, config.tree.degree) == (3, 4)
    assert config.generation.formats == ["qa", "chat"] and config.generation.seed == 7
    assert config.engine.backend == "openai" and config.engine.max_concurrency == 8
    assert config.output.split.by == "subtree" and config.output.split.test_size == 0.2
    assert config.hub.repo_id == "someone/marine" and config.hub.private is False
    assert config.run_dir == Path("runs/marine")


def test_defaults_without_a_file() -> None:
    config = load_config()
    assert config.engine.backend == "auto" and config.engine.model == DEFAULT_MODEL
    assert DEFAULT_MODEL == "bundled:qwen2.5-coder-0.5b-instruct" and {DEFAULT_MODEL, SMOLLM2} <= set(BUNDLED)
    assert config.run_dir == Path("runs") / "historical-events"
    assert config.dataset_dir == config.run_dir / "dataset"


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing but a comment\n")) == Config()


@pytest.mark.parametrize(("text", "expect"), [
    ("colour: blue\n", "unknown config key 'colour'"),
    ("tree: {dpth: 2}\n", "unknown config key 'tree.dpth'"),
    ("output: {split: {by: row}}\n", "config output.split.by"),
])
def test_unknown_keys_and_values_name_the_key(tmp_path: Path, text: str, expect: str) -> None:
    message = config_error(tmp_path, text)
    assert expect in message and str(tmp_path / "config.yaml") in message


def test_unknown_key_lists_what_is_allowed_there(tmp_path: Path) -> None:
    message = config_error(tmp_path, "tree: {dpth: 2}\n")
    assert "allowed here: depth, degree" in message


@pytest.mark.parametrize(("text", "key"), [
    ("tree: {depth: deep}\n", "tree.depth"),
    ("generation: {temperature: hot}\n", "generation.temperature"),
    ("generation: {formats: qa}\n", "generation.formats"),
    ("engine: {batch_size: [1, 2]}\n", "engine.batch_size"),
])
def test_wrong_type_names_the_key_and_the_value(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, text)
    assert f"config {key}:" in message and "fix that value" in message


@pytest.mark.parametrize("key", ["depth", "degree"])
@pytest.mark.parametrize("value", [0, -3])
def test_depth_and_degree_below_one(tmp_path: Path, key: str, value: int) -> None:
    message = config_error(tmp_path, f"tree: {{{key}: {value}}}\n")
    assert f"config tree.{key}" in message and "greater than or equal to 1" in message and f"(got {value})" in message


def test_unknown_backend_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The config knows no backends (engines sit above it); the CLI checks the name right after loading,
    with the config's one line, before the run dir is made."""
    path = write(tmp_path, "engine: {backend: tensorrt}\n")
    assert load_config(path).engine.backend == "tensorrt"
    assert main(["tree", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"topictree tree: error: config engine.backend: unknown backend 'tensorrt'; choose from "
                    f"{', '.join(known_backends())} (got 'tensorrt') in {path}; fix that value")
    assert "transformers" in line and "vllm" in line and "openai" in line
    assert not (tmp_path / "run").exists(), "nothing written"
    with pytest.raises(ConfigError, match=r"unknown backend 'x'; .* \(got 'x'\) in defaults; fix that value$"):
        check_backend("x")


def test_openai_without_base_url_names_the_flag(tmp_path: Path) -> None:
    message = config_error(tmp_path, "engine: {backend: openai}\n")
    assert "--base-url http://HOST:PORT/v1" in message


def test_base_url_must_be_http(tmp_path: Path) -> None:
    message = config_error(tmp_path, "engine: {backend: openai, base_url: 'localhost:8000'}\n")
    assert "not an http(s) URL" in message and "http://127.0.0.1:8000/v1" in message


@pytest.mark.parametrize("root", ["''", "'   '", "'\t\n'"])
def test_empty_root_names_the_flag(tmp_path: Path, root: str) -> None:
    message = config_error(tmp_path, f"root: {root}\n")
    assert "root topic is empty" in message and "--root" in message


def test_root_whitespace_is_normalised() -> None:
    assert load_config(overrides={"root": "  Roman   Empire \n"}).root == "Roman Empire"


def test_tree_too_large_needs_force(tmp_path: Path) -> None:
    message = config_error(tmp_path, "tree: {depth: 6, degree: 20}\n")  # 64M leaves
    assert f"{MAX_LEAVES:,}" in message and "--force" in message
    forced = load_config(write(tmp_path, "tree: {depth: 6, degree: 20, force: true}\n"))
    assert forced.tree.degree**forced.tree.depth > MAX_LEAVES


def test_tree_at_the_limit_loads_without_force() -> None:
    config = load_config(overrides={"tree.depth": 7, "tree.degree": 10})  # exactly 10M leaves
    assert config.tree.degree**config.tree.depth == MAX_LEAVES


def test_several_errors_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    message = config_error(tmp_path, "tree: {depth: 0, degree: 0}\n")
    assert "config tree.depth" in message and "(and 1 more)" in message


def test_missing_file_names_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; create one with `topictree init .*nope.yaml`"):
        load_config(tmp_path / "nope.yaml")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "root: ok\ntree: {depth: 2\n")
    assert "is not valid YAML" in message and "line " in message


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "root: Jazz\ntree: {depth: 3, degree: 2}\ngeneration: {seed: 1}\n")
    config = load_config(path, {"tree.depth": 1, "generation.seed": 9, "engine.batch_size": 4, "root": None})
    assert config.tree.depth == 1 and config.generation.seed == 9 and config.engine.batch_size == 4
    assert config.tree.degree == 2, "keys without a flag keep the file's value"
    assert config.root == "Jazz", "a flag left unset (None) does not override"


def test_a_flag_value_is_validated_like_the_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, "root: Jazz\n", tree__depth=0)
    assert "config tree.depth" in message


def test_cli_flags_become_overrides(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_common_flags(parser, ["--root", "--depth", "--degree", "--format", "--backend", "--base-url", "--seed"])
    args = parser.parse_args(["--depth", "4", "--format", "qa, chat", "--backend", "openai",
                              "--base-url", "http://127.0.0.1:9000/v1", "--force"])
    flags = overrides(args)
    assert flags == {"tree.depth": 4, "generation.formats": ["qa", "chat"], "engine.backend": "openai",
                     "engine.base_url": "http://127.0.0.1:9000/v1", "tree.force": True}
    config = load_config(write(tmp_path, "root: Jazz\ntree: {depth: 2, degree: 5}\n"), flags)
    assert (config.root, config.tree.depth, config.tree.degree) == ("Jazz", 4, 5)
    assert config.generation.formats == ["qa", "chat"] and config.engine.base_url == "http://127.0.0.1:9000/v1"


def test_init_writes_a_config_that_loads_and_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub" / "topictree.yaml"
    assert main(["init", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    text = path.read_text(encoding="utf-8")
    assert text.count("#") > 10, "the example is commented"
    config = load_config(path)
    assert config == Config(), "the example spells out the defaults"
    assert f"model: {DEFAULT_MODEL}" in text and "backend: auto" in text
    assert any(line.lstrip().startswith("#") and SMOLLM2 in line for line in text.splitlines()), "names the fallback"

    resolved = resolved_dict(config)
    again = write(tmp_path, yaml.safe_dump(resolved, sort_keys=False))
    assert load_config(again) == config
    assert resolved_dict(load_config(again)) == resolved


def test_resolved_config_keeps_the_key_name_not_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    config = load_config(overrides={"engine.backend": "openai", "engine.base_url": "http://127.0.0.1:1/v1",
                                    "engine.api_key_env": "MY_KEY"})
    dumped = yaml.safe_dump(resolved_dict(config))
    assert "api_key_env: MY_KEY" in dumped and "sk-secret-value" not in dumped
