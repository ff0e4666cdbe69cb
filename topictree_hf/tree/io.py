"""Bring or edit trees: import and export the `{"path": [...]}` JSONL that DeepFabric and
promptwright use, and hand-written outlines (YAML or JSON nested lists/mappings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from topictree_hf.errors import InputFileError
from topictree_hf.tree.model import TopicTree


def export_paths(tree: TopicTree, path: Path) -> int:
    """Write one `{"path": [root, ..., leaf]}` line per leaf; returns the number of lines."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for leaf_path in sorted(tree.leaf_paths()):
            fh.write(json.dumps({"path": leaf_path}, ensure_ascii=False) + "\n")
            n += 1
    return n


def import_paths(path: Path) -> TopicTree:
    """Build a tree from `{"path": [...]}` lines (all paths must share one root)."""
    tree: TopicTree | None = None
    seen: set[tuple[str, ...]] = set()
    for lineno, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            topics = json.loads(line)["path"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputFileError(f"{path} line {lineno} is not a {{\"path\": [...]}} object; fix that line") from None
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) and t.strip() for t in topics):
            raise InputFileError(f"{path} line {lineno}: path must be a non-empty list of non-empty strings")
        topics = [" ".join(t.split()) for t in topics]
        if tuple(topics) in seen:
            raise InputFileError(f"{path} line {lineno} repeats the path {' > '.join(topics)}; remove the duplicate")
        seen.add(tuple(topics))
        if tree is None:
            tree = TopicTree.new(topics[0])
        elif topics[0] != tree.root:
            raise InputFileError(f"{path} line {lineno} has root {topics[0]!r}, not {tree.root!r}; "
                                 "a tree has one root")
        _add_path(tree, topics)
    if tree is None:
        raise InputFileError(f"{path} holds no paths; add lines like {{\"path\": [\"Root\", \"Sub\"]}}")
    return tree


def _add_path(tree: TopicTree, topics: list[str]) -> None:
    parent = tree.root_id
    for topic in topics[1:]:
        existing = next((c for c in tree.children[parent] if tree.nodes[c].topic == topic), None)
        parent = existing if existing is not None else tree.add_child(parent, topic).id


def import_outline(path: Path) -> TopicTree:
    """A hand-written outline: `{Root: [Sub A, {Sub B: [Leaf 1, Leaf 2]}]}` in YAML or JSON."""
    try:
        data = yaml.safe_load(_read(path))  # YAML is a superset of JSON
    except yaml.YAMLError:
        raise InputFileError(f"outline {path} is neither valid YAML nor JSON; fix its syntax") from None
    if not isinstance(data, dict) or len(data) != 1:
        raise InputFileError(f"outline {path} must be a mapping with exactly one root: {{Root: [subtopics]}}")
    (root, children), = data.items()
    tree = TopicTree.new(_topic(root, path))
    _add_outline(tree, tree.root_id, children, path)
    return tree


def _add_outline(tree: TopicTree, parent: str, children: Any, source: Path) -> None:
    if children is None:
        return
    if isinstance(children, dict):
        children = [{k: v} for k, v in children.items()]
    if not isinstance(children, list):
        children = [children]
    for item in children:
        if isinstance(item, dict):
            for name, sub in item.items():
                node = _add_unique(tree, parent, _topic(name, source), source)
                _add_outline(tree, node, sub, source)
        else:
            _add_unique(tree, parent, _topic(item, source), source)


def _add_unique(tree: TopicTree, parent: str, topic: str, source: Path) -> str:
    if any(tree.nodes[c].topic == topic for c in tree.children[parent]):
        path = " > ".join([*tree.path(parent), topic])
        raise InputFileError(f"outline {source} repeats {path}; every path must be unique")
    return tree.add_child(parent, topic).id


def _topic(value: Any, source: Path) -> str:
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise InputFileError(f"outline {source} has an empty or non-text topic ({value!r}); every topic is text")
    return " ".join(str(value).split())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {path} ({exc.__class__.__name__}); pass a UTF-8 text file") from None


def load_any(path: Path) -> TopicTree:
    """A tree from a topic_tree.json, a paths .jsonl, or an outline (.yaml/.yml/.json)."""
    try:
        return _load_any(path)
    except RecursionError:  # "[[[[..." thousands deep: the parsers (and the outline walk) recurse
        raise InputFileError(f"{path} is nested too deeply to be a topic tree; check that it is the right file") \
            from None


def _load_any(path: Path) -> TopicTree:
    if path.suffix == ".jsonl":
        return import_paths(path)
    if path.suffix == ".json":
        try:
            data = json.loads(_read(path))
        except json.JSONDecodeError:
            raise InputFileError(f"{path} is not valid JSON; fix its syntax") from None
        if isinstance(data, dict) and data.get("format") == "topictree-hf/tree":
            return TopicTree.from_dict(data, str(path))
    return import_outline(path)
