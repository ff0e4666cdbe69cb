"""Sample generation: render a prompt per task (with the FULL root-to-leaf path), send the requests
as one continuous engine stream, validate each completion as it arrives, send rejects back into the
same stream with the reason, journal in small flush groups.

`generate_pending` is the stage's bookkeeping (what is already journaled, what is left, the counts),
whichever runner executes the pending tasks; `SampleGenerator.generate_here` is the single-process
execution, `generate_tasks` the loop a runner's worker calls on its share.

There is no batch barrier: `engine.stream` keeps at most `engine.batch_size` requests in flight and
hands back each completion as soon as it finishes; the generator judges it at once and tops the
stream up with the next task, or with the retry (attempt + 1, seeded from the task id and the
attempt) when it was rejected. Judged records are journaled durably in groups of `flush_records` (at
most the in-flight bound) or after `flush_seconds`, whichever comes first, and at the end, so a crash
loses at most what was in flight or not yet flushed. What fails after `generation.max_retries` goes
to failures.jsonl with its reason. A rerun skips every id already journaled (valid or failed) and
finishes the rest.

Judging a completion, in order (each step's rejection is counted under `records.reason_key`):

    validation      engine error, empty, truncated at max_tokens, unparseable / missing sections,
                    format check, copies a sentence of its template
    rule checks     generation/judge.py `rule_reject` (generation.rules): counted per rule
    LLM judge       generation.judge: one request per sample (kind "judge", temperature 0, JSON
                    schema) in the same stream, or batched on a judge model of its own; a score under
                    the threshold is a rejection ("judge score 2: <reason>"), retried like the others;
                    the score and reason are journaled with the sample (dataset columns)
    dedup           last, so only kept texts are remembered

The tasks come from a `TaskPlan` (generation/topup.py): the pending allocation, then top-ups for the
leaves still short, until the count asked for is delivered or the request budget is spent.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from topictree_hf import faults
from topictree_hf.config import Config, GenerationConfig
from topictree_hf.dedup import Deduper, make_deduper
from topictree_hf.engines.base import ChatRequest, Completion, Engine, SamplingParams
from topictree_hf.generation.allocate import Task, total_tasks
from topictree_hf.generation.formats import Format, get_format
from topictree_hf.generation.judge import judge_request, parse_judgement, rule_reject
from topictree_hf.generation.templates import Template
from topictree_hf.generation.topup import Journaled, TaskPlan
from topictree_hf.journal import Journal
from topictree_hf.records import (
    EMPTY,
    ENGINE_ERROR,
    INVALID,
    JUDGE_SCORE,
    MISSING_SECTIONS,
    TRUNCATED,
    UNPARSEABLE,
    Failure,
    Sample,
    failure_reason,
    messages_text,
    reason_key,
)
from topictree_hf.rundir import RunDir
from topictree_hf.textparse import parse_json, valid_unicode
from topictree_hf.tree.model import TopicTree

GEN_SYSTEM = "You write accurate, specific training examples. Follow the requested layout exactly."
SMALL_MODEL_PARAMS = 1_000_000_000
# generation.repetition_penalty: None under SMALL_MODEL_PARAMS: on the bundled 135M model it nearly doubled the
# valid share on model-built trees, 1.1 made it loop more (docs/quality.md, "Looping at max_tokens")
SMALL_MODEL_REPETITION_PENALTY = 1.05
NAIVE_ANGLE = "any aspect of the topic"
Progress = Callable[[int], None]


def resolve_mode(mode: str, engine: Engine) -> str:
    """`auto`: tagged text for small models (they write worse text under a JSON grammar), JSON otherwise."""
    if mode != "auto":
        return mode
    params = engine.parameter_count
    return "text" if params is not None and params < SMALL_MODEL_PARAMS else "json"


def resolve_repetition_penalty(value: float | None, engine: Engine) -> float | None:
    """`generation.repetition_penalty`; None: SMALL_MODEL_REPETITION_PENALTY for a model under 1B
    parameters, none otherwise (and for a model of unknown size). 1.0 means none (None)."""
    if value is None:
        params = engine.parameter_count
        value = SMALL_MODEL_REPETITION_PENALTY if params is not None and params < SMALL_MODEL_PARAMS else 1.0
    return None if value == 1.0 else value


@dataclass(slots=True)
class _Candidate:
    """A sample that passed every check, waiting for the LLM judge's score."""

    request: ChatRequest
    completion: Completion
    messages: list[dict[str, str]]


