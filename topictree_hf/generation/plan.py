"""Plan each leaf's samples before writing them (generation.plan: true).

Inside a leaf, samples written blind to each other repeat each other (docs/diversity.md: every
near-duplicate pair sat inside one leaf). So a leaf's samples are planned first: one batched engine
call per round asks every leaf that needs items for the k distinct things its samples will be about
(plan_prompts.py: a numbered slot per sample, with the angle it will have, and SPARES spare items for
slots whose item is rejected), and each planned item
becomes one sample request (the sample's template gets it as `item`).

The items go through the tree's kind of hygiene before they are used:

    too short / too long         re-asked
    several items in one         two questions, or the list of planned items copied back
    already planned              the same words (normalised) anywhere in the run
    near-synonym                 MiniLM cosine >= SIMILAR to an item planned anywhere in the run
    sibling topic                closer to a sibling leaf's topic than to its own by SIBLING_MARGIN

A rejected slot is re-asked (with the reason and the leaf's items so far) in the next round, at most
REASKS times; a slot still empty after that is given up and its sample is written from its angle
alone. Every slot's outcome (its item, or null when given up) is journaled in plans.jsonl after each
round, so a resumed run re-uses the plan and repeats no plan call; the task plan (topup.py) asks for
more items when a leaf runs short and its next top-up index has none (`plan` again, between streams).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topictree_hf import faults
from topictree_hf.config import GenerationConfig
from topictree_hf.engines.base import Engine
from topictree_hf.generation.allocate import leaf_task
from topictree_hf.generation.plan_prompts import (
    MAX_CHARS,
    MAX_SLOTS,
    MIN_CHARS,
    Slot,
    parse_items,
    plan_messages,
    plan_request,
)
from topictree_hf.generation.prompts import seed_of
from topictree_hf.journal import Journal, read_jsonl
from topictree_hf.tree.model import TopicTree

SIMILAR = 0.86  # cosine at which two planned items ask the same thing (questions on one leaf sit at 0.5-0.8)
SIBLING_MARGIN = 0.05
SPARES = 2  # items asked beyond the slots: a slot whose item is rejected takes a spare instead of a re-ask
SHORT, SHOWN_NEAR = 5, 8  # under SHORT items of its own, a leaf's request shows SHOWN_NEAR of its siblings' items
REASKS = 2  # re-ask rounds before a slot is given up (1 for a top-up's plan: the stream waits for it)
Encode = Callable[[Sequence[str]], Any]
Need = tuple[str, tuple[str, ...], list[int]]  # leaf id, path, the sample indices that need an item
Open = dict[str, tuple[tuple[str, ...], list[Slot]]]  # leaf id -> (path, the slots still without an item)


def default_encode() -> Encode:
    """The bundled MiniLM's `encode` (loaded once per process)."""
    from topictree_hf.embeddings import Embedder

    return Embedder.load().encode


def item_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass
class PlanCounts:
    """What planning cost and gave (the summary's plan_* figures)."""

    calls: int = 0  # engine calls (one per round)
    requests: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    items: int = 0  # slots that got an item
    given_up: int = 0  # slots left without one after REASKS re-asks
    rejected: Counter[str] = field(default_factory=Counter)


