"""Where the completions of one stream end. Each goes through the check chain (generation/checks.py)
and is then one of:

    kept       journaled (in the sink's next flush group), reported to the task plan, progress + 1
    retried    sent back into the same stream (attempt + 1, the reason in the prompt) while
               generation.max_retries and the plan's budget allow
    failed     journaled in failures.jsonl with its reason, reported to the plan

A step that asks a model first (the LLM judge) has its request put into the same stream, where it
goes before retries and fresh tasks, or, for a step with an engine of its own, into a group answered
there once `bound` candidates wait and when the stream ends (then another stream takes the retries).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from topictree_hf.engines.base import ChatRequest, Completion
from topictree_hf.generation.checks import Ask, Candidate, Chain
from topictree_hf.generation.stream import Feed, Job, Sink
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.topup import TaskPlan
from topictree_hf.records import Failure, Sample, failure_reason, reason_key
from topictree_hf.textparse import valid_unicode

Progress = Callable[[int], None]


class Settler:
    """The outcomes of one stream, counted into `summary` (see the module docstring)."""

    def __init__(self, chain: Chain, feed: Feed, sink: Sink, summary: Summary, record: Callable[[Candidate], Sample],
                 max_retries: int, bound: int, plan: TaskPlan | None = None, progress: Progress | None = None) -> None:
        self.chain, self.feed, self.sink, self.summary, self.record = chain, feed, sink, summary, record
        self.max_retries, self.bound, self.plan, self.progress = max_retries, bound, plan, progress
        self.waiting: list[tuple[Candidate, Ask]] = []  # requests for a step's own engine

    def settle(self, job: Job, request: ChatRequest, out: Completion) -> None:
        """One completion of the stream: a sample to check, or the answer a waiting step asked for."""
        if job.about is not None:
            self._answered(job.about, out)
        else:
            self.summary.output_tokens += out.output_tokens
            out.text = valid_unicode(out.text)  # it is journaled (and may become a row)
            self._check(Candidate(job, request, out))
        if len(self.waiting) >= self.bound:
            self.answer_waiting()

    def answer_waiting(self) -> bool:
        """Answer the waiting requests on their steps' own engines, one call per step; False when
        none was waiting."""
        if not self.waiting:
            return False
        group, self.waiting = self.waiting, []
        for step in dict.fromkeys(ask.step for _, ask in group):
            mine = [candidate for candidate, ask in group if ask.step is step]
            start = time.perf_counter()
            outs = step.answer([ask.request for _, ask in group if ask.step is step])
            self.summary.judge_seconds += time.perf_counter() - start
            for candidate, out in zip(mine, outs, strict=True):
                self._answered(candidate, out)
        return True

    def _answered(self, candidate: Candidate, out: Completion) -> None:
        candidate.answer = out
        self._check(candidate)
        self.summary.count_judge_answer(out.prompt_tokens, out.output_tokens, candidate.fields.get("judge_score"))

    def _check(self, candidate: Candidate) -> None:
        verdict = self.chain.run(candidate)
        if isinstance(verdict, Ask):
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
