"""Push contract: a built folder goes to an in-process fake Hub in one commit, and
`load_dataset("user/repo")` through that same fake Hub returns exactly the rows of the folder."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest
from fakehub import TOKEN, FakeHub, serving_fake_hub
from generated_run import make_generated_run
from huggingface_hub import DatasetCard
from synthetic_run import make_synthetic_run

from topictree_hf.cli import main
from topictree_hf.dataset import FEATURES, build_dataset, push_dataset, read_section
from topictree_hf.errors import HubError, InputFileError


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with serving_fake_hub(monkeypatch, tmp_path_factory.mktemp("hf_home_push")) as fake:
        yield fake


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_generated_run(tmp_path / "run")
    return build_dataset(tmp_path / "run", tmp_path / "ds").out


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_then_load_dataset_from_the_hub_returns_the_same_rows(hub: FakeHub, folder: Path,
                                                                   tmp_path: Path) -> None:
    before = snapshot(folder)
    result = push_dataset(folder, "user/history-qa")
    assert result.commit_url and "user/history-qa" in result.commit_url
    assert len(hub.repos["user/history-qa"].commits) == 1  # everything in one commit
    assert set(hub.files("user/history-qa")) == {".gitattributes", *before}
    assert snapshot(folder) == before  # nothing local changed

    local = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "c1"))
    remote = datasets.load_dataset("user/history-qa", cache_dir=str(tmp_path / "c2"))
    assert set(remote) == set(local) == {"train", "test"}
    for split in local:
        assert remote[split].features == FEATURES
        assert remote[split].to_list() == local[split].to_list()
    assert hub.unhandled == []


def test_the_card_on_the_hub_parses_and_points_at_the_repo(hub: FakeHub, folder: Path) -> None:
    push_dataset(folder, "user/history-qa")
    card = DatasetCard.load("user/history-qa", repo_type="dataset")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["task_categories"] == ["text-generation"]
    assert {"synthetic", "topic-tree", "topictree-hf"} <= set(data["tags"])
    assert data["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"},
                                                {"split": "test", "path": "data/test-*"}]
    assert 'load_dataset("user/history-qa")' in read_section(card.content, "load")
    assert "path/to/folder" in read_section((folder / "README.md").read_text(), "load")  # local card as built


def test_a_second_push_removes_stale_shards(hub: FakeHub, tmp_path: Path) -> None:
    make_synthetic_run(tmp_path / "run", depth=2, degree=4, samples_per_leaf=6, content_chars=2000)
    many = build_dataset(tmp_path / "run", tmp_path / "many", max_shard_size=40_000,
                         writer_batch_size=10).out
    few = build_dataset(tmp_path / "run", tmp_path / "few").out
    push_dataset(many, "user/x")
    assert len([p for p in hub.files("user/x") if p.startswith("data/train-")]) > 1
    result = push_dataset(few, "user/x")
    assert result.deleted and all(p.startswith("data/") for p in result.deleted)
    assert sorted(p for p in hub.files("user/x") if p.startswith("data/")) == [
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    rows = datasets.load_dataset("user/x", cache_dir=str(tmp_path / "c"))
    assert rows["train"].num_rows + rows["test"].num_rows == 16 * 6


def test_push_to_a_revision_and_visibility(hub: FakeHub, folder: Path) -> None:
    push_dataset(folder, "user/rev", revision="v1", private=False)
    repo = hub.repos["user/rev"]
    assert not repo.private
    assert "README.md" in repo.branches["v1"] and "README.md" not in repo.branches["main"]


def test_private_by_default_from_generation_yaml(hub: FakeHub, folder: Path) -> None:
    assert push_dataset(folder, "user/p").private is True
    assert hub.repos["user/p"].private


def test_dry_run_lists_files_and_contacts_nothing(hub: FakeHub, folder: Path) -> None:
    result = push_dataset(folder, "user/dry", dry_run=True)
    assert [p for p, _ in result.files] == sorted(snapshot(folder))
    assert result.total_bytes == sum((folder / p).stat().st_size for p, _ in result.files)
    assert hub.requests == []


def test_the_token_never_reaches_logs_messages_or_files(hub: FakeHub, folder: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    push_dataset(folder, "user/t")
    hub.fault = lambda request: _connect_error(request) if "/commit/" in request.url.path else None
    with pytest.raises(HubError) as info:
        push_dataset(folder, "user/t")
    assert hub.seen_authorization  # the token was used ...
    assert TOKEN not in caplog.text and TOKEN not in str(info.value)  # ... and never shown
    assert all(TOKEN.encode() not in data for data in hub.files("user/t").values())
    assert all(TOKEN not in (folder / p).read_text(errors="ignore") for p in snapshot(folder))


def test_a_folder_holding_the_token_is_refused(hub: FakeHub, folder: Path) -> None:
    (folder / "NOTES.md").write_text(f"pushed with HF_TOKEN={TOKEN}\n")
    with pytest.raises(HubError, match="NOTES.md contains your Hub token") as info:
        push_dataset(folder, "user/leak")
    assert TOKEN not in str(info.value)
    assert hub.repos == {}


def _connect_error(request: object) -> Exception:
    from huggingface_hub.utils import httpx

    return httpx.ConnectError("connection reset by peer", request=request)  # type: ignore[arg-type]


def test_network_failure_mid_push_is_one_line_and_changes_nothing_local(hub: FakeHub, folder: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    hub.fault = lambda request: _connect_error(request) if "/commit/" in request.url.path else None
    assert main(["push", str(folder), "user/net"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "network failure while pushing to user/net" in err and "nothing local was changed" in err
    assert snapshot(folder) == before
    assert "README.md" not in hub.files("user/net")  # the commit never landed


def test_cli_push_prints_the_commit_url(hub: FakeHub, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(folder), "user/cli", "--public"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("https://huggingface.co/datasets/user/cli/commit/")
    assert not hub.repos["user/cli"].private


def test_cli_dry_run_lists_every_file(hub: FakeHub, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(folder), "user/cli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for path in snapshot(folder):
        assert path in out
    assert hub.requests == []


@pytest.mark.parametrize(("args", "message"), [
    (["user/ok"], "Not logged in: set HF_TOKEN or run `hf auth login`"),
    (["bad id!"], "invalid repo id 'bad id!'"),
    (["noslash"], "needs a namespace"),
])
def test_bad_push_input_is_one_line_exit_2(hub: FakeHub, folder: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    monkeypatch.delenv("HF_TOKEN")
    before = snapshot(folder)
    assert main(["push", str(folder), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert snapshot(folder) == before
    assert hub.repos == {}


def test_wrong_token_and_foreign_namespace(hub: FakeHub, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubError, match="cannot write to someone-else/x"):
        push_dataset(folder, "someone-else/x")
    monkeypatch.setenv("HF_TOKEN", "hf_wrongwrongwrongwrongwrongwrong00")
    with pytest.raises(HubError, match="Not logged in or the token is invalid"):
        push_dataset(folder, "user/x")


def test_not_a_dataset_folder(hub: FakeHub, tmp_path: Path, folder: Path) -> None:
    with pytest.raises(InputFileError, match="is a run dir, not a dataset folder"):
        push_dataset(tmp_path / "run", "user/x")
    with pytest.raises(InputFileError, match="no such folder"):
        push_dataset(tmp_path / "nope", "user/x")
    (folder / "data" / "train-00000-of-00001.parquet").unlink()
    with pytest.raises(InputFileError, match=r"no data/train-\*\.parquet"):
        push_dataset(folder, "user/x")
    assert hub.requests == []


def test_offline_mode_is_named(hub: FakeHub, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        push_dataset(folder, "user/x")
