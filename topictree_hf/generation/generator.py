"""Sample generation: render a prompt per task (with the FULL root-to-leaf path), send the requests
as one continuous engine stream, validate each completion as it arrives, send rejects back into the
same stream with the reason, journal in small flush groups.

`generate_pending` is the stage's bookkeeping (what is already journaled, what is left, the counts),
whichever runner executes the pending tasks; `SampleGenerator.generate_here` is the single-process
execution, `generate_tasks` the loop a runner's worker calls on its share.

There is no batch barrier: `engine.stream` keeps at most `engine.batch_size` requests in flight and
hands back each completion as soon as it finishes; the generator judges it (parse, check, dedup) at
once and tops the stream up with the next task, or with the retry (attempt + 1, seeded from the task
id and the attempt) when it was rejected. Judged records are journaled durably in groups of
`flush_records` (at most the in-flight bound) or after `flush_seconds`, whichever comes first, and at
the end, so a crash loses at most what was in flight or not yet flushed. What fails after
`generation.max_retries` goes to failures.jsonl with its reason. A rerun skips every id already
journaled (valid or failed) and finishes the rest.
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
from topictree_hf.generation.allocate import Task, allocate, total_tasks
from topictree_hf.generation.formats import Format, get_format
from topictree_hf.generation.templates import Template
from topictree_hf.journal import Journal
from topictree_hf.records import (
    EMPTY,
    ENGINE_ERROR,
    INVALID,
    MISSING_SECTIONS,
    TRUNCATED,
    UNPARSEABLE,
    Failure,
    Sample,
    messages_text,
)
from topictree_hf.rundir import RunDir
from topictree_hf.textparse import parse_json, valid_unicode
from topictree_hf.tree.model import TopicTree

GEN_SYSTEM = "You write accurate, specific training examples. Follow the requested layout exactly."
SMALL_MODEL_PARAMS = 1_000_000_000
NAIVE_ANGLE = "any aspect of the topic"
Progress = Callable[[int], None]


def resolve_mode(mode: str, engine: Engine) -> str:
    """`auto`: tagged text for small models (they write worse text under a JSON grammar), JSON otherwise."""
    if mode != "auto":
        return mode
    params = engine.parameter_count
    return "text" if params is not None and params < SMALL_MODEL_PARAMS else "json"


@dataclass(slots=True)
class _Job:
    task: Task
    attempt: int = 0
    reason: str | None = None


@dataclass
class Summary:
    requested: int = 0
    resumed: int = 0
    valid: int = 0
    failed: int = 0
    retried: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    output_tokens: int = 0
    engine_calls: int = 0  # engine streams opened: one per `generate_tasks` (a local run: 1; Ray: one per block)
    seconds: float = 0.0
    mode: str = ""

    def to_dict(self) -> dict[str, Any]:
        tps = self.output_tokens / self.seconds if self.seconds else 0.0
        return {"requested": self.requested, "resumed": self.resumed, "valid": self.valid, "failed": self.failed,
                "retried": self.retried, "rejections": dict(self.rejections), "failures": dict(self.failures),
                "output_tokens": self.output_tokens, "engine_calls": self.engine_calls,
                "seconds": round(self.seconds, 3), "output_tokens_per_s": round(tps, 1), "mode": self.mode}


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
    failed) is skipped, the rest goes to `execute(tasks, summary, progress)`, which adds its counts."""
    start = time.perf_counter()
    done = run_dir.journaled_ids()
    summary = Summary(requested=total_tasks(tree, config.generation), resumed=len(done))
    if progress is not None and done:
        progress(len(done))
    execute((t for t in allocate(tree, config.generation) if t.id not in done), summary, progress)
    summary.seconds = time.perf_counter() - start
    return summary


