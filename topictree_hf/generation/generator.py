"""Sample generation: render a prompt per task (with the FULL root-to-leaf path), generate in
batches, validate, retry rejects in batched rounds with the reason, journal per batch.

A batch is `engine.batch_size` requests: one engine call, then one durable journal write. Rejects
wait in a retry queue that is sent as its own batch once full (or at the end); what fails after
`generation.max_retries` goes to failures.jsonl with its reason. A rerun skips every id already
journaled (valid or failed) and finishes the rest.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from topictree_hf import faults
from topictree_hf.config import Config, GenerationConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, SamplingParams
from topictree_hf.generation.allocate import Task, allocate, total_tasks
from topictree_hf.generation.formats import Format, get_format, sample_text
from topictree_hf.generation.parse import parse_json, valid_unicode
from topictree_hf.generation.templates import Template
from topictree_hf.journal import Journal
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

GEN_SYSTEM = "You write accurate, specific training examples. Follow the requested layout exactly."
SMALL_MODEL_PARAMS = 1_000_000_000
NAIVE_ANGLE = "any aspect of the topic"


class Deduper(Protocol):
    def check_and_add(self, text: str) -> str | None:
        """Return why `text` duplicates an earlier sample (and keep it out), or None (and remember it)."""


class ExactDeduper:
    """Exact duplicates after case, whitespace and punctuation are normalised."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def check_and_add(self, text: str) -> str | None:
        key = hashlib.blake2b(" ".join(re.findall(r"\w+", text.lower())).encode(), digest_size=8).digest()
        if key in self._seen:
            return "duplicate"
        self._seen.add(key)
        return None


class NoDeduper:
    def check_and_add(self, text: str) -> str | None:
        return None


class NearDeduper:
    """Exact, then MinHash near-duplicates (and, for `semantic`, embedding cosine) of kept samples."""

    REASONS = {"exact": "duplicate", "near": "near_duplicate", "semantic": "semantic_duplicate"}

    def __init__(self, gen: GenerationConfig) -> None:
        from topictree_hf.eval.dedup import NearDuplicateFilter

        semantic = gen.semantic_dup_threshold if gen.dedup == "semantic" else None
        self.filter = NearDuplicateFilter(gen.near_dup_threshold, semantic_threshold=semantic)

    def check_and_add(self, text: str) -> str | None:
        reason = self.filter.seen_or_add(text)
        return None if reason is None else self.REASONS[reason]


def make_deduper(gen: GenerationConfig) -> Deduper:
    if gen.dedup == "none":
        return NoDeduper()
    if gen.dedup == "exact":
        return ExactDeduper()
    return NearDeduper(gen)


def resolve_mode(mode: str, engine: Engine) -> str:
    """`auto`: tagged text for small models (they write worse text under a JSON grammar), JSON otherwise."""
    if mode != "auto":
        return mode
    params = getattr(engine, "parameter_count", None)
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
    engine_calls: int = 0
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


