"""Sample generation, wired as one straight line:

    tasks (TaskPlan)  ->  prompts (Prompts.request)  ->  one engine stream (StreamLoop)
                      ->  check steps (Chain)  ->  kept / retried / failed (Settler)  ->  journals (Sink)

`generate_pending` is the stage's bookkeeping (what is already journaled, what is left, the counts),
whichever runner executes the pending tasks; `SampleGenerator.generate_here` is the single-process
execution, `generate_tasks` the loop a runner's worker calls on its share.

There is no batch barrier: the stream keeps at most `engine.batch_size` requests in flight and hands
back each completion as soon as it finishes; it is checked at once, and the stream is topped up with
the next task, or with the retry (attempt + 1, seeded from the task id and the attempt) when it was
rejected. Records are journaled durably in small flush groups, so a crash loses at most what was in
flight or not yet flushed. What fails after `generation.max_retries` goes to failures.jsonl with its
reason. A rerun skips every id already journaled (valid or failed) and finishes the rest.

The modules, one concern each: prompts.py (what a request is), stream.py (the stream loop and the
journal sink), checks.py and steps.py (the check chain and its steps), llm_judge.py (the LLM judge
step), settle.py (what happens to a checked completion), topup.py (which tasks), summary.py (the counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from topictree_hf.config import Config
from topictree_hf.dedup import Deduper, make_deduper
from topictree_hf.engines.base import Engine
from topictree_hf.generation.allocate import Task, total_tasks
from topictree_hf.generation.checks import Candidate, Chain
from topictree_hf.generation.plan import Planner
from topictree_hf.generation.prompts import Prompts
from topictree_hf.generation.settle import Progress, Settler
from topictree_hf.generation.steps import check_steps, kept_texts
from topictree_hf.generation.stream import Feed, Sink, StreamLoop
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.topup import TaskPlan
from topictree_hf.journal import Journal
from topictree_hf.records import Sample
from topictree_hf.rundir import Journaled, RunDir
from topictree_hf.tree.model import TopicTree

Execute = Callable[[Iterator[Task], Summary, Progress | None], None]


def plan_headroom(allotted: int) -> int:
    """Top-up indices planned ahead per leaf: most leaves need one or two top-ups."""
    return 1 + allotted // 10


def generate_pending(config: Config, run_dir: RunDir, tree: TopicTree, execute: Execute,
                     progress: Progress | None = None) -> Summary:
    """The generate stage's bookkeeping, wherever the work runs: every id already journaled (valid or
    failed) is skipped, the rest goes to `execute(tasks, summary, progress)`, which merges its counts
    into `summary`. `tasks` is a `TaskPlan` (generation/topup.py): the pending allocation, then
    top-ups until the count asked for is delivered or the budget is spent. An executor that reports
    outcomes to the plan (the local stream, Ray's block pool) gets the top-ups in its own stream; for
    one that does not, the top-ups go out in rounds: after each `execute` the plan is rebuilt from the
    journals and the next round executed. `progress` counts delivered samples (those from before first)."""
    start = time.perf_counter()
    journaled = Journaled.read(run_dir)
    summary = Summary(asked=total_tasks(tree, config.generation), resumed=len(journaled.ids))
    plan = TaskPlan(tree, config.generation, journaled)
    summary.budget = plan.budget
    if progress is not None and plan.delivered:
        progress(plan.delivered)
    while True:
        execute(plan, summary, progress)
        summary.topups += plan.topups
        if plan.live or not plan.handed_out:
            break
        plan = TaskPlan(tree, config.generation, Journaled.read(run_dir))
        if not plan.wanted():
            break
    summary.delivered, summary.budget_spent = plan.delivered, plan.spent
    summary.seconds = time.perf_counter() - start
    return summary


class SampleGenerator:
    flush_records = 16  # journal flush group: this many settled records (fewer when fewer are in flight) ...
    flush_seconds = 2.0  # ... or this long after the oldest unflushed one, whichever comes first

    def __init__(self, engine: Engine, config: Config, run_dir: RunDir, dedup: Deduper | None = None) -> None:
        """De-duplication is the config's (or `dedup`) in every variant, so comparisons stay fair. A
        `generation.judge` with its own model opens that model on first use; `close()` releases it."""
        self.engine, self.config, self.gen, self.run_dir = engine, config, config.generation, run_dir
        self.prompts = Prompts(self.gen, engine)
        self.mode = self.prompts.mode
        self.dedup: Deduper = dedup or make_deduper(self.gen)
        self.steps = check_steps(config, self.prompts, self.dedup)

    def close(self) -> None:
        """Release what a step opened (a separate judge engine); the generating engine is the caller's."""
        for step in self.steps:
            step.close()

    def remember(self, samples: Iterable[Sample]) -> None:
        """Let the dedup know samples kept earlier (a resumed run, another worker's journal)."""
        self.dedup.remember(kept_texts(samples))

    def generate_here(self, tasks: Iterable[Task], progress: Progress | None = None) -> Summary:
        """Execute `tasks` in this process, journaled in samples-00000.jsonl and failures.jsonl."""
        self.remember(self.run_dir.iter_samples())
        with Journal(self.run_dir.sample_shard(0)) as samples, Journal(self.run_dir.failures) as failures:
            return self.generate_tasks(tasks, samples, failures, progress)

    def generate_tasks(self, tasks: Iterable[Task], samples: Journal, failures: Journal,
                       progress: Progress | None = None) -> Summary:
        """Generate, check and journal `tasks` as one continuous engine stream, at most
        `engine.batch_size` requests in flight; returns the counts of this stream. With the LLM judge
        on the same engine, its requests go into the same stream; a separate judge engine scores
        groups of `engine.batch_size` (then another stream takes the retries). When `tasks` is a
        TaskPlan, each outcome is reported to it, and its top-ups join the stream."""
        summary = Summary.of_stream(self.engine, self.mode)
        bound = self.config.engine.batch_size
        planner = self._planner(tasks)
        feed = Feed(iter(tasks), self.prompts.request)
        sink = Sink(samples, failures, min(self.flush_records, bound), self.flush_seconds)
        settler = Settler(Chain(self.steps, summary.rejections), feed, sink, summary, self.record,
                          self.gen.max_retries, bound, tasks if isinstance(tasks, TaskPlan) else None, progress,
                          group=min(self.flush_records, bound), group_seconds=self.flush_seconds)
        loop = StreamLoop(self.engine, bound, feed, sink)

        def between() -> bool:  # a stream ended: a separate judge's group, or a plan round for short leaves
            if settler.answer_waiting():
                return True
            if planner is None or not isinstance(tasks, TaskPlan) or not (need := tasks.waiting(plan_headroom)):
                return False
            planner.plan(need, reasks=1)
            tasks.planned()
            return True

        try:
            loop.run(settler.settle, between)
        finally:
            summary.engine_calls, summary.requests = loop.streams, feed.requests
            if planner is not None:
                summary.count_plan(planner.counts)
        return summary

    def _planner(self, tasks: Iterable[Task]) -> Planner | None:
        """generation.plan: plan the pending tasks' leaves (and a few top-up indices each) before the
        stream starts; the prompts then ask for each task's planned item, and a top-up whose index
        has none waits for the next plan round (between two streams)."""
        if not self.gen.plan or not isinstance(tasks, TaskPlan):
            self.prompts.items = None
            return None
        planner = Planner(self.engine, self.gen, tasks.tree, self.run_dir.plans)
        planner.plan(tasks.slots(plan_headroom))
        tasks.ready = planner.tried
        self.prompts.items = planner.item
        return planner

    def record(self, candidate: Candidate) -> Sample:
        """The journal record of a kept candidate (the config's system prompt first, when set)."""
        job, req, out, task = candidate.job, candidate.request, candidate.completion, candidate.job.task
        messages = candidate.messages
        if self.gen.system_prompt:
            messages = [{"role": "system", "content": self.gen.system_prompt}, *messages]
        return Sample(id=task.id, topic_path=list(task.path), leaf_id=task.leaf_id, leaf=task.path[-1],
                      depth=len(task.path) - 1, format=task.format, messages=messages, model=self.engine.model_name,
                      backend=self.engine.backend, mode=self.mode, template=self.prompts.templates[task.format].name,
                      angle=self.prompts.angle(task), planned=self.prompts.item(task),
                      temperature=req.sampling.temperature, top_p=req.sampling.top_p,
                      seed=req.sampling.seed, finish_reason=out.finish_reason, prompt_tokens=out.prompt_tokens,
                      output_tokens=out.output_tokens, attempt=job.attempt, **candidate.fields)
