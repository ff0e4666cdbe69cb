"""`generation.dedup: semantic` in the stream: a sample too close to a kept one of its depth-1 branch is
rejected and re-asked with the near sample quoted; a near copy in another branch is kept; candidates
are embedded in groups and decided in the order they came, whatever the grouping; a resumed run's
samples count in their own branches."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fake_engine import FakeEngine
from test_dedup import Themes
from test_generation import answer, make_tree

from topictree_hf.config import Config
from topictree_hf.dedup import NearDeduper
from topictree_hf.engines import ChatRequest, Completion
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.checks import Candidate, Chain, Check, Result
from topictree_hf.generation.generator import SampleGenerator, generate_pending
from topictree_hf.generation.settle import Settler
from topictree_hf.generation.steps import Dedup, kept_texts
from topictree_hf.generation.stream import Feed, Job, Sink
from topictree_hf.generation.summary import Summary
from topictree_hf.records import SEMANTIC_DUPLICATE
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

QUOTED = re.compile(r'different from: "(.*)"\)')


def volcanic(request: ChatRequest) -> str:
    """First tries all ask about a volcano (one direction for `Themes`), in words of their own; a
    retry after a semantic rejection asks something else."""
    obj = json.loads(answer(request))
    if "different from" not in request.messages[1]["content"]:
        obj["question"] = f"Volcano question: {obj['question']}"
    return json.dumps(obj)


def branch_of(request: ChatRequest) -> tuple[str, ...]:
    path = re.search(r"Topic path: (.*)", request.messages[1]["content"]).group(1).split(" > ")
    return tuple(path[:2])


def semantic_generator(path: Path, embedder: Themes, **gen: Any) -> tuple[SampleGenerator, FakeEngine]:
    engine = FakeEngine(volcanic)
    config = Config(generation={"num_samples": 18, "formats": ["qa"], "mode": "json", "dedup": "semantic",
                                "plan": False, **gen},
                    engine={"batch_size": 8})
    dedup = NearDeduper(config.generation.near_dup_threshold, config.generation.semantic_dup_threshold, embedder)
    return SampleGenerator(engine, config, RunDir(path), dedup=dedup), engine


def run_here(gen: SampleGenerator, tree: TopicTree) -> Summary:
    """The generate stage's bookkeeping around this generator (and its stand-in embedder)."""
    return generate_pending(gen.config, gen.run_dir, tree, lambda tasks, summary, bar: summary.merge(
        gen.generate_here(tasks, bar)))


def test_a_near_sample_is_rejected_in_its_branch_only_and_the_retry_is_told_what_to_differ_from(
        tmp_path: Path) -> None:
    embedder = Themes()
    gen, engine = semantic_generator(tmp_path, embedder)
    tree = make_tree()
    summary = run_here(gen, tree)
    assert summary.valid == 18 and summary.failed == 0
    assert summary.rejections == {SEMANTIC_DUPLICATE: 15}, "one kept volcano per depth-1 branch (3), one bucket"
    kept = list(RunDir(tmp_path).iter_samples())
    first_tries = {tuple(s.topic_path[:2]): s.messages[0]["content"] for s in kept if s.attempt == 0}
    assert len(first_tries) == 3 and all(q.startswith("Volcano question") for q in first_tries.values()), \
        "the same question in another branch is kept"
    assert sorted(s.attempt for s in kept) == [0] * 3 + [1] * 15
    retries = [r for call in engine.calls for r in call if "rejected" in r.messages[1]["content"]]
    assert len(retries) == 15
    for request in retries:
        prompt = request.messages[1]["content"]
        assert f"rejected ({SEMANTIC_DUPLICATE}: cosine 1.00 with a kept sample; different from:" in prompt
        assert QUOTED.search(prompt).group(1) == first_tries[branch_of(request)], "the kept one of its own branch"
    assert sum(embedder.calls) == 18 + 15 and len(embedder.calls) < 18, "embedded in groups, each text once"


class Parse(Check):
    """Stands in for validation: the completion text is the sample's user turn."""

    name = "invalid"

    def filter(self, candidate: Candidate) -> Result:
        candidate.messages = [{"role": "user", "content": candidate.completion.text},
                              {"role": "assistant", "content": "An answer."}]
        return True


