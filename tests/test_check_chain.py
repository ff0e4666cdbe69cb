"""The check chain (generation/checks.py): each step keeps a candidate or rejects it with a reason,
the chain counts the rejections by `records.reason_key` and stops at the first; a step that needs a
model's answer first stops the chain with its request, and the chain goes on from there once the
answer is in; a grouped step stops it until the step has prepared a group."""

from __future__ import annotations

from collections import Counter

from topictree_hf.engines import ChatRequest, Completion
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.checks import Ask, Candidate, Chain, Check, Result, Wait
from topictree_hf.generation.stream import Job


class Short(Check):
    name = "short"

    def filter(self, candidate: Candidate) -> Result:
        return len(candidate.completion.text) > 3 or (False, f"short: {len(candidate.completion.text)} chars")


class NoX(Check):
    name = "has x"

    def filter(self, candidate: Candidate) -> Result:
        return "x" not in candidate.completion.text


class Asks(Check):
    name = "asked"

    def ask(self, candidate: Candidate) -> ChatRequest:
        return ChatRequest([{"role": "user", "content": f"good? {candidate.completion.text}"}])

    def filter(self, candidate: Candidate) -> Result:
        assert candidate.answer is not None
        candidate.fields["verdict"] = candidate.answer.text
        return candidate.answer.text == "yes" or (False, "asked: said no")


class Longest(Check):
    """Grouped: keeps only the longest text of its group."""

    name = "longest"
    grouped = True

    def prepare(self, candidates: list[Candidate]) -> None:
        longest = max(len(c.completion.text) for c in candidates)
        for c in candidates:
            c.prepared = {"longest": longest}

    def filter(self, candidate: Candidate) -> Result:
        assert candidate.prepared is not None
        return len(candidate.completion.text) == candidate.prepared["longest"]


def candidate(text: str) -> Candidate:
    job = Job(Task("id", "leaf", ("Root", "Leaf"), 0, "qa", "angle"))
    return Candidate(job, ChatRequest([]), Completion(text, "stop", 1, 1))


def test_the_chain_counts_the_first_rejection_by_reason_key() -> None:
    rejections: Counter[str] = Counter()
    chain = Chain([Short(), NoX()], rejections)
    assert chain.run(candidate("fine words")) is None
    assert chain.run(candidate("ab")) == "short: 2 chars"
    assert chain.run(candidate("a bad x here")) == "has x", "a bare False is rejected under the step's name"
    assert chain.run(candidate("x")) == "short: 1 chars", "the first rejection only"
    assert rejections == {"short": 2, "has x": 1}


def test_a_step_that_asks_stops_the_chain_until_its_answer_is_in() -> None:
    rejections: Counter[str] = Counter()
    chain = Chain([Short(), Asks(), NoX()], rejections)
    for answer, verdict in (("yes", None), ("no", "asked: said no")):
        c = candidate("a fine sample")
        asked = chain.run(c)
        assert isinstance(asked, Ask) and asked.request.messages[0]["content"] == "good? a fine sample"
        c.answer = Completion(answer, "stop", 1, 1)
        assert chain.run(c) == verdict and c.fields == {"verdict": answer}
    assert rejections == {"asked": 1}


def test_a_grouped_step_waits_until_it_prepared_a_group_and_goes_on_from_there() -> None:
    rejections: Counter[str] = Counter()
    chain = Chain([Short(), Longest(), NoX()], rejections)
    group = [candidate(t) for t in ("a sample", "a longer sample", "ab", "the longest x sample")]
    verdicts = [chain.run(c) for c in group]
    assert verdicts[2] == "short: 2 chars" and all(isinstance(v, Wait) and isinstance(v.step, Longest)
                                                   for v in verdicts[:2] + verdicts[3:])
    waiting = [group[i] for i in (0, 1, 3)]
    chain.steps[1].prepare(waiting)
    assert [chain.run(c) for c in waiting] == ["longest", "longest", "has x"]
    assert all(c.prepared is None for c in waiting), "what a step prepared is for that step only"
    assert rejections == {"short": 1, "longest": 2, "has x": 1}
