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

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topictree_hf import faults
from topictree_hf.config import GenerationConfig
from topictree_hf.dedup.semantic import BranchVectors
from topictree_hf.dedup.text import normalize_text
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
from topictree_hf.generation.prompts import NAIVE_ANGLE, seed_of
from topictree_hf.journal import Journal, read_jsonl
from topictree_hf.tree.model import TopicTree
from topictree_hf.tree.vectors import Encode, VectorCache

SIMILAR = 0.86  # cosine at which two planned items ask the same thing (questions on one leaf sit at 0.5-0.8)
SIBLING_MARGIN = 0.05
SPARES = 2  # items asked beyond the slots: a slot whose item is rejected takes a spare instead of a re-ask
SHORT, SHOWN_NEAR = 5, 8  # under SHORT items of its own, a leaf's request shows SHOWN_NEAR of its siblings' items
REASKS = 2  # re-ask rounds before a slot is given up (1 for a top-up's plan: the stream waits for it)
Need = tuple[str, tuple[str, ...], list[int]]  # leaf id, path, the sample indices that need an item
Open = dict[str, tuple[tuple[str, ...], list[Slot]]]  # leaf id -> (path, the slots still without an item)


def default_encode() -> Encode:
    """The bundled MiniLM's `encode` (loaded once per process)."""
    from topictree_hf.embeddings import Embedder

    return Embedder.load().encode


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


class Planner:
    """The plan of one run dir (see the module docstring): `item(leaf_id, index)` is a sample's planned
    item, `tried` says whether a slot was planned (or given up), `plan(needs)` plans what is missing."""

    def __init__(self, engine: Engine, gen: GenerationConfig, tree: TopicTree, journal: Path,
                 encode: Encode | None = None) -> None:
        self.engine, self.gen, self.tree, self.journal = engine, gen, tree, journal
        # every text the checks compare (items, leaf topics) embedded once; the bundled MiniLM by default
        self._embed = VectorCache(encode or (lambda texts: default_encode()(texts)))
        self.slots: dict[str, dict[int, str | None]] = {}  # leaf id -> sample index -> item (None: given up)
        self.counts = PlanCounts()
        self._keys: set[str] = set()  # the normalised words of every item planned in the run
        self._planned = BranchVectors()  # ... and their vectors, labelled with the item
        for r in read_jsonl(journal):
            if isinstance(r.get("leaf_id"), str) and isinstance(r.get("index"), int):
                item = r.get("item") if isinstance(r.get("item"), str) else None
                self.slots.setdefault(r["leaf_id"], {}).setdefault(r["index"], item)
        kept = [t for leaf in self.slots.values() for t in leaf.values() if t]
        for text, vec in zip(kept, self._embed(kept), strict=True):
            self._remember(text, vec)

    def item(self, leaf_id: str, index: int) -> str | None:
        return self.slots.get(leaf_id, {}).get(index)

    def tried(self, leaf_id: str, index: int) -> bool:
        return index in self.slots.get(leaf_id, {})

    def leaf_items(self, leaf_id: str) -> list[str]:
        return [t for _, t in sorted(self.slots.get(leaf_id, {}).items()) if t]

    def _remember(self, text: str, vec: np.ndarray) -> None:
        self._keys.add(normalize_text(text))
        self._planned.add(vec, label=text)

    def _set(self, leaf_id: str, index: int, item: str | None) -> None:
        self.slots.setdefault(leaf_id, {})[index] = item

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
        for lid, index in given_up:
            self._set(lid, index, None)
        self.counts.given_up += len(given_up)
        self._write([{"leaf_id": lid, "index": index, "item": None} for lid, index in given_up])
        return total

    def _slot(self, leaf_id: str, path: tuple[str, ...], index: int) -> Slot:
        task = leaf_task(self.gen, leaf_id, path, index)
        return Slot(index, task.format, task.angle if self.gen.angles else NAIVE_ANGLE)

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
                self._set(leaf_id, slot.index, text)
                self.counts.items += 1
                accepted.append({"leaf_id": leaf_id, "index": slot.index, "item": text})
        self._write(accepted)
        return still

    def _prepare(self, texts: list[str], leaves: list[str]) -> None:
        """Embed a round's items and the topics their checks compare with, in one call."""
        topics = [t for leaf_id in leaves if leaf_id in self.tree.nodes
                  for t in [self.tree.nodes[leaf_id].topic, *self._siblings(leaf_id)]]
        self._embed([*dict.fromkeys(topics), *(t for t in dict.fromkeys(texts) if self._word_check(t) is None)])

    def _accept(self, leaf_id: str, text: str, rejected: dict[str, list[tuple[str, str]]]) -> str | None:
        """`text` when it passes every check (it is then in the run's index), else None (reason noted)."""
        if not text:
            self.counts.rejected["missing"] += 1
            return None
        why = self._word_check(text)
        if why is None:
            vec = self._embed([text])[0]
            why = self._placement(leaf_id, vec)
            if why is None:
                self._remember(text, vec)
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
        if normalize_text(text) in self._keys:
            return "already planned"
        return None

    def _placement(self, leaf_id: str, vec: np.ndarray) -> str | None:
        nearest = self._planned.nearest(vec)
        if nearest is not None and nearest[0] >= SIMILAR:
            return f"near-synonym: of \"{nearest[1][:80]}\""
        siblings = self._siblings(leaf_id)
        if siblings:  # the topics alone: a shared path prefix would make every sibling look alike
            own = float(self._embed([self.tree.nodes[leaf_id].topic])[0] @ vec)
            best, sibling = max((float(s_vec @ vec), s) for s, s_vec in zip(siblings, self._embed(siblings),
                                                                             strict=True))
            if best > own + SIBLING_MARGIN:
                return f"sibling topic: belongs to \"{sibling}\""
        return None

    def _sibling_ids(self, leaf_id: str) -> list[str]:
        node = self.tree.nodes.get(leaf_id)
        if node is None or node.parent is None:
            return []
        return [c for c in self.tree.children[node.parent] if c != leaf_id]

    def _sibling_items(self, leaf_id: str) -> list[str]:
        """Items the sibling leaves planned already (shown while this leaf's own list is short)."""
        return [t for c in self._sibling_ids(leaf_id) for t in self.leaf_items(c)][:SHOWN_NEAR]

    def _siblings(self, leaf_id: str) -> list[str]:
        return [self.tree.nodes[c].topic for c in self._sibling_ids(leaf_id)]

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with Journal(self.journal) as journal:
            journal.write_batch(records)
        faults.crash_point("plan.round")
