"""Where the completions of one stream end. Each goes through the check chain (generation/checks.py)
and is then one of:

    kept       journaled (in the sink's next flush group), reported to the task plan, progress + 1
    retried    sent back into the same stream (attempt + 1, the reason in the prompt) while
               generation.max_retries and the plan's budget allow
    failed     journaled in failures.jsonl with its reason, reported to the plan

A step that asks a model first (the LLM judge) has its request put into the same stream, where it
goes before retries and fresh tasks, or, for a step with an engine of its own, into a group answered
there once `bound` candidates wait and when the stream ends (then another stream takes the retries).

A grouped step (the semantic dedup: one embedding pass per group) holds its candidates as the sink
holds records: the group is prepared and decided once `group` candidates wait, `group_seconds` after
the oldest came (checked as completions arrive), and when the stream ends; its candidates are then
decided one by one in the order they came, so a later one is compared with the earlier ones kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from topictree_hf.engines.base import ChatRequest, Completion
from topictree_hf.generation.checks import Ask, Candidate, Chain, Check, Wait
from topictree_hf.generation.stream import Feed, Job, Sink
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.topup import TaskPlan
from topictree_hf.records import Failure, Sample, failure_reason, reason_key
from topictree_hf.textparse import valid_unicode

Progress = Callable[[int], None]
GROUP_RECORDS = 16  # a grouped step's group: as the sink's flush group (SampleGenerator.flush_records) ...
GROUP_SECONDS = 2.0  # ... and its time bound (SampleGenerator.flush_seconds)


class Settler:
    """The outcomes of one stream, counted into `summary` (see the module docstring)."""

    def __init__(self, chain: Chain, feed: Feed, sink: Sink, summary: Summary, record: Callable[[Candidate], Sample],
                 max_retries: int, bound: int, plan: TaskPlan | None = None, progress: Progress | None = None, *,
                 group: int = GROUP_RECORDS, group_seconds: float = GROUP_SECONDS) -> None:
        self.chain, self.feed, self.sink, self.summary, self.record = chain, feed, sink, summary, record
        self.max_retries, self.bound, self.plan, self.progress = max_retries, bound, plan, progress
        self.group, self.group_seconds = min(group, bound), group_seconds
        self.waiting: list[tuple[Candidate, Ask]] = []  # requests for a step's own engine
        self.grouped: list[tuple[Candidate, Check]] = []  # candidates at a grouped step, in the order they came
        self._grouped_since = 0.0

    def settle(self, job: Job, request: ChatRequest, out: Completion) -> None:
        """One completion of the stream: a sample to check, or the answer a waiting step asked for."""
        if job.about is not None:
            self._answered(job.about, out)
        else:
            self.summary.output_tokens += out.output_tokens
            out.text = valid_unicode(out.text)  # it is journaled (and may become a row)
            self._check(Candidate(job, request, out))
        if len(self.waiting) >= self.bound:
            self._answer_asks()
        if self.grouped and (len(self.grouped) >= self.group
                             or time.monotonic() - self._grouped_since >= self.group_seconds):
            self.decide_grouped()

    def answer_waiting(self) -> bool:
        """At the end of a stream: answer every waiting request and decide every waiting group (a
        candidate the judge passes may then wait at the dedup); False when nothing was waiting."""
        done = False
        while self.waiting or self.grouped:
            self._answer_asks()
            self.decide_grouped()
            done = True
        return done

    def decide_grouped(self) -> None:
        """Prepare the waiting candidates of each grouped step in one pass, then check each, in the
        order they came."""
        group, self.grouped = self.grouped, []
        for step in dict.fromkeys(step for _, step in group):
            step.prepare([candidate for candidate, at in group if at is step])
        for candidate, _ in group:
            self._check(candidate)

    def _answer_asks(self) -> None:
        """Answer the waiting requests on their steps' own engines, one call per step."""
        group, self.waiting = self.waiting, []
        for step in dict.fromkeys(ask.step for _, ask in group):
            mine = [candidate for candidate, ask in group if ask.step is step]
            start = time.perf_counter()
            outs = step.answer([ask.request for _, ask in group if ask.step is step])
            self.summary.judge_seconds += time.perf_counter() - start
            for candidate, out in zip(mine, outs, strict=True):
                self._answered(candidate, out)

    def _answered(self, candidate: Candidate, out: Completion) -> None:
        candidate.answer = out
        self._check(candidate)
        self.summary.count_judge_answer(out.prompt_tokens, out.output_tokens, candidate.fields.get("judge_score"))

    def _check(self, candidate: Candidate) -> None:
        verdict = self.chain.run(candidate)
        if isinstance(verdict, Wait):
            if not self.grouped:
                self._grouped_since = time.monotonic()
            self.grouped.append((candidate, verdict.step))
        elif isinstance(verdict, Ask):
            job = candidate.job
            if verdict.step.separate:
                self.waiting.append((candidate, verdict))
            else:
                self.feed.follow_up(Job(job.task, job.attempt, job.reason, about=candidate), verdict.request)
        elif verdict is None:
            self._keep(candidate)
        else:
            self._reject(candidate, verdict)

    def _keep(self, candidate: Candidate) -> None:
        self.sink.samples.append(self.record(candidate).to_json())
        self.summary.valid += 1
        if self.plan is not None:
            self.plan.settled(candidate.job.task, True)
        if self.progress is not None:
            self.progress(1)

    def _reject(self, candidate: Candidate, reason: str) -> None:
        """Send the task back into the stream, or record its failure."""
        job, plan = candidate.job, self.plan
        if job.attempt < self.max_retries and (plan is None or plan.may_retry(job.task)):
            self.feed.retry(Job(job.task, job.attempt + 1, reason))
            self.summary.retried += 1
            return
        task = job.task
        failure = Failure(task.id, list(task.path), task.format, failure_reason(reason), reason,
                          candidate.completion.text[:500], job.attempt)
        self.sink.failures.append(failure.to_json())
        self.summary.failures[reason_key(reason)] += 1
        self.summary.failed += 1
        if plan is not None:
            plan.settled(task, False)
