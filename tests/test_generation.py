"""SampleGenerator with the scripted engine: formats, full paths in prompts, allocation, validation,
retries in the same stream, failures, journaling and resume."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fake_engine import FakeEngine, request_kind
from fake_model import topic_path

from topictree_hf.config import Config
from topictree_hf.engines import ChatRequest, Completion
from topictree_hf.errors import ConfigError
from topictree_hf.generation.allocate import allocate, counts_per_leaf
from topictree_hf.generation.formats import BUILTIN
from topictree_hf.generation.generator import Progress, SampleGenerator
from topictree_hf.generation.summary import Summary
from topictree_hf.generation.templates import Template
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

FORMATS = ["qa", "instruction", "chat", "code"]


def make_tree(depth: int = 2, degree: int = 3) -> TopicTree:
    tree = TopicTree.new("Historical Events")
    frontier = [tree.root_id]
    for d in range(depth):
        nxt = []
        for nid in frontier:
            for i in range(degree):
                nxt.append(tree.add_child(nid, f"Topic {d}.{len(nxt)} {'abcdefghij'[i]}").id)
        frontier = nxt
    return tree


def leaf_of(req: ChatRequest) -> str:
    assert request_kind(req) == "sample"
    return topic_path(req)[-1]


DETAIL = "recorded in harbour ledgers and bronze inscriptions"  # new words: the rule checks see an answer
PROMPT_FIELDS = {"question", "instruction", "input", "task", "riddle"}


def answer(req: ChatRequest) -> str:
    """A valid, unique answer in whatever layout the request asks for (one the rule checks keep)."""
    unique = f"{leaf_of(req)} seed {req.sampling.seed}"
    if req.json_schema is not None:
        props = req.json_schema["properties"]
        if "turns" in props:
            n = props["turns"]["minItems"]
            return json.dumps({"turns": [{"user": f"Tell me about {unique} {i}?",
                                          "assistant": f"It is {unique} {i}, {DETAIL}."} for i in range(n)]}
                              ) + " trailing words"
        obj = {k: ("python" if k == "language" else f"{k} about {unique}" if k in PROMPT_FIELDS
                   else f"{k} about {unique}, {DETAIL}") for k in props}
        return json.dumps(obj)
    lead = req.messages[-1]["content"]
    if lead == "Question:":
        return f" What about {unique}?\nAnswer: It is {unique}, {DETAIL}."
    if lead == "Instruction:":
        return f" Explain {unique}.\nInput:\nOutput: Here is {unique}, {DETAIL}."
    if lead == "User:":
        return (f" Tell me about {unique}?\nAssistant: It is {unique}, {DETAIL}.\nUser: And more?\n"
                f"Assistant: More on {unique}, {DETAIL}.")
    return f" Print {unique}.\nLanguage: Python\nSolution:\n```python\nprint('{unique}')\n```"


def run_stage(gen: SampleGenerator, tree: TopicTree, progress: Progress | None = None) -> Summary:
    """The generate stage (pipeline.generate_stage) on this generator's engine, config and run dir."""
    return generate_stage(gen.config, gen.engine, gen.run_dir, tree, progress)


def generator(tmp_path: Path, responder, **gen) -> tuple[SampleGenerator, FakeEngine]:  # noqa: ANN001
    engine = FakeEngine(responder)
    config = Config(generation={"num_samples": 18, "plan": False, **gen}, engine={"batch_size": 8})
    return SampleGenerator(engine, config, RunDir(tmp_path)), engine


