"""One continuous request stream, no batch barrier: the default `Engine.stream` (pulled lazily, bounded,
re-polled), and the sample generator consuming a stream whose completions come back out of order:
samples journaled before the slowest request finishes, retries in the same stream, flush groups,
progress per finished sample, resume after a stream that died midway."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine, Responder
from feed import Feed
from test_generation import answer, leaf_of, make_tree, run_stage

from topictree_hf.config import Config
from topictree_hf.engines import ChatRequest, Completion
from topictree_hf.engines.base import DEFAULT_IN_FLIGHT
from topictree_hf.generation.allocate import allocate
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.journal import Journal
from topictree_hf.rundir import RunDir


def req(i: int) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"request {i}"}])


def echo(request: ChatRequest) -> str:
    return request.messages[0]["content"]


class OutOfOrder(FakeEngine):
    """A stream that finishes the NEWEST request in flight first, so the first one pulled is the slowest:
    it finishes last, after everything else went through. `before_last` runs just before it is yielded."""

    def __init__(self, responder: Responder, die_after: int | None = None) -> None:
        super().__init__(responder)
        self.bounds: list[int | None] = []
        self.most_in_flight = 0
        self.die_after = die_after
        self.yielded = 0
        self.before_last = lambda: None

    def stream(self, requests: Iterable[ChatRequest], max_in_flight: int | None = None
               ) -> Iterator[tuple[int, Completion]]:
        self.bounds.append(max_in_flight)
        assert max_in_flight is not None
        source, in_flight, pulled = iter(requests), {}, 0
        while True:
            while len(in_flight) < max_in_flight and (request := next(source, None)) is not None:
                in_flight[pulled], pulled = request, pulled + 1
            self.most_in_flight = max(self.most_in_flight, len(in_flight))
            if not in_flight:
                return
            index = max(in_flight)
            if index == 0:
                self.before_last()
            if self.die_after is not None and self.yielded == self.die_after:
                raise RuntimeError("the engine died")
            self.yielded += 1
            yield index, self.generate([in_flight.pop(index)])[0]


def make_generator(tmp_path: Path, engine: FakeEngine, batch_size: int = 4, **gen: Any) -> SampleGenerator:
    config = Config(generation={"num_samples": 18, "formats": ["qa"], "mode": "json", "plan": False, **gen},
                    engine={"batch_size": batch_size})
    return SampleGenerator(engine, config, RunDir(tmp_path))


def journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------ the default Engine.stream


def test_default_stream_pulls_lazily_in_bounded_chunks_and_is_polled_again() -> None:
    engine = FakeEngine(echo)
    feed = Feed(req(i) for i in range(5))
    seen: list[tuple[int, str]] = []
    for index, completion in engine.stream(feed, max_in_flight=2):
        assert feed.pulled - len(seen) <= 2, "never more than max_in_flight outstanding"
        seen.append((index, completion.text))
        if len(seen) == 1:
            feed.append(req(20))  # a retry, appended while the stream runs
    assert seen == [(i, f"request {i}") for i in range(5)] + [(5, "request 20")]
    assert [len(call) for call in engine.calls] == [2, 2, 2]


def test_default_stream_bound_defaults_to_a_batch_and_must_be_positive() -> None:
    engine = FakeEngine(echo)
    assert len(list(engine.stream([req(i) for i in range(40)]))) == 40
    assert [len(call) for call in engine.calls] == [DEFAULT_IN_FLIGHT, 40 - DEFAULT_IN_FLIGHT]
    assert list(engine.stream([])) == []
    with pytest.raises(ValueError, match="at least 1"):
        next(engine.stream([req(0)], max_in_flight=0))


# ------------------------------------------------------------------ the generator on one stream


def test_samples_are_journaled_before_the_slowest_request_finishes(tmp_path: Path) -> None:
    engine = OutOfOrder(answer)
    gen = make_generator(tmp_path, engine, batch_size=4)
    shard = RunDir(tmp_path).sample_shard(0)
    journaled_before_last: list[int] = []
    engine.before_last = lambda: journaled_before_last.append(len(journal_lines(shard)))
    done: list[int] = []
    summary = run_stage(gen, make_tree(), progress=done.append)
    assert summary.valid == 18 and summary.engine_calls == 1 and engine.bounds == [4]
    assert journaled_before_last == [16], "no barrier: 17 samples finished (16 flushed) while request 0 ran"
    assert engine.most_in_flight == 4, "engine.batch_size bounds what is in flight"
    assert done == [1] * 18, "progress per finished sample"
    ids = [s.id for s in RunDir(tmp_path).iter_samples()]
    assert sorted(ids) == sorted(t.id for t in allocate(make_tree(), gen.gen))


def test_out_of_order_completions_give_the_same_samples_as_in_order(tmp_path: Path) -> None:
    run_stage(make_generator(tmp_path / "a", OutOfOrder(answer)), make_tree())
    run_stage(make_generator(tmp_path / "b", FakeEngine(answer)), make_tree())
    a, b = (sorted(journal_lines(p / "samples-00000.jsonl"), key=lambda r: r["id"]) for p in (tmp_path / "a",
                                                                                               tmp_path / "b"))
    assert a == b


def test_rejects_re_enter_the_same_stream_with_the_reason(tmp_path: Path) -> None:
    def flaky(request: ChatRequest) -> str:
        rejected = "rejected" in request.messages[1]["content"]
        return answer(request) if rejected or leaf_of(request)[-1] != "a" else "   "

    engine = OutOfOrder(flaky)
    summary = run_stage(make_generator(tmp_path, engine, max_retries=2), make_tree())
    assert engine.bounds == [4], "one stream for first tries and retries"
    assert summary.valid == 18 and summary.retried == 6 and summary.rejections == {"empty": 6}
    retries = [r for call in engine.calls for r in call if "rejected" in r.messages[1]["content"]]
    assert len(retries) == 6 and all("(empty)" in r.messages[1]["content"] for r in retries)
    kept = {s.id: s for s in RunDir(tmp_path).iter_samples()}
    assert sorted(s.attempt for s in kept.values()) == [0] * 12 + [1] * 6


def test_flush_groups_are_small_and_time_bounded(tmp_path: Path) -> None:
    class Recording(Journal):
        def write_batch(self, records: Iterable[dict[str, Any]]) -> int:
            n = super().write_batch(records)
            groups.append(n)
            return n

    groups: list[int] = []
    tasks = list(allocate(make_tree(), make_generator(tmp_path, FakeEngine(answer)).gen))
    for bound, seconds, expected in ((8, 2.0, [8, 0, 8, 0, 2, 0]), (64, 2.0, [16, 0, 2, 0]),
                                     (8, 0.0, [1, 0] * 18)):
        groups.clear()
        gen = make_generator(tmp_path / f"{bound}-{seconds}", FakeEngine(answer), batch_size=bound)
        gen.flush_seconds = seconds
        with Recording(tmp_path / f"s{bound}{seconds}") as samples, Recording(tmp_path / f"f{bound}{seconds}") as fails:
            gen.generate_tasks(tasks, samples, fails)
        assert groups == expected, (bound, seconds)  # (samples, failures) per flush


def test_a_stream_that_dies_keeps_what_was_judged_and_a_rerun_finishes(tmp_path: Path) -> None:
    tree = make_tree()
    with pytest.raises(RuntimeError, match="died"):
        run_stage(make_generator(tmp_path, OutOfOrder(answer, die_after=7)), tree)
    first = [s.id for s in RunDir(tmp_path).iter_samples()]
    assert len(first) == 7, "the judged samples are flushed on the way out"
    engine = OutOfOrder(answer)
    summary = run_stage(make_generator(tmp_path, engine), tree)
    assert summary.resumed == 7 and summary.valid == 11
    assert sum(len(call) for call in engine.calls) == 11, "journaled ids are not asked again"
    run_stage(make_generator(tmp_path / "ref", FakeEngine(answer)), tree)
    ref = sorted(journal_lines(tmp_path / "ref" / "samples-00000.jsonl"), key=lambda r: r["id"])
    assert sorted(journal_lines(RunDir(tmp_path).sample_shard(0)), key=lambda r: r["id"]) == ref
