"""Level-synchronous tree expansion: every node of one depth is expanded in ONE engine call, and the
nodes that came back short are re-asked together, so a depth-D tree costs D calls plus a bounded
number of re-ask rounds, never one call per node.

Tree hygiene (issue 15, docs/quality.md): after `clean.judge`'s checks (length, placeholder, sibling
duplicate, equal to an ancestor) every candidate must pass, cheapest first,

- the global index: its `topic_key` is not taken anywhere in the tree, nor by a topic accepted
  earlier in this level ("duplicate in tree: 'A > B'"), so a topic appears once in the whole tree;
- `restates`: it says more than its root, parent and path ("restates root: 'Historical Events'");
- near-synonyms among its siblings and cousins (`similar`, a `SemanticMatcher`; `tree.dedup: semantic`);
- drift off its path (`drift`, a `DriftChecker`; `tree.drift`);
- placement (`placement`, a `PlacementChecker` on the drift checker's embeddings; `tree.placement`):
  not a peer of its parent ("Chinese Cuisine" under "Indian Cuisine") and still on the root's subject.

The embedding checks are batched: each round embeds the candidates of the whole level in one call,
never one per node. A rejected topic goes back to its node's next re-ask prompt with the reason,
and rejections are counted per reason (`TopicTree.hygiene`, the stable text before the colon).

Filling a level (issue 22): every call asks for `tree.spare` more candidates than the node still
needs and keeps the first valid ones; a re-ask lists the topics the whole level already holds. A
node still short after the re-asks gets one last, wider prompt; one left without any child would be
a leaf above the depth asked, so it is pruned (`TopicTree.pruned`; its parent too if that empties
it) unless `tree.ragged` keeps it. The sample allocation spreads over the leaves that remain.

Each completed level is one line in `tree.jsonl` (children, failures, pruned nodes, calls, hygiene
counts, every refused proposal); a rerun replays the journal, rebuilds the global index, and
resumes after the last complete level.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from topictree_hf import faults
from topictree_hf.config import TreeConfig
from topictree_hf.engines.base import ChatRequest, Engine, SamplingParams
from topictree_hf.errors import ModelNotFoundError
from topictree_hf.journal import Journal, read_jsonl
from topictree_hf.textparse import valid_unicode
from topictree_hf.tree.clean import clean_topic, judge, parse_subtopics
from topictree_hf.tree.drift import DriftChecker
from topictree_hf.tree.hygiene import GlobalTopicIndex, near_synonym, restates
from topictree_hf.tree.model import Failure, Node, TopicTree
from topictree_hf.tree.placement import PlacementChecker
from topictree_hf.tree.prompts import expansion_messages, expansion_schema
from topictree_hf.tree.semantic import SemanticMatcher

logger = logging.getLogger(__name__)
LevelProgress = Callable[[int, int, int], None]  # (depth, nodes done, nodes in level)
Similar = Callable[[str, Sequence[str]], "str | None"]  # (topic, others) -> the one it is too close to

# Rejections that are tree hygiene (counted in TopicTree.hygiene), by the text before the colon;
# format problems (not JSON, length, placeholder, ...) are not counted.
HYGIENE_REASONS = ("duplicate in tree", "duplicate sibling", "same as parent or ancestor", "same as ancestor",
                   "restates root", "restates parent", "restates path", "near-synonym", "drift",
                   "peer of parent", "off subject")
TAKEN_SHOWN = 40  # topics of the level named in a re-ask prompt (cousins first)


def reason_key(reason: str) -> str:
    """The stable part of a rejection reason: "drift: closer to 'Music' ..." -> "drift"."""
    return reason.split(":", 1)[0].strip()


def embedding_checks(config: TreeConfig) -> tuple[SemanticMatcher | None, DriftChecker | None]:
    """The MiniLM checks `config` asks for: near-synonyms (`dedup: semantic`) and drift (`drift`).

    Both use the bundled embedder, loaded once per process (and the drift anchors embedded once per
    process): a tree build pays the load once, then one batched embedding call per re-ask round.
    Where the bundled embedder is not installed they are left out with a warning; the word checks
    (global index, restates) always run."""
    if config.dedup != "semantic" and not config.drift:
        return None, None
    from topictree_hf.embeddings import model_dir

    try:
        model_dir()
    except ModelNotFoundError as exc:
        logger.warning("tree hygiene without embeddings (no near-synonym or drift checks): %s", exc)
        return None, None
    drift = DriftChecker.shared() if config.drift else None
    # with both on, near-synonyms reuse the drift checker's vectors: each text is embedded once
    similar = (SemanticMatcher(config.semantic_threshold, encode=drift.vectors if drift is not None else None)
               if config.dedup == "semantic" else None)
    return similar, drift


class _Verdict(Protocol):
    @property
    def reason(self) -> str | None: ...


class _Checker(Protocol):  # DriftChecker, PlacementChecker
    def score_level(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> Sequence[_Verdict]: ...


@dataclass
class _Pending:
    node: Node
    path: list[str]
    siblings: list[str]
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class TreeBuilder:
    def __init__(self, engine: Engine, config: TreeConfig, seed: int = 42, journal: Path | None = None,
                 similar: Similar | None = None, drift: DriftChecker | None = None,
                 placement: PlacementChecker | None = None) -> None:
        """`similar`: near-synonym check among siblings and cousins (a `SemanticMatcher`; any callable
        `(topic, others) -> too-close topic or None`); `drift`: a `DriftChecker`. Both None: only the
        word checks run (`embedding_checks(config)` makes what the config asks for). `placement`
        defaults to a `PlacementChecker` on the drift checker's embeddings when there is one and
        `tree.placement` is on."""
        self.engine = engine
        self.config = config
        self.seed = seed
        self.journal = journal
        self.similar = similar
        self.drift = drift
        if placement is None and drift is not None and config.placement:
            placement = PlacementChecker(encode=drift.vectors, anchors=drift.anchors)
        self.placement = placement
        self._index = GlobalTopicIndex()

    def build(self, root: str, progress: LevelProgress | None = None) -> TopicTree:
        tree, start = self._replay_levels(root)
        self._index = _topic_index(tree)
        for depth in range(start, self.config.depth):
            frontier = [n for n in tree.level(depth) if not tree.children[n.id] and not self._failed(tree, n)]
            if not frontier:
                break
            record = self._expand_level(tree, frontier, progress)
            if record["pruned"]:  # a pruned topic is free again, as it is on a resume
                self._index = _topic_index(tree)
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
        hygiene: Counter[str] = Counter()
        todo = pending
        rounds = self.config.max_reasks + 1 + (not self.config.ragged)  # + the last, wider try
        for attempt in range(rounds):
            if attempt:
                reasks += 1
            wide = attempt > self.config.max_reasks
            requests = [self._request(p, attempt, self._taken(p, pending) if attempt else [], wide) for p in todo]
            completions = self.engine.generate(requests)
            calls += 1
            answers = [self._parse(p, c.text, c.finish_reason) for p, c in zip(todo, completions, strict=True)]
            flagged = self._score_embeddings(todo, answers)  # the round's embeddings: one batched call each
            self._prime_similar(pending, answers)
            for p, items in zip(todo, answers, strict=True):
                if items is not None:
                    self._absorb(p, items, families[p.node.parent], flagged, hygiene)
            todo = [p for p in todo if len(p.accepted) < self.config.degree]
            if progress is not None:
                progress(depth, len(pending) - len(todo), len(pending))
            if not todo:
                break
        record: dict = {"level": depth, "children": [], "failures": [], "pruned": [], "calls": calls,
                        "reasks": reasks, "hygiene": dict(sorted(hygiene.items())),
                        # every refused proposal, for audits and labelling (replay ignores it)
                        "rejected": [{"parent": p.node.id, "topic": t, "reason": why}
                                     for p in pending for t, why in p.rejected]}
        for p in pending:
            for topic in p.accepted:
                tree.add_child(p.node.id, topic)
                record["children"].append({"parent": p.node.id, "topic": topic})
            if len(p.accepted) < self.config.degree:
                failure = Failure(p.node.id, p.path, _shortfall(p, self.config.degree))
                tree.failures.append(failure)
                record["failures"].append({"node": failure.node, "path": failure.path, "reason": failure.reason})
        if not self.config.ragged:
            record["pruned"] = _prune_stopped(tree, [p.node for p in pending if not p.accepted])
        tree.engine_calls += calls
        tree.reasks += reasks
        _add_counts(tree.hygiene, hygiene)
        return record

    @staticmethod
    def _taken(p: _Pending, pending: Sequence[_Pending]) -> list[str]:
        """What the rest of the level holds, for a re-ask prompt: the topics of the parent's level
        and the children accepted so far, cousins first, at most TAKEN_SHOWN."""
        near = [t for q in pending if q is not p and q.node.parent == p.node.parent for t in q.accepted]
        far = [t for q in pending if q.node.parent != p.node.parent for t in (q.node.topic, *q.accepted)]
        return list(dict.fromkeys(near + far))[:TAKEN_SHOWN]

    def _siblings(self, tree: TopicTree, node: Node) -> list[str]:
        if node.parent is None:
            return []
        return [tree.nodes[c].topic for c in tree.children[node.parent] if c != node.id]

    def _request(self, p: _Pending, attempt: int, taken: Sequence[str] = (), wide: bool = False) -> ChatRequest:
        """Ask for what `p` still needs plus `tree.spare` more: the first valid ones are kept."""
        count = self.config.degree - len(p.accepted) + self.config.spare
        messages = expansion_messages(p.path, count, p.siblings, p.accepted, p.rejected, taken, wide)
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}|{p.node.id}|{attempt}".encode()).digest()[:4], "big")
        params = SamplingParams(temperature=self.config.temperature, top_p=0.95, max_tokens=self.config.max_tokens,
                                seed=seed)
        schema = expansion_schema(count, self.config.min_chars, self.config.max_chars)
        return ChatRequest(messages, params, schema)

    @staticmethod
    def _parse(p: _Pending, text: str, finish: str) -> list[str] | None:
        text = valid_unicode(text)  # rejected text goes back into the re-ask prompt
        items = parse_subtopics(text)
        if items is None:
            p.rejected.append((text[:60], "truncated answer" if finish == "length" else "not JSON with subtopics"))
        return items

    def _candidates(self, p: _Pending, items: Sequence[str]) -> list[str]:
        """The cleaned candidates of one answer that the word checks would let through: what is
        worth embedding."""
        out: dict[str, None] = {}
        for raw in items:
            topic = clean_topic(raw)
            if (self.config.min_chars <= len(topic) <= self.config.max_chars and self._index.contains(topic) is None
                    and restates(topic, p.path) is None):
                out[topic] = None
        return list(out)

    def _score_embeddings(self, todo: Sequence[_Pending],
                          answers: Sequence[list[str] | None]) -> dict[tuple[str, str], str]:
        """Drift and placement verdicts for every candidate of this round, all nodes together (one
        embedding pass): (node id, topic) -> reason. Drift is asked first; placement scores the rest."""
        if self.drift is None and self.placement is None:
            return {}
        keys: list[tuple[str, str]] = []
        items: list[tuple[str, Sequence[str], Sequence[str]]] = []
        for p, answer in zip(todo, answers, strict=True):
            for topic in self._candidates(p, answer or []):
                keys.append((p.node.id, topic))
                items.append((topic, p.path, p.siblings))
        flagged: dict[tuple[str, str], str] = {}
        checkers: list[_Checker | None] = [self.drift, self.placement]
        for checker in checkers:
            rest = [(key, item) for key, item in zip(keys, items, strict=True) if key not in flagged]
            if checker is None or not rest:
                continue
            scores = checker.score_level([item for _, item in rest])
            flagged.update((key, s.reason) for (key, _), s in zip(rest, scores, strict=True) if s.reason is not None)
        return flagged

    def _prime_similar(self, pending: Sequence[_Pending], answers: Sequence[list[str] | None]) -> None:
        """Embed this round's candidates and the level's accepted topics in one call, so the
        near-synonym checks that follow are dot products."""
        prime = getattr(self.similar, "prime", None)
        if prime is None:
            return
        texts = [clean_topic(raw) for answer in answers for raw in answer or []]
        prime([t for t in texts if t] + [t for p in pending for t in p.accepted])

    def _absorb(self, p: _Pending, items: list[str], family: list[_Pending], flagged: dict[tuple[str, str], str],
                hygiene: Counter[str]) -> None:
        def check(topic: str, kept: Sequence[str]) -> str | None:
            reason = self._hygiene(p, topic, kept, family, flagged)
            if reason is None:
                self._index.add(topic, " > ".join([*p.path, topic]))
            return reason

        verdict = judge(items, p.path, p.accepted, self.config.min_chars, self.config.max_chars,
                        self.config.degree - len(p.accepted), check=check)
        p.accepted.extend(verdict.accepted)
        p.rejected.extend(verdict.rejected)
        hygiene.update(key for _, why in verdict.rejected if (key := reason_key(why)) in HYGIENE_REASONS)

    def _hygiene(self, p: _Pending, topic: str, kept: Sequence[str], family: list[_Pending],
                 flagged: dict[tuple[str, str], str]) -> str | None:
        """Why `topic` may not become a child of `p` (cheapest check first), or None."""
        where = self._index.contains(topic)
        if where is not None:
            return f"duplicate in tree: '{where}'"
        reason = restates(topic, p.path)
        if reason is None and self.similar is not None:
            cousins = [t for q in family if q is not p for t in q.accepted]
            reason = near_synonym(self.similar, topic, kept, cousins)
        return reason or flagged.get((p.node.id, topic))

    def _replay(self, root: str) -> TopicTree:
        """The tree as the journal left it."""
        return self._replay_levels(root)[0]

    def _replay_levels(self, root: str) -> tuple[TopicTree, int]:
        """The tree as the journal left it, and how many levels the journal completed (a level whose
        nodes were all pruned still counts)."""
        tree = TopicTree.new(root)
        levels = 0
        if self.journal is None:
            return tree, levels
        for record in read_jsonl(self.journal):
            if record.get("level") != levels:
                logger.warning("%s: ignored an out-of-order level record", self.journal)
                continue
            for child in record["children"]:
                tree.add_child(child["parent"], child["topic"])
            tree.failures.extend(Failure(**f) for f in record["failures"])
            for pruned in record.get("pruned", []):  # absent in journals written before issue 22
                tree.prune(pruned["node"], pruned["reason"])
            tree.engine_calls += int(record.get("calls", 0))
            tree.reasks += int(record.get("reasks", 0))
            _add_counts(tree.hygiene, record.get("hygiene") or {})  # absent in journals written before it
            levels += 1
        return tree, levels


def _topic_index(tree: TopicTree) -> GlobalTopicIndex:
    """Every topic of `tree` once, with where it sits: what a new topic may not repeat."""
    return GlobalTopicIndex.from_topics((n.topic, " > ".join(tree.path(n.id))) for n in tree.nodes.values())


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + int(n)


def _prune_stopped(tree: TopicTree, stopped: Sequence[Node]) -> list[dict]:
    """Remove the nodes that got no child (each would be a leaf above the depth asked) and the
    parents this empties; the removals, in order, for the level record."""
    removed = []
    for node in stopped:
        failure = next((f.reason for f in tree.failures if f.node == node.id), "no valid subtopics")
        removed += tree.prune_up(node.id, f"stopped above the depth asked: {failure}")
    return [asdict(p) for p in removed]


def _shortfall(p: _Pending, degree: int) -> str:
    reasons = sorted({reason_key(why) for _, why in p.rejected}) or ["no answer"]
    return f"got {len(p.accepted)} of {degree} valid subtopics ({'; '.join(reasons)})"
