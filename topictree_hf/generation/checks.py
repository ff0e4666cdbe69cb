"""The checks a completion goes through before it is kept: a chain of small steps with one interface,
after datatrove's `BaseFilter`. A step's `filter(candidate)` returns True (keep it) or
`(False, reason)`; the chain runs the steps in order, stops at the first rejection and counts it
(under `records.reason_key`), so a step does no bookkeeping and a new step is one small class
(generation/steps.py lists them).

A step may need a model's answer before it can decide (the LLM judge): its `ask(candidate)` returns
that request, the chain stops there (`Ask`), and once the answer is in `candidate.answer` the chain
is run again and goes on from that step. Where the request goes (the stream the sample came from, or
an engine of the step's own: `separate`, answered in groups by `answer`) is the caller's to wire.

A `grouped` step decides for a group of candidates at once, after one pass over all of them (the
semantic dedup embeds them together): the chain stops there (`Wait`) until the caller has run the
step's `prepare` over a group of waiting candidates, then runs each again, in the order they came.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from topictree_hf.engines.base import ChatRequest, Completion
from topictree_hf.generation.stream import Job
from topictree_hf.records import reason_key

Result = bool | tuple[bool, str]


@dataclass(slots=True)
class Candidate:
    """A completion on its way through the checks: what was asked, what came back, what the steps found."""

    job: Job
    request: ChatRequest
    completion: Completion
    messages: list[dict[str, str]] = field(default_factory=list)  # the sample's turns, once validation parsed them
    answer: Completion | None = None  # the answer to the request of the step it waits at
    fields: dict[str, Any] = field(default_factory=dict)  # record fields a step adds (the judge's score and reason)
    prepared: dict[str, Any] | None = None  # what a grouped step's `prepare` left for its `filter`; None: not yet
    step: int = 0  # the next step to run


class Check(ABC):
    """One step of the chain."""

    name: ClassVar[str]
    separate: bool = False  # True: `ask`'s requests go to an engine of the step's own, via `answer`
    grouped: bool = False  # True: `filter` runs only after `prepare` has seen the candidate in a group

    @abstractmethod
    def filter(self, candidate: Candidate) -> Result:
        """True: the candidate passes this step; (False, reason): it is rejected, for that reason."""

    def ask(self, candidate: Candidate) -> ChatRequest | None:
        """A request whose answer this step needs before `filter` (None: none)."""
        return None

    def answer(self, requests: list[ChatRequest]) -> list[Completion]:
        """Answers to `ask`'s requests on the step's own engine (for a `separate` step)."""
        raise NotImplementedError

    def prepare(self, candidates: list[Candidate]) -> None:
        """One pass over a group of candidates waiting at this (grouped) step, before their `filter`s:
        sets each one's `prepared`."""
        for candidate in candidates:
            candidate.prepared = {}

    def close(self) -> None:  # noqa: B027 - most steps open nothing
        """Release what the step opened (an engine of its own)."""


@dataclass(frozen=True, slots=True)
class Ask:
    """The chain stopped at `step`, which needs the answer to `request` first."""

    step: Check
    request: ChatRequest


@dataclass(frozen=True, slots=True)
class Wait:
    """The chain stopped at `step`, a grouped step: run its `prepare` over a group of waiting
    candidates, then run the chain again for each."""

    step: Check


class Chain:
    """The steps in order, counting each rejection into `rejections` by its `records.reason_key`."""

    def __init__(self, steps: Sequence[Check], rejections: Counter[str]) -> None:
        self.steps, self.rejections = steps, rejections

    def run(self, candidate: Candidate) -> str | Ask | Wait | None:
        """Run `candidate` from the step it is at: None when every step keeps it, the reason when one
        rejects it, an `Ask` when a step needs a model's answer first (set `candidate.answer`, then
        run again), a `Wait` when a grouped step has not prepared it yet (`prepare`, then run again)."""
        while candidate.step < len(self.steps):
            step = self.steps[candidate.step]
            if step.grouped and candidate.prepared is None:
                return Wait(step)
            if candidate.answer is None and (request := step.ask(candidate)) is not None:
                return Ask(step, request)
            result = step.filter(candidate)
            candidate.answer = candidate.prepared = None
            kept, reason = (result, step.name) if isinstance(result, bool) else result
            if not kept:
                self.rejections[reason_key(reason)] += 1
                return reason
            candidate.step += 1
        return None