@pytest.mark.parametrize("mode", ["json", "text"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_prompt_carries_the_full_path(tmp_path: Path, fmt: str, mode: str) -> None:
    gen, engine = generator(tmp_path, answer, formats=[fmt], mode=mode)
    tree = make_tree()
    summary = run_stage(gen, tree)
    assert summary.valid == 18 and summary.failed == 0
    leaf_paths = {" > ".join(p) for p in tree.leaf_paths()}
    for call in engine.calls:
        for req in call:
            text = req.messages[1]["content"]
            assert re.search(r"Topic path: (.*)", text).group(1) in leaf_paths
            assert (req.json_schema is not None) == (mode == "json")
    records = list(RunDir(tmp_path).iter_samples())
    assert {" > ".join(r.topic_path) for r in records} <= leaf_paths
    for r in records:
        assert r.format == fmt and r.messages[0]["role"] == "user" and r.messages[-1]["role"] == "assistant"


def test_allocation_is_balanced_seeded_and_angles_differ() -> None:
    tree = make_tree(2, 3)
    config = Config(generation={"num_samples": 20, "seed": 1}).generation
    counts = counts_per_leaf(9, config)
    assert sum(counts) == 20 and max(counts) - min(counts) == 1
    tasks = list(allocate(tree, config))
    assert len({t.id for t in tasks}) == 20
    assert [t.id for t in tasks] == [t.id for t in allocate(tree, config)]
    other = Config(generation={"num_samples": 20, "seed": 2}).generation
    assert {t.id for t in allocate(tree, other)} != {t.id for t in tasks}
    per_leaf: dict[str, list[str]] = {}
    for t in tasks:
        per_leaf.setdefault(t.leaf_id, []).append(t.angle)
    assert all(len(set(a)) == len(a) for a in per_leaf.values())
    assert [t.index for t in tasks[:9]] == [0] * 9  # every leaf gets one before any gets two
    spl = Config(generation={"samples_per_leaf": 3, "formats": ["qa", "chat"]}).generation
    fixed = list(allocate(tree, spl))
    assert len(fixed) == 27 and set(Counter(t.leaf_id for t in fixed).values()) == {3}
    assert {t.format for t in fixed} == {"qa", "chat"}


def test_rejects_are_retried_in_the_same_stream_with_the_reason_then_recorded(tmp_path: Path) -> None:
    def flaky(req: ChatRequest) -> str | Completion:
        leaf = leaf_of(req)
        if "rejected" in req.messages[1]["content"]:
            return answer(req) if not leaf.endswith("a") else "still nothing useful"
        if leaf.endswith("a"):
            return Completion('{"question": "cut off', "length", 5, 5)
        if leaf.endswith("b"):
            return "   "
        return answer(req)

    gen, engine = generator(tmp_path, flaky, formats=["qa"], mode="json", max_retries=1, topup_budget=1.0)
    summary = run_stage(gen, make_tree())
    assert summary.valid == 12 and summary.failed == 6
    assert summary.rejections == {"truncated": 6, "empty": 6, "unparseable": 6}
    assert summary.failures == {"unparseable": 6}
    assert summary.engine_calls == 1  # one stream; the default `Engine.stream` completes it in chunks of 8
    assert [len(c) for c in engine.calls] == [8, 8, 8, 6]
    rejected_first = [leaf_of(r) for r in engine.calls[0] if leaf_of(r)[-1] in "ab"]
    retried_next = [leaf_of(r) for r in engine.calls[1] if "rejected" in r.messages[1]["content"]]
    assert retried_next == rejected_first  # the first chunk's rejects lead the next poll
    prompts = [r.messages[1]["content"] for c in engine.calls for r in c]
    retry_prompts = [p for p in prompts if "rejected" in p]
    assert len(retry_prompts) == 12 and any("(truncated)" in p for p in retry_prompts)
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 6 and {f["reason"] for f in failures} == {"unparseable"}
    assert all(f["raw"] == "still nothing useful" for f in failures)


def test_exact_duplicates_and_invalid_samples_are_rejected(tmp_path: Path) -> None:
    gen, _ = generator(tmp_path, lambda r: '{"question": "What is the same thing?", "answer": "Always the same."}',
                       formats=["qa"], mode="json", max_retries=0, topup_budget=1.0)
    summary = run_stage(gen, make_tree())
    assert summary.valid == 1 and summary.failures == {"duplicate": 17}
    gen2, _ = generator(tmp_path / "b", lambda r: '{"question": "{{question}}", "answer": "<the answer>"}',
                        formats=["qa"], mode="json", max_retries=0, topup_budget=1.0)
    assert run_stage(gen2, make_tree()).failures == {"invalid": 18}


def test_text_mode_is_primed_and_parsed(tmp_path: Path) -> None:
    gen, engine = generator(tmp_path, answer, formats=["qa"], mode="text")
    run_stage(gen, make_tree())
    req = engine.calls[0][0]
    assert req.messages[-1] == {"role": "assistant", "content": "Question:"}
    record = next(RunDir(tmp_path).iter_samples())
    assert record.messages[0]["content"].startswith("What about")


def test_system_prompt_goes_into_the_output_messages(tmp_path: Path) -> None:
    gen, _ = generator(tmp_path, answer, formats=["qa"], mode="json", system_prompt="Be brief.")
    run_stage(gen, make_tree())
    record = next(RunDir(tmp_path).iter_samples())
    assert record.messages[0] == {"role": "system", "content": "Be brief."}


def test_rerun_skips_finished_ids_and_drops_a_torn_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gen, _ = generator(tmp_path, answer, formats=["qa"], mode="json")
    run_stage(gen, make_tree())
    shard = RunDir(tmp_path).sample_shard(0)
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:10]) + lines[10][:25])  # 10 complete samples and a torn one
    gen2, engine2 = generator(tmp_path, answer, formats=["qa"], mode="json")
    summary = run_stage(gen2, make_tree())
    assert summary.resumed == 10 and summary.valid == 8
    assert sum(len(c) for c in engine2.calls) == 8
    ids = [r.id for r in RunDir(tmp_path).iter_samples()]
    assert len(ids) == len(set(ids)) == 18
    assert "torn" in caplog.text


