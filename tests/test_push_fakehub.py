"""The fake Hub of tests/fakehub.py behaves like the Hub for the calls the push makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakehub import TOKEN, FakeHub, serving_fake_hub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with serving_fake_hub(monkeypatch, tmp_path_factory.mktemp("hf_home_push")) as fake:
        yield fake


def _client_api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=TOKEN)


# -- tests of the fake itself: it must behave like the Hub for the calls we make ----------------

def test_fake_hub_commit_and_read_back(hub: FakeHub, tmp_path: Any) -> None:
    from huggingface_hub import CommitOperationAdd, hf_hub_download

    api = _client_api()
    api.create_repo("user/demo", repo_type="dataset", private=True)
    api.create_repo("user/demo", repo_type="dataset", private=True, exist_ok=True)
    payload = b"PAR1" + bytes(range(256)) * 40
    api.create_commit("user/demo", [CommitOperationAdd("data/x.parquet", payload),
                                    CommitOperationAdd("README.md", b"---\nlicense: mit\n---\nhi\n")],
                      commit_message="add", repo_type="dataset")
    assert sorted(api.list_repo_files("user/demo", repo_type="dataset")) == [".gitattributes", "README.md",
                                                                             "data/x.parquet"]
    local = hf_hub_download("user/demo", "data/x.parquet", repo_type="dataset", cache_dir=tmp_path)
    assert open(local, "rb").read() == payload
    assert hub.repos["user/demo"].private
    assert hub.unhandled == []


def test_fake_hub_refuses_without_token(hub: FakeHub) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as info:
        HfApi(token="hf_wrong_token_000000000000000000000").create_repo("user/demo", repo_type="dataset")
    assert info.value.response.status_code == 401
    assert "user/demo" not in hub.repos
