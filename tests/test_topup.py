"""The count asked for is the count delivered (scripted engine): after the retries the generator tops up
with new tasks (new index, id, angle and seed) for the leaves still short, round-robin so the per-leaf
balance holds, until the count is reached or the request budget is spent; the same ids whether the run
is interrupted, resumed, or executed in rounds by a runner that does not report outcomes (Ray)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from test_generation import answer, leaf_of, make_tree

from topictree_hf.cli.common import print_generation_summary
from topictree_hf.config import Config
from topictree_hf.engines import ChatRequest
from topictree_hf.generation.allocate import allocate, leaf_task
from topictree_hf.generation.generator import SampleGenerator, generate_pending
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.topup import TaskPlan
from topictree_hf.journal import Journal
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import Journaled, RunDir

JUNK = " I cannot help with that."


def config(**gen: object) -> Config:
    return Config(generation={"num_samples": 18, "formats": ["qa", "chat"], "mode": "text", "plan": False,
                              "max_retries": 0, **gen}, engine={"batch_size": 8})


def per_leaf(run: RunDir) -> Counter[str]:
    return Counter(s.leaf_id for s in run.iter_samples())


def test_topup_fills_the_short_leaves_and_keeps_the_balance(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()

    def first_two_fail_at_a(req: ChatRequest) -> str:
        leaf = leaf_of(req)
        seen[leaf] += 1
        return JUNK if leaf.endswith("a") and seen[leaf] <= 2 else answer(req)

    tree = make_tree()
    run = RunDir(tmp_path)
    done: list[int] = []
    summary = generate_stage(config(), FakeEngine(first_two_fail_at_a), run, tree, progress=done.append)
    assert (summary.valid, summary.failed, summary.topups) == (18, 6, 6)
    assert summary.delivered == summary.asked == 18 and summary.requests == 24 and not summary.budget_spent
    assert set(per_leaf(run).values()) == {2}, "every leaf has its allotment"
    assert sum(done) == 18, "progress counts delivered samples"
    allocated = {t.id for t in allocate(tree, config().generation)}
    samples = list(run.iter_samples())
    topups = [s for s in samples if s.id not in allocated]
    assert len(topups) == 6 and all(s.leaf.endswith("a") for s in topups)
    tasks = {leaf_task(config().generation, s.leaf_id, tuple(s.topic_path), k).id: k for s in topups for k in (2, 3)}
    assert {tasks[s.id] for s in topups} == {2, 3}, "top-ups are the next indices past the allotment"
    angles = {s.leaf_id: set() for s in topups}
    for f in run.iter_failures():
        assert f.id in allocated
    for s in topups:
        angles[s.leaf_id].add(s.angle)
    assert all(len(a) == 2 for a in angles.values()), "new angles"
    assert summary.to_dict()["delivered"] == 18 and summary.to_dict()["missing"] == 0
    assert summary.to_dict()["short_reason"] is None


def test_topup_stops_at_the_budget_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def never_at_a(req: ChatRequest) -> str:
        return JUNK if leaf_of(req).endswith("a") else answer(req)

    run = RunDir(tmp_path)
    summary = generate_stage(config(topup_budget=1.5), FakeEngine(never_at_a), run, make_tree())
    assert summary.budget == 27 and summary.requests == 27 and summary.budget_spent
    assert (summary.valid, summary.delivered, summary.topups) == (12, 12, 9)
    failed_at = Counter(f.topic_path[-1] for f in run.iter_failures())
    assert sorted(failed_at.values()) == [5, 5, 5], "the budget is shared round-robin by the short leaves"
    info = summary.to_dict()
    assert (info["asked"], info["delivered"], info["missing"], info["topups"], info["requests"], info["budget"]) == \
        (18, 12, 6, 9, 27, 27)
    assert "budget spent" in info["short_reason"] and "most rejected: invalid 15" in info["short_reason"]
    print_generation_summary(info)
    err = capsys.readouterr().err
    assert "delivered 12 of 18 samples (67%)" in err and "6 missing: top-up budget spent" in err


def test_a_topup_is_retried_only_within_the_budget(tmp_path: Path) -> None:
    def never_at_a(req: ChatRequest) -> str:
        return JUNK if leaf_of(req).endswith("a") else answer(req)

    summary = generate_stage(config(topup_budget=1.5, max_retries=1), FakeEngine(never_at_a), RunDir(tmp_path),
                             make_tree())
    assert summary.budget_spent and summary.delivered == 12
    assert 27 <= summary.requests <= 27 + 8, "allocation retries always run; top-ups stop at the budget"
    assert summary.topups < 9


def flaky(req: ChatRequest) -> str:
    """Junk for about a third of the requests, decided by the seed alone (so by task id and attempt)."""
    seed = req.sampling.seed or 0
    return JUNK if hashlib.sha256(str(seed).encode()).digest()[0] % 3 == 0 else answer(req)


def journals(run: RunDir) -> tuple[set[str], set[str]]:
    return {s.id for s in run.iter_samples()}, {f.id for f in run.iter_failures()}


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", [12, 21, 27])
def test_an_interrupted_topup_resumes_to_the_same_ids(tmp_path: Path, crash_after: int) -> None:
    reference = RunDir(tmp_path / "ref")
    ref = generate_stage(config(max_retries=1), FakeEngine(flaky), reference, make_tree())
    assert ref.topups > 0 and ref.delivered == 18

    calls = 0

    def crashing(req: ChatRequest) -> str:
        nonlocal calls
        calls += 1
        if calls > crash_after:
            raise Crash
        return flaky(req)

    run = RunDir(tmp_path / "run")
    with pytest.raises(Crash):
        generate_stage(config(max_retries=1), FakeEngine(crashing), run, make_tree())
    before = journals(run)
    assert before[0] | before[1]
    rerun = generate_stage(config(max_retries=1), FakeEngine(flaky), run, make_tree())
    assert journals(run) == journals(reference)
    assert rerun.delivered == 18 and set(per_leaf(run).values()) == {2}


def test_rounds_for_a_runner_that_does_not_report_outcomes(tmp_path: Path) -> None:
    """As the Ray runner does: each execute gets the tasks as a list, journals elsewhere, reports nothing;
    the stage rebuilds its plan from the journals and sends the next round."""
    local = RunDir(tmp_path / "local")
    generate_stage(config(max_retries=1), FakeEngine(flaky), local, make_tree())

    run = RunDir(tmp_path / "rounds")
    cfg = config(max_retries=1)
    engine = FakeEngine(flaky)
    rounds: list[int] = []

    def execute(tasks, summary: Summary, progress) -> None:  # noqa: ANN001
        block = list(tasks)
        rounds.append(len(block))
        gen = SampleGenerator(engine, cfg, run)
        gen.remember(run.iter_samples())
        with Journal(run.path / f"samples-round-{len(rounds)}.jsonl") as samples, Journal(run.failures) as failures:
            gen.generate_tasks(block, samples, failures)  # its counts are not the stage's

    summary = generate_pending(cfg, run, make_tree(), execute)
    assert len(rounds) >= 2 and rounds[0] == 18, f"allocation first, then top-up rounds: {rounds}"
    assert journals(run) == journals(local), "the same ids as one stream with top-ups in it"
    assert summary.delivered == 18 and summary.topups == sum(rounds[1:])


def test_the_plan_reads_journaled_topups_and_requests(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    generate_stage(config(max_retries=1), FakeEngine(flaky), run, make_tree())
    journaled = Journaled.read(run)
    plan = TaskPlan(make_tree(), config(max_retries=1).generation, journaled)
    assert plan.delivered == 18 and not plan.wanted() and list(plan) == []
    assert plan.requests == sum(journaled.kept.values()) + sum(journaled.failed.values()) > 18
