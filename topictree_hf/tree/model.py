"""The topic tree: nodes with ids stable from their path, root-to-leaf paths, statistics.

`topic_tree.json` is the tree's file format (what `build` copies into the dataset folder):
{"format": "topictree-hf/tree", "version": 1, "root": ..., "nodes": [{id, parent, depth, topic}],
 "failures": [{node, path, reason}], "pruned": [{node, path, reason}], "stats": {...}}; `stats.hygiene`
({reason: count} of topics the builder re-asked for tree hygiene) is absent in files written before it
and reads as {}. `pruned` lists the branches the builder removed because they stopped above the depth
asked (issue 22; `tree.ragged: false`); it is absent in older files and reads as [].
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from topictree_hf.errors import InputFileError

TREE_FORMAT = "topictree-hf/tree"
TREE_VERSION = 1


def node_id(path: Sequence[str]) -> str:
    """Stable id of the node at `path` (root first): sha256 of the path, 16 hex chars."""
    return hashlib.sha256("\x1f".join(path).encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class Node:
    id: str
    parent: str | None
    depth: int
    topic: str


@dataclass(slots=True)
class Failure:
    node: str
    path: list[str]
    reason: str


@dataclass(slots=True)
class Pruned:
    """A node the builder removed: it would have been a leaf above the depth asked."""

    node: str
    path: list[str]
    reason: str


@dataclass
class TopicTree:
    root: str
    nodes: dict[str, Node] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    reasks: int = 0
    engine_calls: int = 0
    # topics the builder's hygiene rejected (and re-asked), by reason: "duplicate in tree", "drift", ...
    hygiene: dict[str, int] = field(default_factory=dict)
    # branches removed because they stopped above the depth asked (`tree.ragged: false`)
    pruned: list[Pruned] = field(default_factory=list)

    @classmethod
    def new(cls, root: str) -> TopicTree:
        tree = cls(root)
        rid = node_id([root])
        tree.nodes[rid] = Node(rid, None, 0, root)
        tree.children[rid] = []
        return tree

    @property
    def root_id(self) -> str:
        return node_id([self.root])

    def add_child(self, parent: str, topic: str) -> Node:
        path = [*self.path(parent), topic]
        nid = node_id(path)
        if nid in self.nodes:
            raise InputFileError(f"duplicate path {' > '.join(path)}; every root-to-leaf path must be unique")
        node = Node(nid, parent, self.nodes[parent].depth + 1, topic)
        self.nodes[nid] = node
        self.children[nid] = []
        self.children[parent].append(nid)
        return node

    def prune(self, nid: str, reason: str) -> str | None:
        """Remove the leaf `nid` (recorded in `pruned`, its failure dropped); returns its parent's id.
        The root is never removed; one left without children is recorded as a failure."""
        node = self.nodes[nid]
        if node.parent is None:
            raise ValueError("the root cannot be pruned")
        if self.children[nid]:
            raise ValueError(f"only a leaf can be pruned, not {' > '.join(self.path(nid))}")
        self.pruned.append(Pruned(nid, self.path(nid), reason))
        self.children[node.parent].remove(nid)
        del self.nodes[nid], self.children[nid]
        self.failures = [f for f in self.failures if f.node != nid]
        root = node.parent == self.root_id
        if root and not self.children[node.parent] and not any(f.node == node.parent for f in self.failures):
            self.failures.append(Failure(node.parent, [self.root], "every child pruned"))  # the root stays: say why
        return node.parent

    def prune_up(self, nid: str, reason: str) -> list[Pruned]:
        """Prune the leaf `nid`, then each parent that this leaves without children (up to, never
        including, the root): a parent emptied so would be a leaf above the depth of its level."""
        done: list[Pruned] = []
        cur: str | None = nid
        while cur is not None and self.nodes[cur].parent is not None and not self.children[cur]:
            cur = self.prune(cur, reason)
            done.append(self.pruned[-1])
            reason = "every child pruned"
        return done

    def path(self, nid: str) -> list[str]:
        out: list[str] = []
        cur: str | None = nid
        while cur is not None:
            node = self.nodes[cur]
            out.append(node.topic)
            cur = node.parent
        return out[::-1]

    def level(self, depth: int) -> list[Node]:
        return [n for n in self.nodes.values() if n.depth == depth]

    @property
    def depth(self) -> int:
        return max(n.depth for n in self.nodes.values())

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes.values() if not self.children[n.id]]

    def leaf_paths(self) -> Iterator[list[str]]:
        for leaf in self.leaves():
            yield self.path(leaf.id)

    def stats(self) -> dict[str, Any]:
        per_level: dict[int, int] = {}
        for n in self.nodes.values():
            per_level[n.depth] = per_level.get(n.depth, 0) + 1
        internal = [n for n in self.nodes.values() if self.children[n.id]]
        branching = sum(len(self.children[n.id]) for n in internal) / len(internal) if internal else 0.0
        return {
            "nodes": len(self.nodes),
            "leaves": len(self.leaves()),
            "depth": self.depth,
            "nodes_per_level": [per_level.get(d, 0) for d in range(self.depth + 1)],
            "effective_branching": round(branching, 3),
            "failures": len(self.failures),
            "pruned": len(self.pruned),
            "reasks": self.reasks,
            "engine_calls": self.engine_calls,
            "hygiene": dict(sorted(self.hygiene.items())),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TREE_FORMAT,
            "version": TREE_VERSION,
            "root": self.root,
            "nodes": [asdict(n) for n in self.nodes.values()],
            "failures": [asdict(f) for f in self.failures],
            "pruned": [asdict(p) for p in self.pruned],
            "stats": self.stats(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tree") -> TopicTree:
        try:
            if data.get("format") != TREE_FORMAT:
                raise KeyError("format")
            tree = cls.new(data["root"])
            for raw in data["nodes"]:
                if raw["parent"] is None:
                    continue
                if raw["parent"] not in tree.nodes:
                    raise KeyError(f"parent of {raw['id']}")
                node = tree.add_child(raw["parent"], raw["topic"])
                if node.id != raw["id"]:
                    raise KeyError(f"id of {raw['topic']}")
            tree.failures = [Failure(**f) for f in data.get("failures", [])]
            tree.pruned = [Pruned(**p) for p in data.get("pruned", [])]  # absent before issue 22
            stats = data.get("stats", {})
            tree.reasks, tree.engine_calls = int(stats.get("reasks", 0)), int(stats.get("engine_calls", 0))
            tree.hygiene = {str(k): int(v) for k, v in stats.get("hygiene", {}).items()}  # absent before issue 15
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputFileError(f"{source} is not a topictree tree file (bad or missing {exc}); "
                                 "rebuild it with `topictree tree` or import paths with --import") from None
        return tree

    def save(self, path: Path) -> None:
        from topictree_hf.journal import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TopicTree:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputFileError(f"tree file {path} does not exist; build one with `topictree tree`") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise InputFileError(f"tree file {path} is not valid JSON; rebuild it with `topictree tree`") from None
        if not isinstance(data, dict):
            raise InputFileError(f"tree file {path} must hold a JSON object; rebuild it with `topictree tree`")
        return cls.from_dict(data, str(path))


def synthetic_tree(root: str, depth: int, degree: int) -> TopicTree:
    """A full tree of made-up topics (`degree`^`depth` leaves), for benchmarks and tests."""
    tree = TopicTree.new(root)
    frontier = [tree.root_id]
    for level in range(1, depth + 1):
        nxt = []
        for parent in frontier:
            for k in range(degree):
                nxt.append(tree.add_child(parent, f"{tree.nodes[parent].topic} / topic {level}.{k}").id)
        frontier = nxt
    return tree