class _Index:
    """Every item planned in the run: normalised words and unit vectors (grown in place)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.texts: list[str] = []
        self._vecs = np.zeros((0, 0), dtype=np.float32)

    def nearest(self, vec: np.ndarray) -> tuple[float, str]:
        if not self.texts:
            return 0.0, ""
        sims = self._vecs[: len(self.texts)] @ vec
        best = int(np.argmax(sims))
        return float(sims[best]), self.texts[best]

    def add(self, text: str, vec: np.ndarray) -> None:
        n = len(self.texts)
        if n >= len(self._vecs):
            grown = np.zeros((max(64, 2 * n), vec.shape[0]), dtype=np.float32)
            if n:
                grown[:n] = self._vecs[:n]
            self._vecs = grown
        self._vecs[n] = vec
        self.texts.append(text)
        self.keys.add(item_key(text))


class Planner:
    """The plan of one run dir (see the module docstring): `item(leaf_id, index)` is a sample's planned
    item, `tried` says whether a slot was planned (or given up), `plan(needs)` plans what is missing."""

    def __init__(self, engine: Engine, gen: GenerationConfig, tree: TopicTree, journal: Path,
                 encode: Encode | None = None) -> None:
        self.engine, self.gen, self.tree, self.journal = engine, gen, tree, journal
        self._encode = encode
        self.slots: dict[tuple[str, int], str | None] = {}
        self.counts = PlanCounts()
        self._index = _Index()
        self._paths: dict[str, np.ndarray] = {}  # topic -> vector
        self._vecs: dict[str, np.ndarray] = {}  # this round's items -> vector, until accepted
        for r in read_jsonl(journal):
            if not isinstance(r.get("leaf_id"), str) or not isinstance(r.get("index"), int):
                continue
            item = r.get("item") if isinstance(r.get("item"), str) else None
            self.slots.setdefault((r["leaf_id"], r["index"]), item)
        kept = [t for t in self.slots.values() if t]
        if kept:
            for text, vec in zip(kept, self._vectors(kept), strict=True):
                self._index.add(text, vec)

    def item(self, leaf_id: str, index: int) -> str | None:
        return self.slots.get((leaf_id, index))

    def tried(self, leaf_id: str, index: int) -> bool:
        return (leaf_id, index) in self.slots

    def leaf_items(self, leaf_id: str) -> list[str]:
        return [t for (lid, _), t in sorted(self.slots.items()) if lid == leaf_id and t]

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        if self._encode is None:
            self._encode = default_encode()
        return np.asarray(self._encode(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, needs: Sequence[Need], reasks: int = REASKS) -> int:
        """Plan every slot of `needs` not tried yet, in rounds of one batched engine call (the first, then
        at most `reasks` for the slots rejected); returns the slots planned or given up."""
        open_slots: Open = {}
        for leaf_id, path, indices in needs:
            slots = [self._slot(leaf_id, path, i) for i in sorted(set(indices)) if not self.tried(leaf_id, i)]
            if slots:
                open_slots[leaf_id] = (tuple(path), slots)
        total = sum(len(s) for _, s in open_slots.values())
        rejected: dict[str, list[tuple[str, str]]] = {leaf_id: [] for leaf_id in open_slots}
        for attempt in range(reasks + 1):
            if not open_slots:
                break
            open_slots = self._round(open_slots, rejected, attempt)
        given_up = [(lid, s.index) for lid, (_, slots) in open_slots.items() for s in slots]
        for key in given_up:
            self.slots[key] = None
        self.counts.given_up += len(given_up)
        self._write([{"leaf_id": lid, "index": index, "item": None} for lid, index in given_up])
        return total

    def _slot(self, leaf_id: str, path: tuple[str, ...], index: int) -> Slot:
        task = leaf_task(self.gen, leaf_id, path, index)
        return Slot(index, task.format, task.angle if self.gen.angles else "any aspect of the topic")

    def _round(self, open_slots: Open, rejected: dict[str, list[tuple[str, str]]], attempt: int) -> Open:
        """One engine call: every open slot's leaf asked for its slots plus SPARES more items; the valid
        items fill their slots, a slot whose item is rejected takes the chunk's next valid spare."""
        asks: list[tuple[str, tuple[str, ...], list[Slot]]] = []
        requests = []
        for leaf_id, (path, slots) in open_slots.items():
            for start in range(0, len(slots), MAX_SLOTS):
                chunk = slots[start:start + MAX_SLOTS]
                have = self.leaf_items(leaf_id)
                near = self._sibling_items(leaf_id) if len(have) < SHORT else []
                messages = plan_messages(path, chunk, self._siblings(leaf_id), have, rejected[leaf_id],
                                         self.gen.instructions, SPARES, near)
                seed = seed_of(f"plan|{self.gen.seed}|{leaf_id}|{chunk[0].index}|{attempt}")
                requests.append(plan_request(messages, len(chunk) + SPARES, self.gen.temperature, seed))
                asks.append((leaf_id, path, chunk))
        outs = self.engine.generate(requests)
        self.counts.calls += 1
        self.counts.requests += len(requests)
        self.counts.output_tokens += sum(o.output_tokens for o in outs)
        self.counts.prompt_tokens += sum(o.prompt_tokens for o in outs)
        answers = [parse_items(out.text) for out in outs]
        self._prepare([t for items in answers for t in items or []], [leaf_id for leaf_id, _, _ in asks])
        still: Open = {}
        accepted: list[dict[str, Any]] = []
        for (leaf_id, path, chunk), out, items in zip(asks, outs, answers, strict=True):
            if not items:
                rejected[leaf_id].append((out.text[:60], "not JSON with items"))
            items = items or []
            spares = iter(items[len(chunk):])
            for i, slot in enumerate(chunk):
                text = self._accept(leaf_id, items[i] if i < len(items) else "", rejected)
                while text is None and (spare := next(spares, None)) is not None:
                    text = self._accept(leaf_id, spare, rejected)
                if text is None:
                    still.setdefault(leaf_id, (path, []))[1].append(slot)
                    continue
                self.slots[(leaf_id, slot.index)] = text
                self.counts.items += 1
                accepted.append({"leaf_id": leaf_id, "index": slot.index, "item": text})
        self._write(accepted)
        return still

    def _prepare(self, texts: list[str], leaves: list[str]) -> None:
        """Embed a round's items and the topics their checks compare with, in one call each."""
        topics = {t for leaf_id in leaves if leaf_id in self.tree.nodes
                  for t in [self.tree.nodes[leaf_id].topic, *self._siblings(leaf_id)]}
        self._prime(sorted(topics))
        texts = [t for t in dict.fromkeys(texts) if t not in self._vecs and self._word_check(t) is None]
        if texts:
            self._vecs.update(zip(texts, self._vectors(texts), strict=True))

    def _accept(self, leaf_id: str, text: str, rejected: dict[str, list[tuple[str, str]]]) -> str | None:
        """`text` when it passes every check (it is then in the run's index), else None (reason noted)."""
        if not text:
            self.counts.rejected["missing"] += 1
            return None
        why = self._word_check(text) or self._placement(leaf_id, text, self._vecs[text])
        if why is None:
            self._index.add(text, self._vecs.pop(text))
            return text
        self.counts.rejected[why.split(":")[0]] += 1
        rejected[leaf_id].append((text, why))
        return None

    def _word_check(self, text: str) -> str | None:
        if len(text) < MIN_CHARS:
            return "too short"
        if len(text) > MAX_CHARS:
            return "too long"
        if " | " in text or text.count("?") > 1:  # the "already planned" list echoed, or two items in one
            return "several items in one"
        if item_key(text) in self._index.keys:
            return "already planned"
        return None

    def _placement(self, leaf_id: str, text: str, vec: np.ndarray) -> str | None:
        sim, other = self._index.nearest(vec)
        if sim >= SIMILAR:
            return f"near-synonym: of \"{other[:80]}\""
        siblings = self._siblings(leaf_id)
        if siblings:  # the topics alone: a shared path prefix would make every sibling look alike
            own = float(self._topic_vec(self.tree.nodes[leaf_id].topic) @ vec)
            best, sibling = max((float(self._topic_vec(s) @ vec), s) for s in siblings)
            if best > own + SIBLING_MARGIN:
                return f"sibling topic: belongs to \"{sibling}\""
        return None

    def _prime(self, topics: Sequence[str]) -> None:
        missing = [t for t in topics if t not in self._paths]
        if missing:
            self._paths.update(zip(missing, self._vectors(missing), strict=True))

    def _topic_vec(self, topic: str) -> np.ndarray:
        self._prime([topic])
        return self._paths[topic]

    def _sibling_items(self, leaf_id: str) -> list[str]:
        """Items the sibling leaves planned already (shown while this leaf's own list is short)."""
        node = self.tree.nodes.get(leaf_id)
        if node is None or node.parent is None:
            return []
        return [t for c in self.tree.children[node.parent] if c != leaf_id for t in self.leaf_items(c)][:SHOWN_NEAR]

    def _siblings(self, leaf_id: str) -> list[str]:
        node = self.tree.nodes.get(leaf_id)
        if node is None or node.parent is None:
            return []
        return [self.tree.nodes[c].topic for c in self.tree.children[node.parent] if c != leaf_id]

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with Journal(self.journal) as journal:
            journal.write_batch(records)
        faults.crash_point("plan.round")