@dataclass(slots=True)
class _Job:
    task: Task
    attempt: int = 0
    reason: str | None = None
    candidate: _Candidate | None = None  # set: this job is the judge's request for that sample


@dataclass
class Summary:
    requested: int = 0  # the samples asked for (the allocation)
    resumed: int = 0  # ids journaled before this run (kept or failed)
    valid: int = 0
    failed: int = 0
    retried: int = 0
    rejections: Counter[str] = field(default_factory=Counter)  # by records.reason_key (each rule on its own)
    failures: Counter[str] = field(default_factory=Counter)
    output_tokens: int = 0
    engine_calls: int = 0  # engine streams opened: one per `generate_tasks` (a local run: 1; Ray: one per block)
    seconds: float = 0.0
    mode: str = ""
    requests: int = 0  # generation requests sent this run: first tries, retries and top-ups
    topups: int = 0  # top-up tasks (indices past a leaf's allotment) handed out this run
    budget: int = 0  # the most generation requests the run dir may take (generation.topup_budget x requested)
    delivered: int = 0  # valid samples in the run dir for this config (this run's and earlier ones)
    budget_spent: bool = False  # a top-up was refused for want of budget
    judge_requests: int = 0
    judge_prompt_tokens: int = 0
    judge_output_tokens: int = 0
    judge_seconds: float = 0.0  # wall time of a separate judge engine's calls (the same engine: in the stream)
    judge_unparsed: int = 0  # judge answers without a score (the sample is kept, unscored)
    judge_scores: Counter[int] = field(default_factory=Counter)

    def short_reason(self) -> str | None:
        """Why fewer samples than asked were delivered (None when none is missing)."""
        missing = self.requested - self.delivered
        if missing <= 0:
            return None
        why = (f"top-up budget spent ({self.budget} requests, generation.topup_budget)" if self.budget_spent
               else "stopped before the top-up finished")
        top = ", ".join(f"{k} {v}" for k, v in self.rejections.most_common(3))
        return f"{why}; most rejected: {top}" if top else why

    def to_dict(self) -> dict[str, Any]:
        tps = self.output_tokens / self.seconds if self.seconds else 0.0
        return {"requested": self.requested, "resumed": self.resumed, "valid": self.valid, "failed": self.failed,
                "retried": self.retried, "rejections": dict(self.rejections), "failures": dict(self.failures),
                "output_tokens": self.output_tokens, "engine_calls": self.engine_calls,
                "seconds": round(self.seconds, 3), "output_tokens_per_s": round(tps, 1), "mode": self.mode,
                "asked": self.requested, "delivered": self.delivered,
                "missing": max(0, self.requested - self.delivered), "short_reason": self.short_reason(),
                "topups": self.topups, "requests": self.requests, "budget": self.budget,
                "budget_spent": self.budget_spent,
                "judge_requests": self.judge_requests,
                "judge_tokens": self.judge_prompt_tokens + self.judge_output_tokens,
                "judge_prompt_tokens": self.judge_prompt_tokens, "judge_output_tokens": self.judge_output_tokens,
                "judge_seconds": round(self.judge_seconds, 3), "judge_unparsed": self.judge_unparsed,
                "judge_scores": {str(k): v for k, v in sorted(self.judge_scores.items())}}


def check_generation(gen: GenerationConfig) -> None:
    """Load every format and template once, so a bad template or schema fails before a model loads."""
    for fmt in gen.formats:
        get_format(fmt, gen.custom)
        _load_template(gen, fmt)