class Row:
    def __init__(self, candidate: Candidate) -> None:
        self.id = candidate.job.task.id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id}


def settle_in_groups(completions: list[tuple[str, str]], group: int, seconds: float, embedder: Themes
                     ) -> tuple[list[str], list[str]]:
    """Settle `completions` ((depth-1 branch, text), in this order) with the semantic dedup deciding
    in groups of `group` (or `seconds` after the oldest came); the ids kept and the reasons of the
    rest, in the order they were decided."""
    summary = Summary()
    dedup = NearDeduper(0.8, semantic_threshold=0.9, embedder=embedder)
    sink = Sink(None, None, 10**6, 1e9)  # type: ignore[arg-type]  # never flushed here
    settler = Settler(Chain([Parse(), Dedup(dedup)], summary.rejections), Feed(iter(()), lambda job: ChatRequest([])),
                      sink, summary, Row, 0, 64, group=group, group_seconds=seconds)
    for i, (branch, text) in enumerate(completions):
        task = Task(str(i), f"leaf{i}", ("Root", branch, f"leaf {i}"), 0, "qa", "angle")
        settler.settle(Job(task), ChatRequest([]), Completion(text, "stop", 1, 1))
    settler.answer_waiting()
    return [r["id"] for r in sink.samples], [f["detail"] for f in sink.failures]


def test_group_decisions_follow_arrival_order_whatever_the_grouping() -> None:
    completions = [("A", "Volcano one erupted in spring near the harbour town"),
                   ("B", "Volcano two erupted in winter over the northern valley"),
                   ("A", "Volcano three is a near sample of the first, in its own branch"),
                   ("A", "Bread dough rises because yeast ferments the sugars"),
                   ("B", "Volcano two erupted in winter over the northern valley"),  # an exact copy
                   ("C", "Volcano four, alone in its branch, is kept"),
                   ("A", "Tides follow the pull of the moon on the oceans")]
    outcomes, calls = [], []
    for group, seconds in ((1, 1e9), (3, 1e9), (64, 1e9), (64, 0.0)):
        embedder = Themes()
        outcomes.append(settle_in_groups(completions, group, seconds, embedder))
        calls.append(embedder.calls)
    assert outcomes[0] == outcomes[1] == outcomes[2] == outcomes[3]
    kept, reasons = outcomes[0]
    assert kept == ["0", "1", "3", "5", "6"]
    assert reasons == [f'{SEMANTIC_DUPLICATE}: cosine 1.00 with a kept sample; different from: '
                       '"Volcano one erupted in spring near the harbour town"', "duplicate"]
    assert calls[2] == [7], "one group, one embedding pass: the in-group copies are decided after the earlier ones"
    assert calls[0] == [1] * 6, "one at a time: the copy of a kept text is not embedded"
    assert calls[1] == [3, 2, 1]
    assert calls[3] == calls[0], "a group is also due group_seconds after its oldest came"


def test_a_resumed_run_remembers_its_samples_in_their_branches(tmp_path: Path) -> None:
    gen, _ = semantic_generator(tmp_path / "first", Themes())
    run_here(gen, make_tree())
    samples = list(RunDir(tmp_path / "first").iter_samples())
    volcano = next(s for s in samples if s.attempt == 0)
    other_branch = next(s for s in samples if s.topic_path[1] != volcano.topic_path[1] and s.attempt == 1)
    resumed, _ = semantic_generator(tmp_path / "second", Themes())
    resumed.dedup.remember(kept_texts(samples))  # what SampleGenerator.remember passes the deduper
    branch = tuple(other_branch.topic_path[:2])
    its_volcano = next(s for s in samples if s.attempt == 0 and tuple(s.topic_path[:2]) == branch)
    near = "A volcano question in other words, about the same thing"
    assert resumed.dedup.check_and_add(near, branch) == (f'{SEMANTIC_DUPLICATE}: cosine 1.00 with a kept sample; '
                                                         f'different from: "{its_volcano.messages[0]["content"]}"')
    assert resumed.dedup.check_and_add(near + " elsewhere", ("Historical Events", "Another Branch")) is None
    assert resumed.dedup.check_and_add(volcano.text(), ("Historical Events", "Another Branch")) == "duplicate"
