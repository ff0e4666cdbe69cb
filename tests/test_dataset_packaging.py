"""Packaging: the card templates ship as `topictree_hf.dataset_cards`, builders/ imports the builder,
and the explicit package list in pyproject.toml misses no subpackage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the dev extra installs tomli
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_subpackage_is_listed() -> None:
    setuptools = pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {".".join(d.relative_to(ROOT).parts) for d in (ROOT / "topictree_hf").rglob("*")
               if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.py"))}
    on_disk.add("topictree_hf")
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert setuptools["package-dir"]["topictree_hf.dataset_cards"] == "dataset_cards"
    assert "*.jinja" in setuptools["package-data"]["topictree_hf.dataset_cards"]


def test_templates_and_builder_import_from_the_installed_package() -> None:
    files = resources.files("topictree_hf.dataset_cards")
    assert files.joinpath("dataset_card.md.jinja").is_file()
    import builders
    from topictree_hf.dataset.builder import TopicTreeBuilder

    assert builders.TopicTreeBuilder is TopicTreeBuilder


def test_the_wheel_contains_the_templates(tmp_path: Path) -> None:
    """Built from a copy of the sources, so the repo gets no build/ folder."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("topictree_hf", "builders", "dataset_cards"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "topictree_hf/dataset_cards/dataset_card.md.jinja" in names
    assert "topictree_hf/dataset/builder.py" in names and "builders/__init__.py" in names
    assert not [n for n in names if n.startswith("dataset_cards/")]