def _load_template(gen: GenerationConfig, fmt: str) -> Template:
    if fmt == "custom":
        assert gen.custom is not None
        return Template("custom", gen.custom.template, "generation.custom.template")
    return Template.load(fmt, gen.templates.get(fmt))


Execute = Callable[[Iterator[Task], Summary, Progress | None], None]


def generate_pending(config: Config, run_dir: RunDir, tree: TopicTree, execute: Execute,
                     progress: Progress | None = None) -> Summary:
    """The generate stage's bookkeeping, wherever the work runs: every id already journaled (valid or
    failed) is skipped, the rest goes to `execute(tasks, summary, progress)`, which adds its counts.
    `tasks` is a `TaskPlan` (generation/topup.py): the pending allocation, then top-ups until the count
    asked for is delivered or the budget is spent. An executor that reports outcomes to the plan gets
    the top-ups in its own stream; for one that does not (Ray), the top-ups go out in rounds: after each
    `execute` the plan is rebuilt from the journals and the next round executed. `progress` counts
    delivered samples (those from before first)."""
    start = time.perf_counter()
    journaled = Journaled.read(run_dir)
    summary = Summary(requested=total_tasks(tree, config.generation), resumed=len(journaled.ids))
    plan = TaskPlan(tree, config.generation, journaled, summary)
    summary.budget = plan.budget
    if progress is not None and plan.delivered:
        progress(plan.delivered)
    while True:
        execute(plan, summary, progress)
        if plan.live or not plan.handed_out:
            break
        plan = TaskPlan(tree, config.generation, Journaled.read(run_dir), summary)
        if not plan.wanted():
            break
    summary.delivered, summary.budget_spent = plan.delivered, plan.spent
    summary.seconds = time.perf_counter() - start
    return summary


