"""`--model ORG/NAME[@REVISION]` downloads a model the local cache lacks (engines/hub.py), for real, from
a local Hub endpoint (tests/hub_models.py: HF_ENDPOINT on 127.0.0.1). `topictree` runs as a process
with the socket guard of tests/net_guard.py, so nothing but loopback is reachable; every failure is
one line and exit 2; `--offline` (or the user's HF_HUB_OFFLINE=1) keeps the refusal of old.
The end-to-end run on the bundled SmolLM2 served as a Hub repo is in test_hub_download_slow.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hub_models import HubServer, serving, tiny_model_files, topictree, use_endpoint

from topictree_hf.config import Config
from topictree_hf.engines import hub
from topictree_hf.engines.models import resolve_model
from topictree_hf.errors import HubError, ModelNotFoundError, RunDirError
from topictree_hf.rundir import RunDir

REFUSAL = ("model org/tiny is not a local folder and not in the local Hugging Face cache; nothing is downloaded at "
           "run time: fetch it first (`hf download org/tiny`) or pass a local folder")


@pytest.fixture
def server() -> Iterator[HubServer]:
    with serving() as running:
        running.hub.add_model("org/tiny", tiny_model_files())
        running.hub.add_model("org/gated", tiny_model_files(), gated=True)
        yield running


@pytest.fixture
def local_hub(server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """This process downloads from `server` (as the CLI leaves it: HF_HUB_OFFLINE=1, downloads allowed)."""
    use_endpoint(monkeypatch, server.url, tmp_path / "hf")
    monkeypatch.setattr("huggingface_hub.file_download.time.sleep", lambda _s: None)  # retries without a pause
    return server


def head(server: HubServer, repo_id: str = "org/tiny") -> str:
    return server.hub.repos[repo_id].heads["main"]


# ---------------------------------------------------------------- the library


def test_a_hub_model_is_downloaded_once_then_served_from_the_cache(local_hub: HubServer) -> None:
    from huggingface_hub import constants

    source = resolve_model("org/tiny")
    assert source.revision == head(local_hub) and source.path.name == source.revision
    assert (source.path / "model.safetensors").read_bytes() == tiny_model_files()["model.safetensors"]
    assert len(local_hub.downloads("org/tiny")) == 3
    assert constants.HF_HUB_OFFLINE is True, "offline again for everything else once the download is done"
    asked = len(local_hub.hub.requests)
    assert resolve_model("org/tiny") == source
    assert resolve_model(f"org/tiny@{source.revision}") == source
    assert len(local_hub.hub.requests) == asked, "a cached model asks the Hub nothing"


def test_vllm_loads_the_local_snapshot(local_hub: HubServer) -> None:
    from topictree_hf.engines.vllm_engine import model_path

    assert model_path("org/tiny") == str(resolve_model("org/tiny").path)


def test_a_dropped_download_fails_in_one_line_and_the_rerun_resumes_it(local_hub: HubServer) -> None:
    local_hub.cut["model.safetensors"] = 15_000_000
    with pytest.raises(HubError) as err:
        resolve_model("org/tiny")
    message = str(err.value)
    assert "download of model org/tiny stopped" in message and "rerun the same command to resume" in message
    assert "\n" not in message
    del local_hub.cut["model.safetensors"]
    source = resolve_model("org/tiny")
    assert (source.path / "model.safetensors").read_bytes() == tiny_model_files()["model.safetensors"]
    ranges = [r for path, r in local_hub.ranges if path.endswith("/model.safetensors")]
    start = int(ranges[-1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start < 15_000_000, f"the rerun continued from the partial file: {ranges}"


def test_offline_keeps_the_refusal_and_asks_nothing(local_hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub.OFFLINE_VAR, "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("org/tiny")
    assert str(err.value) == REFUSAL
    assert local_hub.hub.requests == []


def test_without_the_cli_the_users_hf_hub_offline_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hub.OFFLINE_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.downloads_refused()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub.downloads_refused()
    monkeypatch.setenv(hub.OFFLINE_VAR, "1")
    assert hub.downloads_refused()


def test_the_run_dir_pins_the_commit_and_a_resume_keeps_it(local_hub: HubServer, tmp_path: Path) -> None:
    config = Config.model_validate({"engine": {"backend": "transformers", "model": "org/tiny"}})
    run = RunDir(tmp_path / "run")
    run.prepare(config)
    manifest = run.read_manifest() or {}
    assert manifest[hub.PINS] == {"org/tiny": head(local_hub)}
    (run.tree_journal).write_text("")  # a stage with results: a resume must load the same weights
    manifest[hub.PINS] = {"org/tiny": "0" * 40}
    run.manifest.write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match=f"name it org/tiny@{'0' * 40} \\(and pass --force\\) to keep"):
        run.prepare(config)
    run.prepare(config, force=True)
    assert (run.read_manifest() or {})[hub.PINS] == {"org/tiny": head(local_hub)}


def test_names_and_pins() -> None:
    assert hub.split_revision("org/m@v1.0") == ("org/m", "v1.0") and hub.split_revision("org/m") == ("org/m", None)
    assert hub.is_hub_id("org/m@abc") and not hub.is_hub_id("bundled:smollm2-135m-instruct")
    assert not hub.is_hub_id("./org/m") and not hub.is_hub_id("a/b/c") and not hub.is_hub_id("org/m.gguf")
    assert hub.pinned_name("org/m@main", {"org/m@main": "c0ffee"}) == "org/m@c0ffee"
    assert hub.pinned_name("org/m", {}) == "org/m"
    manifest = {hub.PINS: {"org/m": "c0ffee"}}
    assert hub.revision_rows(manifest) == [("model revision", "org/m at commit c0ffee")]
    config = Config.model_validate({"engine": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                                              "model": "org/m"}})
    assert hub.run_models(config) == [], "a server's model is not downloaded here"
    config = Config.model_validate({"engine": {"backend": "transformers", "model": "org/m"},
                                    "generation": {"judge": {"model": "org/judge@v2"}}})
    assert hub.run_models(config) == ["org/m", "org/judge@v2"]


def test_generation_yaml_and_the_card_name_the_pinned_commit(generated_run: RunDir, tmp_path: Path) -> None:
    from topictree_hf.dataset import build_dataset

    manifest = generated_run.read_manifest() or {}
    manifest["config"]["engine"]["model"] = "org/m"
    manifest[hub.PINS] = {"org/m": "c0ffee" * 6 + "abcd"}
    generated_run.manifest.write_text(json.dumps(manifest))
    out = build_dataset(generated_run.path, tmp_path / "ds").out
    published = yaml.safe_load((out / "generation.yaml").read_text())
    assert published["engine"]["model"] == "org/m@" + "c0ffee" * 6 + "abcd"
    assert "org/m at commit " + "c0ffee" * 6 + "abcd" in (out / "README.md").read_text()


# ---------------------------------------------------------------- the command line, as a process


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(("model", "cut", "expected"), [
    ("org/nope", None, "model org/nope is not on http://127.0.0.1:"),
    ("org/gated", None, "model org/gated is gated: accept its terms"),
    ("org/tiny", 1_000_000, "the download of model org/tiny stopped"),
])
def test_a_failed_download_is_one_line_and_exit_2(server: HubServer, tmp_path: Path, model: str, cut: int | None,
                                                  expected: str) -> None:
    if cut is not None:
        server.cut["model.safetensors"] = cut
    proc = topictree(server.url, tmp_path, "tree", "--model", model, "--backend", "transformers", "--run-dir", "r")
    assert proc.returncode == 2 and proc.stderr.startswith(f"topictree tree: error: {expected}"), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_no_network_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = topictree(closed_port(), tmp_path, "tree", "--model", "org/tiny", "--backend", "transformers")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot reach http://127.0.0.1:" in proc.stderr and "to download model org/tiny" in proc.stderr


@pytest.mark.parametrize(("before", "after", "env"), [
    (["--offline"], [], {}), ([], ["--offline"], {}), ([], [], {"HF_HUB_OFFLINE": "1"}),
])
def test_offline_refuses_as_before_and_asks_the_hub_nothing(server: HubServer, tmp_path: Path, before: list[str],
                                                           after: list[str], env: dict[str, str]) -> None:
    proc = topictree(server.url, tmp_path, *before, "tree", "--model", "org/tiny", "--backend", "transformers", *after,
                     **env)
    assert proc.returncode == 2 and proc.stderr == f"topictree tree: error: {REFUSAL}\n"
    assert server.hub.requests == []