class SampleGenerator:
    flush_records = 16  # journal flush group: this many judged records (fewer when fewer are in flight) ...
    flush_seconds = 2.0  # ... or this long after the oldest unflushed one, whichever comes first

    def __init__(self, engine: Engine, config: Config, run_dir: RunDir, dedup: Deduper | None = None) -> None:
        """`generation.angles: false` gives every sample one fixed angle, as repeated prompting does;
        de-duplication is the config's (or `dedup`) in every variant, so comparisons stay fair."""
        gen = config.generation
        self.engine, self.config, self.gen, self.run_dir = engine, config, gen, run_dir
        self.mode = resolve_mode(gen.mode, engine)
        self.formats: dict[str, Format] = {f: get_format(f, gen.custom) for f in gen.formats}
        self.templates = {f: _load_template(gen, f) for f in gen.formats}
        self.schemas = {f: fmt.schema(gen.chat_turns) for f, fmt in self.formats.items()}
        self.dedup: Deduper = dedup or make_deduper(gen)
        self.fixed_angle = not gen.angles

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
        seed = int.from_bytes(hashlib.sha256(f"{job.task.id}|{job.attempt}".encode()).digest()[:4], "big")
        params = SamplingParams(self.gen.temperature, self.gen.top_p, self.gen.max_tokens, seed)
        schema = self.schemas[job.task.format] if self.mode == "json" else None
        return ChatRequest(self.prompt(job.task, job.reason), params, schema, kind="sample")

    def run(self, tree: TopicTree, progress: Progress | None = None) -> Summary:
        """The whole stage in this process: skip what is journaled, generate the rest."""
        return generate_pending(self.config, self.run_dir, tree, self.generate_here, progress)

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
        the same stream (attempt + 1, with the reason), records are journaled in small flush groups."""
        summary.mode = summary.mode or self.mode
        bound = self.config.engine.batch_size
        feed = _Feed((_Job(t) for t in tasks), self.request)
        sink = _Sink(samples, failures, min(self.flush_records, bound), self.flush_seconds)
        summary.engine_calls += 1
        try:
            for index, out in self.engine.stream(feed, bound):
                faults.crash_point("gen.generated")
                job, req = feed.take(index)
                if self._settle(job, req, out, feed, sink, summary) and progress is not None:
                    progress(1)
                sink.flush_if_due()
        finally:  # what is judged is kept, whatever stopped the stream (an engine error, Ctrl-C)
            sink.flush()

    def _settle(self, job: _Job, req: ChatRequest, out: Completion, feed: _Feed, sink: _Sink,
                summary: Summary) -> bool:
        """Judge one completion: keep it, send it back into the stream (False), or record the failure."""
        summary.output_tokens += out.output_tokens
        out.text = valid_unicode(out.text)  # it is journaled (and may become a row)
        record, reason = self._judge(job, req, out)
        if record is not None:
            sink.samples.append(record.to_json())
            summary.valid += 1
            return True
        assert reason is not None
        summary.rejections[reason.split(":")[0]] += 1
        if job.attempt < self.gen.max_retries:
            feed.retry(_Job(job.task, job.attempt + 1, reason))
            summary.retried += 1
            return False
        sink.failures.append(self._failure(job, reason, out).to_json())
        summary.failures[reason.split(":")[0]] += 1
        summary.failed += 1
        return True

    def _judge(self, job: _Job, req: ChatRequest, out: Completion) -> tuple[Sample | None, str | None]:
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
        text = messages_text(messages)
        if echoes_template(text, self.templates[job.task.format]):
            return None, f"{INVALID}: repeats the instructions"
        dup = self.dedup.check_and_add(text)
        if dup:
            return None, dup
        if self.gen.system_prompt:
            messages.insert(0, {"role": "system", "content": self.gen.system_prompt})
        return self._sample(job, req, out, messages), None

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
        return Failure(t.id, list(t.path), t.format, reason.split(":")[0], reason, out.text[:500], job.attempt)


def echoes_template(text: str, template: Template) -> bool:
    """True when the sample copies an instruction sentence of its template (tiny models do)."""
    lowered = " ".join(text.lower().split())
    return any(sentence in lowered for sentence in template.static_sentences)


class _Feed:
    """The stream's request source, re-pollable: retries first, then fresh tasks. `StopIteration` means
    "nothing now"; a retry appended later is pulled at the next poll. Remembers each pulled job by its
    pull index until its completion is taken."""

    def __init__(self, jobs: Iterator[_Job], request: Callable[[_Job], ChatRequest]) -> None:
        self._fresh, self._request = jobs, request
        self._retries: deque[_Job] = deque()
        self._pulled: dict[int, tuple[_Job, ChatRequest]] = {}
        self._count = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> ChatRequest:
        job = self._retries.popleft() if self._retries else next(self._fresh)
        req = self._request(job)
        self._pulled[self._count] = (job, req)
        self._count += 1
        return req

    def retry(self, job: _Job) -> None:
        self._retries.append(job)

    def take(self, index: int) -> tuple[_Job, ChatRequest]:
        return self._pulled.pop(index)


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
