"""`--runner local|ray` (with `--ray-address`, `--workers`): every command that runs an engine takes
the same flags, with the same one-line error for Ray flags without `--runner ray`; the pipeline opens
the engine and reports it through the watcher, which the CLI prints."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_model import register_fake

from topictree_hf.cli import build_parser, main
from topictree_hf.cli.parser import runner_of
from topictree_hf.config import DEFAULT_MODEL, Config
from topictree_hf.engines.registry import restore_backend
from topictree_hf.errors import ConfigError
from topictree_hf.pipeline import Watcher, run_tree
from topictree_hf.rundir import RunDir
from topictree_hf.runners.open import RunnerChoice
from topictree_hf.runners.ray_runner import RayOptions

ENGINE_COMMANDS = {"tree": [], "generate": [], "baseline": ["--out", "base"], "run": []}


def argv(command: str, tmp_path: Path, *flags: str) -> list[str]:
    extra = [str(tmp_path / a) if a == "base" else a for a in ENGINE_COMMANDS[command]]
    run_dir = [] if command == "baseline" else ["--run-dir", str(tmp_path / "run")]
    return [command, *run_dir, *extra, *flags]


@pytest.fixture
def fake() -> Iterator[str]:
    register_fake(name="fake-runner")
    yield "fake-runner"
    restore_backend("fake-runner", None)


@pytest.mark.parametrize("command", ENGINE_COMMANDS)
def test_every_engine_command_takes_the_runner_flags(command: str, tmp_path: Path) -> None:
    args = build_parser().parse_args(argv(command, tmp_path, "--runner", "ray", "--workers", "3",
                                          "--ray-address", "auto"))
    assert runner_of(args) == RunnerChoice("ray", RayOptions(address="auto", workers=3))
    assert runner_of(build_parser().parse_args(argv(command, tmp_path))) == RunnerChoice("local")


@pytest.mark.parametrize("command", ENGINE_COMMANDS)
def test_ray_flags_without_the_ray_runner_are_one_line(command: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["--workers", "2"], ["--runner", "local", "--ray-address", "auto"]):
        assert main(argv(command, tmp_path, *flags)) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"topictree {command}: error: --ray-address and --workers apply to the Ray runner; "
                       "add --runner ray")
    assert not (tmp_path / "run").exists() and not (tmp_path / "base").exists(), "nothing written"
    with pytest.raises(SystemExit) as exit_:
        main(argv(command, tmp_path, "--runner", "spark"))
    assert exit_.value.code == 2


@pytest.mark.parametrize("command", ["tree", "baseline"])
def test_ray_runner_without_ray_fails_before_anything_is_written(command: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    assert main(argv(command, tmp_path, "--runner", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'topictree-hf[ray]'" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "base").exists()


def test_the_pipeline_opens_the_engine_and_the_cli_prints_it(fake: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("tree: {depth: 1, degree: 2}\ngeneration: {num_samples: 4}\n", encoding="utf-8")
    common = [str(config), "--backend", fake, "--run-dir", str(tmp_path / "r")]
    assert main(["tree", "--runner", "local", *common]) == 0
    assert main(["generate", *common]) == 0
    err = capsys.readouterr().err
    loading = [line for line in err.splitlines() if line.startswith(("loading ", "model ready"))]
    assert loading[0] == f"loading {DEFAULT_MODEL} on the {fake} backend ...", "the config's model (the default)"
    assert loading[1].startswith("model ready in ") and loading[1].endswith("s (fake-model)")
    assert len(loading) == 4, "one engine per command"
    assert len(list(RunDir(tmp_path / "r").iter_samples())) == 4


def test_a_library_caller_gets_the_events_through_its_watcher(fake: str, tmp_path: Path) -> None:
    class Events(Watcher):
        def __init__(self) -> None:
            self.seen: list[tuple[str, object]] = []

        def engine_loading(self, engine: object, backend: str) -> None:
            self.seen.append(("loading", backend))

        def engine_ready(self, seconds: float, served: str | None) -> None:
            self.seen.append(("ready", served))

    config = Config(tree={"depth": 1, "degree": 2}, engine={"backend": fake}, output={"run_dir": str(tmp_path)})
    events = Events()
    tree = run_tree(config, RunDir(tmp_path), watcher=events)  # no runner: the config's engine, here
    assert len(tree.leaves()) == 2 and events.seen == [("loading", fake), ("ready", "fake-model")]
    with pytest.raises(ConfigError, match="unknown runner 'spark'"):
        RunnerChoice("spark")  # type: ignore[arg-type]
