"""Is a folder a complete dataset built by `topictree build`? Checked before push and overwrite.

A push of a half-built or foreign folder would publish something `load_dataset` cannot read (or
read wrongly), and an overwrite of a foreign folder would delete someone's files; both check here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import DatasetCard
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

from topictree_hf.dataset.card import TAGS
from topictree_hf.errors import InputFileError

_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.parquet$")
# Hidden files never belong on the Hub (editor and OS litter, our own temp folders).
IGNORE_PATTERNS = [*DEFAULT_IGNORE_PATTERNS, ".*", "*/.*"]


@dataclass(frozen=True, slots=True)
class DatasetFolder:
    path: Path
    files: list[str]  # what an upload sends, relative posix paths, sorted
    splits: dict[str, list[str]]
    card_text: str

    def size(self, relpath: str) -> int:
        return (self.path / relpath).stat().st_size


def _fail(path: Path, what: str) -> InputFileError:
    return InputFileError(f"{path} is not a dataset folder built by topictree ({what}); "
                          f"run `topictree build RUN_DIR --out {path}` first")


def check_dataset_folder(path: Path | str) -> DatasetFolder:
    """The folder's upload list, or InputFileError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise _fail(path, "no such folder")
    if (path / "manifest.json").is_file() or any(path.glob("samples-*.jsonl")):
        raise InputFileError(f"{path} is a run dir, not a dataset folder; build one first with "
                             f"`topictree build {path}` and push the folder it prints")
    readme = path / "README.md"
    if not readme.is_file():
        raise _fail(path, "no README.md")
    text = readme.read_text(encoding="utf-8", errors="replace")
    try:
        data = DatasetCard(text).data.to_dict()
    except ValueError:
        raise _fail(path, "README.md has no valid YAML header") from None
    splits = _declared_splits(path, data)
    shards = _shards(path)
    for split in splits:
        _check_split(path, split, shards.get(split, {}))
    files = sorted(filter_repo_objects(
        [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()],
        ignore_patterns=IGNORE_PATTERNS))
    return DatasetFolder(path, files, {s: sorted(f"data/{f}" for f in shards.get(s, {}).values())
                                       for s in splits}, text)


def is_dataset_folder(path: Path) -> bool:
    """True when `path` holds a dataset this tool built (safe to replace with --overwrite)."""
    try:
        folder = check_dataset_folder(path)
    except InputFileError:
        return False
    return all(tag in folder.card_text for tag in TAGS)


def _declared_splits(path: Path, data: dict) -> dict[str, list[str]]:
    configs = data.get("configs")
    if not isinstance(configs, list) or not configs:
        raise _fail(path, "README.md declares no configs")
    default = next((c for c in configs if isinstance(c, dict) and c.get("config_name") == "default"), None)
    if default is None or not isinstance(default.get("data_files"), list):
        raise _fail(path, "README.md declares no default config with data_files")
    if "dataset_info" not in data:
        raise _fail(path, "README.md has no dataset_info")
    splits: dict[str, list[str]] = {}
    for entry in default["data_files"]:
        patterns = entry.get("path") if isinstance(entry, dict) else None
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not patterns or not all(isinstance(p, str) and p.startswith("data/") for p in patterns):
            raise _fail(path, "data_files must point into data/")
        splits[str(entry.get("split"))] = patterns
    return splits


def _shards(path: Path) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for file in (path / "data").glob("*.parquet"):
        m = _SHARD.match(file.name)
        if m:
            out.setdefault(m["split"], {})[int(m["i"])] = file.name
    return out


def _check_split(path: Path, split: str, shards: dict[int, str]) -> None:
    if not shards:
        raise _fail(path, f"no data/{split}-*.parquet")
    totals = {int(_SHARD.match(name)["n"]) for name in shards.values()}  # type: ignore[index]
    if len(totals) != 1 or sorted(shards) != list(range(next(iter(totals)))):
        raise _fail(path, f"the data/{split}-*.parquet shards are incomplete")