class SampleGenerator:
    def __init__(self, engine: Engine, config: Config, run_dir: RunDir, dedup: Deduper | None = None,
                 naive: bool = False) -> None:
        """`naive=True` is the baseline that repeated prompting gives: one fixed angle for every sample."""
        gen = config.generation
        self.engine, self.config, self.gen, self.run_dir = engine, config, gen, run_dir
        self.mode = resolve_mode(gen.mode, engine)
        self.formats: dict[str, Format] = {f: get_format(f, gen.custom) for f in gen.formats}
        self.templates = {f: _load_template(gen, f) for f in gen.formats}
        self.schemas = {f: fmt.schema(gen.chat_turns) for f, fmt in self.formats.items()}
        self.dedup: Deduper = dedup or make_deduper(gen)
        self.naive = naive

    def prompt(self, task: Task, reason: str | None = None) -> list[dict[str, str]]:
        angle = NAIVE_ANGLE if self.naive else task.angle
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
        return ChatRequest(self.prompt(job.task, job.reason), params, schema)

    def run(self, tree: TopicTree, progress: Callable[[int], None] | None = None) -> Summary:
        summary = Summary(mode=self.mode)
        start = time.perf_counter()
        done = self._journaled_ids()
        summary.requested = total_tasks(tree, self.gen)
        summary.resumed = len(done)
        if progress is not None and done:
            progress(len(done))
        tasks = (t for t in allocate(tree, self.gen) if t.id not in done)
        with Journal(self.run_dir.sample_shard(0)) as samples, Journal(self.run_dir.failures) as failures:
            self.generate_tasks(tasks, samples, failures, summary, progress)
        summary.seconds = time.perf_counter() - start
        return summary

    def generate_tasks(self, tasks: Iterable[Task], samples: Journal, failures: Journal, summary: Summary,
                       progress: Callable[[int], None] | None = None) -> None:
        """Generate, judge and journal `tasks` in batches of `engine.batch_size`; rejects wait in a
        retry queue that goes out as its own batch once full (or at the end)."""
        size = self.config.engine.batch_size
        retry: list[_Job] = []
        for batch in _batches((_Job(t) for t in tasks), size):
            retry += self._process(batch, samples, failures, summary, progress)
            while len(retry) >= size:
                head, retry = retry[:size], retry[size:]
                retry += self._process(head, samples, failures, summary, progress)
        while retry:
            head, retry = retry[:size], retry[size:]
            retry += self._process(head, samples, failures, summary, progress)

    def _journaled_ids(self) -> set[str]:
        ids = set()
        for record in self.run_dir.iter_samples():
            ids.add(record["id"])
            self.dedup.check_and_add(sample_text(record["messages"]))
        ids.update(r["id"] for r in self.run_dir.iter_failures() if isinstance(r.get("id"), str))
        return ids

    def _process(self, batch: list[_Job], samples: Journal, failures: Journal, summary: Summary,
                 progress: Callable[[int], None] | None) -> list[_Job]:
        requests = [self.request(job) for job in batch]
        completions = self.engine.generate(requests)
        faults.crash_point("gen.generated")
        summary.engine_calls += 1
        valid, failed, retry = [], [], []
        for job, req, out in zip(batch, requests, completions, strict=True):
            summary.output_tokens += out.output_tokens
            out.text = valid_unicode(out.text)  # it is journaled (and may become a row)
            record, reason = self._judge(job, req, out)
            if record is not None:
                valid.append(record)
                continue
            assert reason is not None
            summary.rejections[reason.split(":")[0]] += 1
            if job.attempt < self.gen.max_retries:
                retry.append(_Job(job.task, job.attempt + 1, reason))
                summary.retried += 1
            else:
                failed.append(self._failure(job, reason, out))
                summary.failures[reason.split(":")[0]] += 1
        samples.write_batch(valid)
        failures.write_batch(failed)
        faults.crash_point("gen.batch")
        summary.valid += len(valid)
        summary.failed += len(failed)
        if progress is not None:
            progress(len(valid) + len(failed))
        return retry

    def _judge(self, job: _Job, req: ChatRequest, out: Completion) -> tuple[dict[str, Any] | None, str | None]:
        if out.finish_reason == "error":
            return None, f"engine error: {out.error or 'unknown'}"
        if not out.text.strip():
            return None, "empty"
        if out.finish_reason == "length":
            return None, "truncated"
        fmt = self.formats[job.task.format]
        if self.mode == "json":
            obj = parse_json(out.text)
        else:
            obj = fmt.from_text(f"{fmt.lead} {out.text}", self.gen.chat_turns)
        if obj is None:
            return None, "unparseable" if self.mode == "json" else "missing sections"
        problem = fmt.check(obj, self.gen.chat_turns)
        if problem:
            return None, f"invalid: {problem}"
        messages = fmt.messages(obj)
        if echoes_template(sample_text(messages), self.templates[job.task.format]):
            return None, "invalid: repeats the instructions"
        dup = self.dedup.check_and_add(sample_text(messages))
        if dup:
            return None, dup
        if self.gen.system_prompt:
            messages.insert(0, {"role": "system", "content": self.gen.system_prompt})
        return self._record(job, req, out, messages), None

    def _record(self, job: _Job, req: ChatRequest, out: Completion, messages: list[dict[str, str]]) -> dict[str, Any]:
        t = job.task
        return {"id": t.id, "topic_path": list(t.path), "leaf_id": t.leaf_id, "leaf": t.path[-1],
                "depth": len(t.path) - 1, "format": t.format, "messages": messages, "model": self.engine.model_name,
                "backend": self.engine.backend, "mode": self.mode, "template": self.templates[t.format].name,
                "angle": NAIVE_ANGLE if self.naive else t.angle, "temperature": req.sampling.temperature,
                "top_p": req.sampling.top_p, "seed": req.sampling.seed, "finish_reason": out.finish_reason,
                "prompt_tokens": out.prompt_tokens, "output_tokens": out.output_tokens, "attempt": job.attempt}

    def _failure(self, job: _Job, reason: str, out: Completion) -> dict[str, Any]:
        t = job.task
        return {"id": t.id, "topic_path": list(t.path), "format": t.format, "reason": reason.split(":")[0],
                "detail": reason, "raw": out.text[:500], "attempt": job.attempt}


def echoes_template(text: str, template: Template) -> bool:
    """True when the sample copies an instruction sentence of its template (tiny models do)."""
    lowered = " ".join(text.lower().split())
    return any(sentence in lowered for sentence in template.static_sentences)


def _batches(items: Iterable[_Job], size: int) -> Iterator[list[_Job]]:
    batch: list[_Job] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
