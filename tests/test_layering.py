"""The import-linter contracts in pyproject.toml (run by `lint-imports` in .ci/run) hold without
exceptions: no contract lists `ignore_imports`, and every top-level module must sit in a layer."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_contracts_list_no_exceptions_and_place_every_module() -> None:
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    assert {c["type"] for c in contracts} >= {"layers", "acyclic_siblings"}
    for contract in contracts:
        assert not contract.get("ignore_imports"), f"contract {contract['id']!r}: fix the import, do not list it"
    layers = next(c for c in contracts if c["type"] == "layers")
    assert layers["exhaustive"] and layers["containers"] == ["topictree_hf"], "a new module must be placed in a layer"
