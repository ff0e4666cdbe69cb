"""The count asked for is the count delivered: a generate stage's tasks are the allocation's pending
tasks, then top-ups (new tasks for the leaves still short of their allotment) until every leaf has its
samples or the request budget is spent.

`TaskPlan` is the task source of one stage. It is an iterator that may say "nothing now"
(StopIteration) and yield again later, which is what `Engine.stream` polls:

    pending allocation tasks (not journaled yet), in allocation order
    then, while some leaf has  valid + outstanding < allotted  and requests sent < budget:
        the leaf's next sample index past its allotment (new id, angle and seed: allocate.leaf_task),
        leaves served round-robin in the order they fell short, so the per-leaf balance holds

An executor that reports each task's outcome (`settled`: `SampleGenerator.generate_tasks` per task,
the Ray runner per finished block) gets its top-ups in the same stream, as soon as a leaf falls short.
One that does not gets rounds: `generate_pending` rebuilds the plan from the journals after each
`execute` and runs the top-ups of the next round, until nothing is short or the budget is spent.

Deterministic whatever the timing, the runner or a crash in between: a leaf's index j is tried if and
only if fewer than its allotment of the indices before j were kept, so the tried set is the shortest
prefix of indices holding the allotment (given each task's outcome). A rerun rebuilds the state from
the journals (which ids were kept, which failed, how many requests each took) and goes on.

Budget: `generation.topup_budget` x the samples asked for, in generation requests (first tries,
retries and top-ups; judge requests are counted apart). Allocation tasks and their retries always
run; a top-up, or a top-up's retry, only while requests sent < budget.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from topictree_hf.config import GenerationConfig
from topictree_hf.generation.allocate import Task, allocate, leaf_order, leaf_task
from topictree_hf.rundir import Journaled
from topictree_hf.tree.model import TopicTree

MAX_GAP = 256  # top-up indices in a row with nothing journaled before the search for journaled ones stops
Ready = Callable[[str, int], bool]  # (leaf id, sample index) -> the sample may be asked now (its plan exists)
Need = tuple[str, tuple[str, ...], list[int]]  # leaf id, path, sample indices


@dataclass
class _Leaf:
    id: str
    path: tuple[str, ...]
    allotted: int
    valid: int = 0
    outstanding: int = 0  # tasks pending or in flight, not settled yet
    next_index: int = 0  # the next top-up index to look at (journaled ones are skipped)
    queued: bool = False

    @property
    def short(self) -> bool:
        return self.valid + self.outstanding < self.allotted


def _from_journals(tree: TopicTree, gen: GenerationConfig, journaled: Journaled
                   ) -> tuple[dict[str, _Leaf], list[Task], set[str], int]:
    """Where the journals leave the stage: the leaves (kept and pending counted in), the pending
    allocation tasks, the journaled top-up ids (skipped when topping up), the requests journaled."""
    leaves = {leaf_id: _Leaf(leaf_id, path, count, next_index=count) for leaf_id, path, count in leaf_order(tree, gen)}
    done = journaled.ids
    known: set[str] = set()
    pending: list[Task] = []
    for task in allocate(tree, gen):
        known.add(task.id)
        leaf = leaves[task.leaf_id]
        if task.id in journaled.kept:
            leaf.valid += 1
        elif task.id not in done:
            leaf.outstanding += 1
            pending.append(task)
    skip = _match_topups(gen, leaves, journaled, done - known)
    return leaves, pending, skip, journaled.requests(known | skip)


def _match_topups(gen: GenerationConfig, leaves: dict[str, _Leaf], journaled: Journaled,
                  unmatched: set[str]) -> set[str]:
    """The journaled top-up ids (indices past each leaf's allotment), counted into their leaves;
    looked for index by index over all leaves until every journaled id outside the allocation is
    placed, or MAX_GAP indices in a row placed none (ids of another config, after --force)."""
    found: set[str] = set()
    offset = misses = 0
    while unmatched and misses < MAX_GAP:
        hits = 0
        for leaf in leaves.values():
            task = leaf_task(gen, leaf.id, leaf.path, leaf.allotted + offset)
            if task.id in unmatched:
                unmatched.discard(task.id)
                found.add(task.id)
                leaf.valid += task.id in journaled.kept
                hits += 1
        misses = 0 if hits else misses + 1
        offset += 1
    return found


class TaskPlan(Iterator[Task]):
    """The tasks of one generate stage (see the module docstring). It counts what it decides itself
    (`topups`, `requests`, `delivered`, `spent`); the stage reads them into its summary."""

    def __init__(self, tree: TopicTree, gen: GenerationConfig, journaled: Journaled) -> None:
        self.gen, self.tree = gen, tree
        self.leaves, pending, self._skip, self.base_requests = _from_journals(tree, gen, journaled)
        self.asked = sum(leaf.allotted for leaf in self.leaves.values())
        self.budget = max(self.asked, math.ceil(gen.topup_budget * self.asked))
        self._pending: deque[Task] = deque(pending)
        self._pulled = 0
        self._retries = 0
        self.topups = 0  # top-up tasks (indices past a leaf's allotment) handed out
        self._short: deque[_Leaf] = deque()
        for leaf in self.leaves.values():
            self._requeue(leaf)
        self.live = False  # True once an executor reports outcomes (`settled`): top-ups then go in its stream
        self.spent = False  # a top-up or a top-up's retry was refused for want of budget
        self.ready: Ready | None = None  # generation.plan: a top-up waits until its index is planned
        self._waiting: dict[str, _Leaf] = {}  # short leaves whose next top-up index is not planned yet

    # -- the iterator an engine stream polls ------------------------------------------------------

    def __next__(self) -> Task:
        if self._pending:
            self._pulled += 1
            return self._pending.popleft()
        task = self._topup()
        if task is None:
            raise StopIteration  # nothing now: a leaf may fall short later
        self._pulled += 1
        return task

    def _topup(self) -> Task | None:
        while self._short:
            leaf = self._short.popleft()
            leaf.queued = False
            if not leaf.short:
                continue
            if not self.budget_left():
                self.spent = True
                self._short.appendleft(leaf)
                leaf.queued = True
                return None
            while True:
                task = leaf_task(self.gen, leaf.id, leaf.path, leaf.next_index)
                if task.id not in self._skip:
                    break
                leaf.next_index += 1
            if self.ready is not None and not self.ready(leaf.id, task.index):
                self._waiting[leaf.id] = leaf  # asked for again once planned (`planned`)
                continue
            leaf.next_index += 1
            leaf.outstanding += 1
            self.topups += 1
            self._requeue(leaf)  # round-robin: back of the queue if it needs more
            return task
        return None

    def _requeue(self, leaf: _Leaf) -> None:
        if leaf.short and not leaf.queued:
            leaf.queued = True
            self._short.append(leaf)

    # -- generation.plan: the sample indices that need a planned item ----------------------------------

    def slots(self, headroom: Callable[[int], int]) -> list[Need]:
        """Every leaf's pending indices, and for a leaf with any, its next `headroom(allotted)` top-up
        indices (planned ahead, so most top-ups need no plan round of their own)."""
        pending: dict[str, list[int]] = {}
        for task in self._pending:
            pending.setdefault(task.leaf_id, []).append(task.index)
        out = []
        for leaf_id, indices in pending.items():
            leaf = self.leaves[leaf_id]
            out.append((leaf_id, leaf.path, indices + list(range(leaf.next_index,
                                                                  leaf.next_index + headroom(leaf.allotted)))))
        return out

    def waiting(self, headroom: Callable[[int], int]) -> list[Need]:
        """The short leaves whose next top-up index is not planned: that index onwards, enough for what
        each is short of plus `headroom(allotted)`."""
        out = []
        for leaf in self._waiting.values():
            short = max(1, leaf.allotted - leaf.valid - leaf.outstanding)
            count = short + 1 + headroom(leaf.allotted)  # a leaf that fell short once may again
            out.append((leaf.id, leaf.path, list(range(leaf.next_index, leaf.next_index + count))))
        return out

    def planned(self) -> None:
        """The waiting leaves were planned for: back in the top-up queue."""
        waiting, self._waiting = self._waiting, {}
        for leaf in waiting.values():
            self._requeue(leaf)

    # -- what an executor reports -----------------------------------------------------------------

    def settled(self, task: Task, kept: bool) -> None:
        """`task` is finished: kept, or failed for good (its leaf may now be short)."""
        self.live = True
        leaf = self.leaves.get(task.leaf_id)
        if leaf is None:
            return
        leaf.outstanding = max(0, leaf.outstanding - 1)
        leaf.valid += kept
        self._requeue(leaf)

    def count_retries(self, retries: int) -> None:
        """Retries an executor made without asking `may_retry` (Ray's blocks retry inside the block)."""
        self._retries += retries

    def may_retry(self, task: Task) -> bool:
        """An allocation task is always retried (up to max_retries); a top-up only within the budget.
        A retry allowed counts as sent from now on (it is queued), so several settled at once cannot
        all pass the check."""
        leaf = self.leaves.get(task.leaf_id)
        if leaf is None or task.index < leaf.allotted or self.budget_left():
            self._retries += 1
            return True
        self.spent = True
        return False

    # -- the counts -------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Generation requests of the run dir so far: the journaled ones, plus this plan's: the tasks
        handed out and the retries allowed (queued ones included) or reported (`count_retries`: Ray's
        blocks retry without asking, so a block's retries count once it is back)."""
        return self.base_requests + self._pulled + self._retries

    @property
    def queued(self) -> int:
        """Allocation tasks not handed out yet."""
        return len(self._pending)

    @property
    def handed_out(self) -> int:
        """Tasks this plan handed out (allocation and top-ups)."""
        return self._pulled

    def budget_left(self) -> bool:
        return self.requests < self.budget

    @property
    def delivered(self) -> int:
        return sum(min(leaf.valid, leaf.allotted) for leaf in self.leaves.values())

    def short_leaves(self) -> int:
        """Leaves short of their allotment with nothing outstanding (what another round would top up)."""
        return sum(1 for leaf in self.leaves.values() if leaf.short)

    def wanted(self) -> bool:
        """Another round would send something: a leaf is short and the budget is not spent."""
        if self.short_leaves() and not self.budget_left():
            self.spent = True
        return bool(self._pending) or (self.short_leaves() > 0 and self.budget_left())
