"""One continuous engine stream: `StreamLoop` feeds `engine.stream` from a `Feed` of jobs, hands each
completion to its caller as soon as it finishes, and journals what the caller settled through a
`Sink` in small flush groups. It knows nothing about formats, checks or judging: what a completion
means, and what goes back into the feed, is the caller's (generation/generator.py).

There is no batch barrier: `engine.stream` keeps at most `bound` requests in flight; a job appended
to the feed while the stream runs (a retry, a follow-up request, a top-up the task source has by
then) is pulled at the next poll. Settled records are written durably in groups of `records` or
after `seconds`, whichever comes first, and at the end, also when the stream stops on an error, so
a crash loses at most what was in flight or not yet flushed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from topictree_hf import faults
from topictree_hf.engines.base import ChatRequest, Completion, Engine
from topictree_hf.generation.allocate import Task
from topictree_hf.journal import Journal


@dataclass(slots=True)
class Job:
    """One request of the stream: attempt `attempt` at `task` (after a rejection for `reason`), or,
    with `about` set, a follow-up request about an earlier completion (not a new generation request;
    what it is about is the caller's business)."""

    task: Task
    attempt: int = 0
    reason: str | None = None
    about: Any = None


class Feed:
    """The stream's request source, re-pollable: follow-ups first, then retries, then fresh tasks.
    `StopIteration` means "nothing now"; a job appended later (or a task the source has by then) is
    pulled at the next poll. Remembers each pulled job by its pull index until its completion is
    taken; counts the generation requests it hands out (`requests`: fresh tasks and retries)."""

    def __init__(self, tasks: Iterator[Task], request: Callable[[Job], ChatRequest]) -> None:
        self._tasks, self._request = tasks, request
        self._follow_ups: deque[tuple[Job, ChatRequest]] = deque()
        self._retries: deque[Job] = deque()
        self._pulled: dict[int, tuple[Job, ChatRequest]] = {}
        self._count = 0
        self.requests = 0

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> ChatRequest:
        if self._follow_ups:
            job, req = self._follow_ups.popleft()
        else:
            job = self._retries.popleft() if self._retries else Job(next(self._tasks))
            self.requests += 1
            req = self._request(job)
        self._pulled[self._count] = (job, req)
        self._count += 1
        return req

    def restart(self) -> None:
        """A new stream counts its pulls from 0 again (the last one finished everything it pulled)."""
        self._pulled.clear()
        self._count = 0

    def retry(self, job: Job) -> None:
        self._retries.append(job)

    def follow_up(self, job: Job, request: ChatRequest) -> None:
        self._follow_ups.append((job, request))

    def take(self, index: int) -> tuple[Job, ChatRequest]:
        return self._pulled.pop(index)


class Sink:
    """Settled records waiting for their durable write: flushed every `records` records or `seconds`
    after the oldest waiting one (checked as completions arrive), and at the end."""

    def __init__(self, samples: Journal, failures: Journal, records: int, seconds: float) -> None:
        self._journals = (samples, failures)
        self.samples: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self._records, self._seconds = records, seconds
        self._since = time.monotonic()

    def flush_if_due(self) -> None:
        waiting = len(self.samples) + len(self.failures)
        if not waiting:
            self._since = time.monotonic()
        elif waiting >= self._records or time.monotonic() - self._since >= self._seconds:
            self.flush()

    def flush(self) -> None:
        groups, self.samples, self.failures = (self.samples, self.failures), [], []
        self._since = time.monotonic()
        if not any(groups):
            return
        for journal, group in zip(self._journals, groups, strict=True):
            journal.write_batch(group)
        faults.crash_point("gen.batch")


Settle = Callable[[Job, ChatRequest, Completion], None]


class StreamLoop:
    """Feeds `engine.stream` from `feed` (at most `bound` in flight) and hands each completion to
    `settle`; when a stream ends, `between()` may put more into the feed (True: stream again).
    `streams` counts the engine streams that did work (the first one always)."""

    def __init__(self, engine: Engine, bound: int, feed: Feed, sink: Sink) -> None:
        self.engine, self.bound, self.feed, self.sink = engine, bound, feed, sink
        self.streams = 0

    def run(self, settle: Settle, between: Callable[[], bool]) -> None:
        self.streams = 1
        later = False  # a later stream counts once it yields
        try:
            while True:
                got = 0
                self.feed.restart()
                for index, out in self.engine.stream(self.feed, self.bound):
                    if later and not got:
                        self.streams += 1
                    got += 1
                    faults.crash_point("gen.generated")
                    job, req = self.feed.take(index)
                    settle(job, req, out)
                    self.sink.flush_if_due()
                later = True
                if not between():
                    break
        finally:  # what is settled is kept, whatever stopped the stream (an engine error, Ctrl-C)
            self.sink.flush()