class SampleGenerator:
    flush_records = 16  # journal flush group: this many judged records (fewer when fewer are in flight) ...
    flush_seconds = 2.0  # ... or this long after the oldest unflushed one, whichever comes first

    def __init__(self, engine: Engine, config: Config, run_dir: RunDir, dedup: Deduper | None = None) -> None:
        """`generation.angles: false` gives every sample one fixed angle, as repeated prompting does;
        de-duplication is the config's (or `dedup`) in every variant, so comparisons stay fair. A
        `generation.judge` with its own model opens that model on first use; `close()` releases it."""
        gen = config.generation
        self.engine, self.config, self.gen, self.run_dir = engine, config, gen, run_dir
        self.mode = resolve_mode(gen.mode, engine)
        self.formats: dict[str, Format] = {f: get_format(f, gen.custom) for f in gen.formats}
        self.templates = {f: _load_template(gen, f) for f in gen.formats}
        self.schemas = {f: fmt.schema(gen.chat_turns) for f, fmt in self.formats.items()}
        self.dedup: Deduper = dedup or make_deduper(gen)
        self.fixed_angle = not gen.angles
        self.repetition_penalty = resolve_repetition_penalty(gen.repetition_penalty, engine)
        self.judge = gen.judge
        self.separate_judge = self.judge is not None and self.judge.model not in (None, config.engine.model)
        self._judge_engine: Engine | None = None

    def prompt(self, task: Task, reason: str | None = None) -> list[dict[str, str]]:
        angle = NAIVE_ANGLE if self.fixed_angle else task.angle
        context = {"path": list(task.path), "root": task.path[0], "leaf": task.path[-1], "angle": angle,
                   "instructions": self.gen.instructions, "mode": self.mode, "turns": self.gen.chat_turns,
                   "language": None, "index": task.index}
        text = self.templates[task.format].render(context)
        if reason:
            text += f"\nA previous attempt was rejected ({reason}); write a better one."
        messages = [{"role": "system", "content": GEN_SYSTEM}, {"role": "user", "content": text}]
        if self.mode == "text":  # prime the layout: small models follow a started answer far better
            messages.append({"role": "assistant", "content": self.formats[task.format].lead})
        return messages

    def request(self, job: _Job) -> ChatRequest:
        if job.candidate is not None:  # the judge's request: temperature 0, seeded all the same
            assert self.judge is not None
            return judge_request(job.candidate.messages, job.task.path, self.judge.rubric,
                                 _seed(f"{job.task.id}|{job.attempt}|judge"))
        params = SamplingParams(self.gen.temperature, self.gen.top_p, self.gen.max_tokens,
                                _seed(f"{job.task.id}|{job.attempt}"), self.repetition_penalty)
        schema = self.schemas[job.task.format] if self.mode == "json" else None
        return ChatRequest(self.prompt(job.task, job.reason), params, schema, kind="sample")

    def run(self, tree: TopicTree, progress: Progress | None = None) -> Summary:
        """The whole stage in this process: skip what is journaled, generate the rest."""
        try:
            return generate_pending(self.config, self.run_dir, tree, self.generate_here, progress)
        finally:
            self.close()

    def close(self) -> None:
        """Release a separate judge engine (the generating engine is the caller's)."""
        if self._judge_engine is not None:
            engine, self._judge_engine = self._judge_engine, None
            engine.close()

    def judge_engine(self) -> Engine:
        """The engine that judges: the generating one, or `generation.judge.model` on the same backend."""
        if not self.separate_judge:
            return self.engine
        if self._judge_engine is None:
            from topictree_hf.engines.registry import create_engine

            assert self.judge is not None
            self._judge_engine = create_engine(self.config.engine.model_copy(update={"model": self.judge.model}))
        return self._judge_engine

    def generate_here(self, tasks: Iterable[Task], summary: Summary, progress: Progress | None = None) -> None:
        """Execute `tasks` in this process, journaled in samples-00000.jsonl and failures.jsonl."""
        self.remember(self.run_dir.iter_samples())
        with Journal(self.run_dir.sample_shard(0)) as samples, Journal(self.run_dir.failures) as failures:
            self.generate_tasks(tasks, samples, failures, summary, progress)

    def remember(self, samples: Iterable[Sample]) -> None:
        """Let the dedup know samples kept earlier (a resumed run, another worker's journal)."""
        self.dedup.remember(s.text() for s in samples)

    def generate_tasks(self, tasks: Iterable[Task], samples: Journal, failures: Journal, summary: Summary,
                       progress: Progress | None = None) -> None:
        """Generate, judge and journal `tasks` as one continuous `engine.stream`, at most
        `engine.batch_size` requests in flight: each completion is judged as it arrives, rejects re-enter
        the same stream (attempt + 1, with the reason), records are journaled in small flush groups.
        With the LLM judge on the same engine, its requests go into the same stream; a separate judge
        engine scores groups of `engine.batch_size` (then another stream takes the retries). When
        `tasks` is a TaskPlan, each outcome is reported to it, and its top-ups join the stream."""
        summary.mode = summary.mode or self.mode
        bound = self.config.engine.batch_size
        plan = tasks if isinstance(tasks, TaskPlan) else None
        feed = _Feed(iter(tasks), self.request, summary)
        work = _Work(feed, _Sink(samples, failures, min(self.flush_records, bound), self.flush_seconds), summary,
                     plan, progress)
        summary.engine_calls += 1
        later = False  # a later stream (retries after a separate judge's group) counts once it yields
        try:
            while True:
                got = 0
                feed.restart()
                for index, out in self.engine.stream(feed, bound):
                    if later and not got:
                        summary.engine_calls += 1
                    got += 1
                    faults.crash_point("gen.generated")
                    job, req = feed.take(index)
                    self._settle(job, req, out, work)
                    if len(work.waiting) >= bound:
                        self._judge_waiting(work)
                    work.sink.flush_if_due()
                later = True
                if not work.waiting:
                    break
                self._judge_waiting(work)  # may send retries back: another stream takes them
        finally:  # what is judged is kept, whatever stopped the stream (an engine error, Ctrl-C)
            work.sink.flush()

    def _judge_waiting(self, work: _Work) -> None:
        """Score the waiting candidates with the separate judge engine, in one call."""
        group, work.waiting = work.waiting, []
        requests = [self.request(job) for job in group]
        start = time.perf_counter()
        outs = self.judge_engine().generate(requests)
        work.summary.judge_seconds += time.perf_counter() - start
        for job, req, out in zip(group, requests, outs, strict=True):
            self._settle(job, req, out, work)

    def _settle(self, job: _Job, req: ChatRequest, out: Completion, work: _Work) -> None:
        """One completion: a sample to check (then judged, kept or sent back), or the judge's score."""
        summary = work.summary
        if job.candidate is not None:
            summary.judge_requests += 1
            summary.judge_prompt_tokens += out.prompt_tokens
            summary.judge_output_tokens += out.output_tokens
            record, reason = self._judged(job, out, summary)
            self._resolve(job, record, reason, job.candidate.completion, work)
            return
        summary.output_tokens += out.output_tokens
        out.text = valid_unicode(out.text)  # it is journaled (and may become a row)
        messages, reason = self._check(job, out)
        if messages is not None and self.judge is not None:
            candidate = _Job(job.task, job.attempt, job.reason, _Candidate(req, out, messages))
            if self.separate_judge:
                work.waiting.append(candidate)
            else:
                work.feed.judge(candidate)
            return
        record = None
        if messages is not None:
            record, reason = self._keep(job, req, out, messages, None, None)
        self._resolve(job, record, reason, out, work)

    def _resolve(self, job: _Job, record: Sample | None, reason: str | None, out: Completion, work: _Work) -> None:
        """Keep the record, or send the task back into the stream, or record its failure."""
        summary, plan = work.summary, work.plan
        if record is not None:
            work.sink.samples.append(record.to_json())
            summary.valid += 1
            if plan is not None:
                plan.settled(job.task, True)
            if work.progress is not None:
                work.progress(1)
            return
        assert reason is not None
        key = reason_key(reason)
        summary.rejections[key] += 1
        if job.attempt < self.gen.max_retries and (plan is None or plan.may_retry(job.task)):
            work.feed.retry(_Job(job.task, job.attempt + 1, reason))
            summary.retried += 1
            return
        work.sink.failures.append(self._failure(job, reason, out).to_json())
        summary.failures[key] += 1
        summary.failed += 1
        if plan is not None:
            plan.settled(job.task, False)

    def _check(self, job: _Job, out: Completion) -> tuple[list[dict[str, str]] | None, str | None]:
        """Validation, then the rule checks: the sample's messages, or why it is rejected."""
        if out.finish_reason == "error":
            return None, f"{ENGINE_ERROR}: {out.error or 'unknown'}"
        if not out.text.strip():
            return None, EMPTY
        if out.finish_reason == "length":
            return None, TRUNCATED
        fmt = self.formats[job.task.format]
        if self.mode == "json":
            obj = parse_json(out.text)
        else:
            obj = fmt.from_text(f"{fmt.lead} {out.text}", self.gen.chat_turns)
        if obj is None:
            return None, UNPARSEABLE if self.mode == "json" else MISSING_SECTIONS
        problem = fmt.check(obj, self.gen.chat_turns)
        if problem:
            return None, f"{INVALID}: {problem}"
        messages = fmt.messages(obj)
        if echoes_template(messages_text(messages), self.templates[job.task.format]):
            return None, f"{INVALID}: repeats the instructions"
        if self.gen.rules:
            rule = rule_reject(job.task.format, messages, job.task.path)
            if rule:
                return None, rule
        return messages, None

    def _judged(self, job: _Job, out: Completion, summary: Summary) -> tuple[Sample | None, str | None]:
        """The judge's answer: under the threshold, a rejection; else the sample (unscored when the
        answer holds no score), if it is no duplicate."""
        candidate = job.candidate
        assert candidate is not None and self.judge is not None
        verdict = parse_judgement(out.text) if out.finish_reason != "error" else None
        if verdict is None:
            summary.judge_unparsed += 1
            score, why = None, None
        else:
            score, why = verdict
            summary.judge_scores[score] += 1
            if score < self.judge.threshold:
                return None, f"{JUDGE_SCORE} {score}: {why or 'no reason given'}"
        return self._keep(job, candidate.request, candidate.completion, candidate.messages, score, why)

    def _keep(self, job: _Job, req: ChatRequest, out: Completion, messages: list[dict[str, str]],
              score: int | None, why: str | None) -> tuple[Sample | None, str | None]:
        """De-duplication last (a text is remembered only when it is kept), then the record."""
        dup = self.dedup.check_and_add(messages_text(messages))
        if dup:
            return None, dup
        if self.gen.system_prompt:
            messages = [{"role": "system", "content": self.gen.system_prompt}, *messages]
        sample = self._sample(job, req, out, messages)
        sample.judge_score, sample.judge_reason = score, why
        return sample, None

    def _sample(self, job: _Job, req: ChatRequest, out: Completion, messages: list[dict[str, str]]) -> Sample:
        t = job.task
        return Sample(id=t.id, topic_path=list(t.path), leaf_id=t.leaf_id, leaf=t.path[-1], depth=len(t.path) - 1,
                      format=t.format, messages=messages, model=self.engine.model_name, backend=self.engine.backend,
                      mode=self.mode, template=self.templates[t.format].name,
                      angle=NAIVE_ANGLE if self.fixed_angle else t.angle, temperature=req.sampling.temperature,
                      top_p=req.sampling.top_p, seed=req.sampling.seed, finish_reason=out.finish_reason,
                      prompt_tokens=out.prompt_tokens, output_tokens=out.output_tokens, attempt=job.attempt)

    def _failure(self, job: _Job, reason: str, out: Completion) -> Failure:
        t = job.task
        return Failure(t.id, list(t.path), t.format, failure_reason(reason), reason, out.text[:500], job.attempt)


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