def test_custom_format(tmp_path: Path) -> None:
    custom = {"template": "Topic path: {{ path | join(' > ') }}\nWrite a riddle about {{ leaf }}.",
              "json_schema": {"type": "object", "properties": {"riddle": {"type": "string", "minLength": 5},
                                                               "solution": {"type": "string"}},
                              "required": ["riddle", "solution"]},
              "messages": [{"role": "user", "field": "riddle"}, {"role": "assistant", "field": "solution"}]}
    gen, engine = generator(tmp_path, answer, formats=["custom"], mode="json", custom=custom)
    assert run_stage(gen, make_tree()).valid == 18
    record = next(RunDir(tmp_path).iter_samples())
    assert record.messages[0]["content"].startswith("riddle about")
    assert engine.calls[0][0].json_schema == custom["json_schema"]


def test_custom_format_bad_schema_and_template_fail_early(tmp_path: Path) -> None:
    base = {"template": "{{ leaf }}", "json_schema": {"type": "object"}, "messages": [{"role": "user", "field": "q"}]}
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        generator(tmp_path, answer, formats=["custom"], custom={**base, "json_schema": {"type": 12}})
    with pytest.raises(ConfigError, match="'nope' is undefined"):
        generator(tmp_path, answer, formats=["custom"], custom={**base, "template": "{{ nope }}"})
    with pytest.raises(ConfigError, match="line 1"):
        generator(tmp_path, answer, formats=["custom"], custom={**base, "template": "{% if %}"})


def test_templates_are_sandboxed() -> None:
    for source in ("{{ path.__class__.__mro__ }}", "{{ leaf.__class__.__init__.__globals__ }}",
                   "{{ ''.__class__.__subclasses__() }}"):
        with pytest.raises(ConfigError, match="unsafe|undefined"):
            Template("evil", source, "evil template")


def test_template_override_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text("Topic path: {{ path | join(' > ') }}\nMY TEMPLATE {{ angle }}")
    gen, engine = generator(tmp_path / "run", answer, formats=["qa"], mode="json", templates={"qa": str(path)})
    run_stage(gen, make_tree())
    assert "MY TEMPLATE" in engine.calls[0][0].messages[1]["content"]
    with pytest.raises(ConfigError, match="does not exist"):
        generator(tmp_path, answer, formats=["qa"], templates={"qa": str(tmp_path / "missing.jinja")})


def test_format_validators() -> None:
    qa = BUILTIN["qa"]
    assert qa.check({"question": "What is it?", "answer": "It is a thing."}, 1) is None
    assert qa.check({"question": "What is it?"}, 1) == "missing answer"
    assert qa.check({"question": "Same text here", "answer": "same text here"}, 1) == "fields repeat each other"
    chat = BUILTIN["chat"]
    assert chat.check({"turns": [{"user": "Hello there?", "assistant": "Hi, friend."}]}, 2) == "1 turns instead of 2"
    instruction = {"instruction": "Summarize it.", "input": "", "output": "A summary."}
    assert BUILTIN["instruction"].check(instruction, 1) is None
