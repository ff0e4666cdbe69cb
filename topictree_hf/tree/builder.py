"""Level-synchronous tree expansion: every node of one depth is expanded in ONE engine call, and the
nodes that came back short are re-asked together, so a depth-D tree costs D calls plus a bounded
number of re-ask rounds, never one call per node.

Each completed level is one line in `tree.jsonl`; a rerun replays the journal and resumes after the
last complete level.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from topictree_hf import faults
from topictree_hf.config import TreeConfig
from topictree_hf.engines.base import ChatRequest, Engine, SamplingParams
from topictree_hf.journal import Journal, read_jsonl
from topictree_hf.textparse import valid_unicode
from topictree_hf.tree.clean import judge, parse_subtopics
from topictree_hf.tree.model import Failure, Node, TopicTree
from topictree_hf.tree.prompts import expansion_messages, expansion_schema

logger = logging.getLogger(__name__)
LevelProgress = Callable[[int, int, int], None]  # (depth, nodes done, nodes in level)


@dataclass
class _Pending:
    node: Node
    path: list[str]
    siblings: list[str]
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class TreeBuilder:
    def __init__(self, engine: Engine, config: TreeConfig, seed: int = 42, journal: Path | None = None,
                 similar: Callable[[str, Sequence[str]], str | None] | None = None) -> None:
        self.engine = engine
        self.config = config
        self.seed = seed
        self.journal = journal
        self.similar = similar

    def build(self, root: str, progress: LevelProgress | None = None) -> TopicTree:
        tree = self._replay(root)
        start = tree.depth if len(tree.nodes) > 1 else 0
        for depth in range(start, self.config.depth):
            frontier = [n for n in tree.level(depth) if not tree.children[n.id] and not self._failed(tree, n)]
            if not frontier:
                break
            record = self._expand_level(tree, frontier, progress)
            if self.journal is not None:
                with Journal(self.journal) as j:
                    j.write_batch([record])
                faults.crash_point("tree.level")
        return tree

    @staticmethod
    def _failed(tree: TopicTree, node: Node) -> bool:
        return any(f.node == node.id for f in tree.failures)

    def _expand_level(self, tree: TopicTree, frontier: list[Node], progress: LevelProgress | None) -> dict:
        depth = frontier[0].depth
        pending = [_Pending(n, tree.path(n.id), self._siblings(tree, n)) for n in frontier]
        families: dict[str | None, list[_Pending]] = {}
        for p in pending:
            families.setdefault(p.node.parent, []).append(p)
        calls = reasks = 0
        todo = pending
        for attempt in range(self.config.max_reasks + 1):
            if attempt:
                reasks += 1
            requests = [self._request(p, attempt) for p in todo]
            completions = self.engine.generate(requests)
            calls += 1
            for p, completion in zip(todo, completions, strict=True):
                self._absorb(p, completion.text, completion.finish_reason, families[p.node.parent])
            todo = [p for p in todo if len(p.accepted) < self.config.degree]
            if progress is not None:
                progress(depth, len(pending) - len(todo), len(pending))
            if not todo:
                break
        record = {"level": depth, "children": [], "failures": [], "calls": calls, "reasks": reasks}
        for p in pending:
            for topic in p.accepted:
                tree.add_child(p.node.id, topic)
                record["children"].append({"parent": p.node.id, "topic": topic})
            if len(p.accepted) < self.config.degree:
                failure = Failure(p.node.id, p.path, _shortfall(p, self.config.degree))
                tree.failures.append(failure)
                record["failures"].append({"node": failure.node, "path": failure.path, "reason": failure.reason})
        tree.engine_calls += calls
        tree.reasks += reasks
        return record

    def _siblings(self, tree: TopicTree, node: Node) -> list[str]:
        if node.parent is None:
            return []
        return [tree.nodes[c].topic for c in tree.children[node.parent] if c != node.id]

    def _request(self, p: _Pending, attempt: int) -> ChatRequest:
        missing = self.config.degree - len(p.accepted)
        messages = expansion_messages(p.path, missing, p.siblings, p.accepted, p.rejected)
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}|{p.node.id}|{attempt}".encode()).digest()[:4], "big")
        params = SamplingParams(temperature=self.config.temperature, top_p=0.95, max_tokens=self.config.max_tokens,
                                seed=seed)
        schema = expansion_schema(missing, self.config.min_chars, self.config.max_chars)
        return ChatRequest(messages, params, schema, kind="subtopics")

    def _absorb(self, p: _Pending, text: str, finish: str, family: list[_Pending]) -> None:
        text = valid_unicode(text)  # rejected text goes back into the re-ask prompt
        items = parse_subtopics(text)
        if items is None:
            p.rejected.append((text[:60], "truncated answer" if finish == "length" else "not JSON with subtopics"))
            return
        similar = None
        if self.similar is not None:
            cousins = [t for q in family if q is not p for t in q.accepted]
            base = self.similar

            def similar(topic: str, kept: Sequence[str]) -> str | None:
                return base(topic, [*kept, *cousins])

        verdict = judge(items, p.path, p.accepted, self.config.min_chars, self.config.max_chars,
                        self.config.degree - len(p.accepted), similar)
        p.accepted.extend(verdict.accepted)
        p.rejected.extend(verdict.rejected)

    def _replay(self, root: str) -> TopicTree:
        tree = TopicTree.new(root)
        if self.journal is None:
            return tree
        for record in read_jsonl(self.journal):
            if record.get("level") != tree.depth:
                logger.warning("%s: ignored an out-of-order level record", self.journal)
                continue
            for child in record["children"]:
                tree.add_child(child["parent"], child["topic"])
            tree.failures.extend(Failure(**f) for f in record["failures"])
            tree.engine_calls += int(record.get("calls", 0))
            tree.reasks += int(record.get("reasks", 0))
        return tree


def _shortfall(p: _Pending, degree: int) -> str:
    reasons = sorted({why for _, why in p.rejected}) or ["no answer"]
    return f"got {len(p.accepted)} of {degree} valid subtopics ({'; '.join(reasons)})"