def echoes_template(text: str, template: Template) -> bool:
    """True when the sample copies an instruction sentence of its template (tiny models do)."""
    lowered = " ".join(text.lower().split())
    return any(sentence in lowered for sentence in template.static_sentences)


class _Feed:
    """The stream's request source, re-pollable: judge requests first, then retries, then fresh tasks.
    `StopIteration` means "nothing now"; a job appended later (or a top-up the TaskPlan has by then) is
    pulled at the next poll. Remembers each pulled job by its pull index until its completion is taken;
    counts the generation requests it hands out in `summary.requests`."""

    def __init__(self, tasks: Iterator[Task], request: Callable[[_Job], ChatRequest], summary: Summary) -> None:
        self._tasks, self._request, self._summary = tasks, request, summary
        self._judging: deque[_Job] = deque()
        self._retries: deque[_Job] = deque()
        self._pulled: dict[int, tuple[_Job, ChatRequest]] = {}
        self._count = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> ChatRequest:
        if self._judging:
            job = self._judging.popleft()
        else:
            job = self._retries.popleft() if self._retries else _Job(next(self._tasks))
            self._summary.requests += 1
        req = self._request(job)
        self._pulled[self._count] = (job, req)
        self._count += 1
        return req

    def restart(self) -> None:
        """A new stream counts its pulls from 0 again (the last one finished everything it pulled)."""
        self._pulled.clear()
        self._count = 0

    def retry(self, job: _Job) -> None:
        self._retries.append(job)

    def judge(self, job: _Job) -> None:
        self._judging.append(job)

    def take(self, index: int) -> tuple[_Job, ChatRequest]:
        return self._pulled.pop(index)


@dataclass
class _Work:
    """What one `generate_tasks` call settles completions into."""

    feed: _Feed
    sink: _Sink
    summary: Summary
    plan: TaskPlan | None
    progress: Progress | None
    waiting: list[_Job] = field(default_factory=list)  # candidates for a separate judge engine


class _Sink:
    """Judged records waiting for their durable write: flushed every `records` records or `seconds`
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
