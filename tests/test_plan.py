"""generation.plan (scripted engine, scripted embedder): a leaf's samples are planned in one batched call
per round, each planned item becomes one sample request; duplicates, near-synonyms and items that belong
to a sibling leaf are re-asked with the reason; plans are journaled, so a resumed run repeats no plan
call; a leaf that runs short gets more items planned between two streams."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngine, request_kind
from test_generation import answer, make_tree

from topictree_hf.config import Config
from topictree_hf.engines import ChatRequest
from topictree_hf.generation import plan as plan_module
from topictree_hf.generation.plan import Planner
from topictree_hf.journal import read_jsonl
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import RunDir

JUNK = " I cannot help with that."


class Crash(Exception):
    pass


def _unit(key: str) -> np.ndarray:
    vec = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")).normal(size=32)
    return vec / np.linalg.norm(vec)


def fake_encode(texts):  # noqa: ANN001, ANN201
    """A vector per distinct text (normalised words), leaning towards the tree topic it names (so an
    item sits closer to its own leaf than to a sibling); texts with "SAME" and the same topic share one:
    near-synonyms."""
    out = []
    for text in texts:
        topic = re.search(r"Topic \d+\.\d+ [a-j]", text)
        key = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
        if "SAME" in text:
            key = f"SAME {topic.group(0) if topic else ''}"
        vec = _unit(key) if topic is None or topic.group(0) == text else 0.6 * _unit(topic.group(0).lower()) + \
            0.8 * _unit(key)
        if topic is not None and topic.group(0) == text:
            vec = _unit(text.lower())
        out.append(vec / np.linalg.norm(vec))
    return np.asarray(out, dtype=np.float32)


@pytest.fixture(autouse=True)
def scripted_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "default_encode", lambda: fake_encode)


def config(**gen: object) -> Config:
    return Config(generation={"num_samples": 18, "formats": ["qa"], "mode": "text", "max_retries": 0, "plan": True,
                              **gen}, engine={"batch_size": 8})


def plan_prompt(req: ChatRequest) -> tuple[str, int]:
    text = req.messages[-1]["content"]
    leaf = re.search(r"^Topic path: (.*)$", text, re.M).group(1).split(" > ")[-1]
    return leaf, req.json_schema["properties"]["items"]["minItems"]


def distinct_plans(req: ChatRequest) -> str:
    leaf, count = plan_prompt(req)
    rounds = req.messages[-1]["content"].count("|") + req.sampling.seed % 1000
    return json.dumps({"items": [f"What is point {i} ({rounds}) of {leaf} in detail?" for i in range(count)]})


def responder(plans=distinct_plans, sample=answer):  # noqa: ANN001, ANN201
    def respond(req: ChatRequest) -> str:
        return plans(req) if request_kind(req) == "plan" else sample(req)
    return respond


def kinds(engine: FakeEngine) -> list[str]:
    """The request kinds of each engine call, in call order ("plan" or "sample" per call)."""
    return ["+".join(sorted({request_kind(r) for r in call})) for call in engine.calls]


def test_every_sample_gets_a_planned_item_of_one_batched_plan_call(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    engine = FakeEngine(responder())
    summary = generate_stage(config(), engine, run, make_tree())
    assert summary.delivered == 18
    assert kinds(engine)[0] == "plan" and kinds(engine).count("plan") == 1, "one plan call for all nine leaves"
    assert len(engine.calls[0]) == 9
    samples = list(run.iter_samples())
    assert all(s.planned and s.leaf in s.planned for s in samples)
    assert len({s.planned for s in samples}) == 18, "one item per sample"
    sample_prompts = [r.messages[1]["content"] for call in engine.calls for r in call if request_kind(r) == "sample"]
    planned = {s.planned for s in samples}
    assert all(any(item in p for item in planned) for p in sample_prompts), "the item is in the sample's prompt"
    lines = list(read_jsonl(run.plans))
    assert len(lines) == 9 * 3 and all(line["item"] for line in lines), "allotment 2 + headroom 1 per leaf"
    assert summary.plan_calls == 1 and summary.plan_items == 27 and summary.plan_given_up == 0
    assert summary.plan_requests == 9 and summary.plan_output_tokens > 0


def test_repeats_and_near_synonyms_are_reasked_with_the_reason(tmp_path: Path) -> None:
    prompts: list[str] = []

    def plans(req: ChatRequest) -> str:
        leaf, count = plan_prompt(req)
        text = req.messages[-1]["content"]
        prompts.append(text)
        if "Rejected before" in text:
            return json.dumps({"items": [f"A fresh angle {i} on {leaf} after re-ask?" for i in range(count)]})
        # the first slot repeats across leaves, the third is a near-synonym of the second
        return json.dumps({"items": ["Why does history repeat itself so often?",
                                     f"SAME question of {leaf} worded one way?",
                                     f"SAME question of {leaf} worded differently?"][:count]})

    run = RunDir(tmp_path)
    summary = generate_stage(config(), FakeEngine(responder(plans)), run, make_tree())
    assert summary.delivered == 18
    assert summary.plan_rejections["already planned"] == 8 and summary.plan_rejections["near-synonym"] == 9
    reasks = [p for p in prompts if "Rejected before" in p]
    assert len(reasks) == 9 and all("near-synonym" in p for p in reasks)
    assert sum("already planned" in p for p in reasks) == 8
    assert all("SAME question" in p.split("Already planned")[1] for p in reasks), "the leaf's items are shown"
    assert all("Planned for the other parts" in p for p in reasks), "a short leaf is shown its siblings' items"
    assert not any("Planned for the other parts" in p for p in prompts if "Rejected before" not in p)
    items = [line["item"] for line in read_jsonl(run.plans)]
    assert len(items) == len(set(items)) == 27


def test_a_slot_that_cannot_be_planned_is_given_up_and_its_sample_still_written(tmp_path: Path) -> None:
    def plans(req: ChatRequest) -> str:
        leaf, count = plan_prompt(req)
        spares = ["tiny", "wee"]  # the spares are too short as well
        return json.dumps({"items": ["short", *[f"Item {i} of {leaf} is good?" for i in range(1, count - 2)],
                                     *spares]})

    run = RunDir(tmp_path)
    summary = generate_stage(config(), FakeEngine(responder(plans)), run, make_tree())
    assert summary.delivered == 18 and summary.plan_given_up == 9 and summary.plan_calls == 3
    assert summary.plan_rejections["too short"] == 9 * 3 * 3, "each round: the slot's item and both spares"
    assert Counter(s.planned is None for s in run.iter_samples())[True] == 9
    assert sum(1 for line in read_jsonl(run.plans) if line["item"] is None) == 9


def test_a_crash_after_planning_repeats_no_plan_call_and_gives_the_same_samples(tmp_path: Path) -> None:
    reference = RunDir(tmp_path / "ref")
    generate_stage(config(), FakeEngine(responder()), reference, make_tree())

    def crashing(req: ChatRequest) -> str:
        raise Crash

    run = RunDir(tmp_path / "run")
    with pytest.raises(Crash):
        generate_stage(config(), FakeEngine(responder(sample=crashing)), run, make_tree())
    assert len(list(read_jsonl(run.plans))) == 27 and not list(run.iter_samples())
    engine = FakeEngine(responder())
    generate_stage(config(), engine, run, make_tree())
    assert "plan" not in kinds(engine), "the journaled plan is re-used"
    key = lambda r: (r.id, r.planned, r.messages[0]["content"])  # noqa: E731
    assert sorted(map(key, run.iter_samples())) == sorted(map(key, reference.iter_samples()))


def test_a_short_leaf_gets_more_items_planned_between_streams(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()

    def sample(req: ChatRequest) -> str:
        leaf = re.search(r"^Topic path: (.*)$", req.messages[1]["content"], re.M).group(1).split(" > ")[-1]
        seen[leaf] += 1
        return JUNK if leaf.endswith("a") and seen[leaf] <= 3 else answer(req)

    run = RunDir(tmp_path)
    engine = FakeEngine(responder(sample=sample))
    summary = generate_stage(config(), engine, run, make_tree())
    assert summary.delivered == 18 and summary.topups == 9
    assert kinds(engine).count("plan") == 2, "the headroom covers one top-up a leaf; a second plan round the rest"
    assert all(s.planned for s in run.iter_samples())
    assert len({s.planned for s in run.iter_samples()}) == 18


def test_a_rejected_slot_takes_a_spare_before_any_reask(tmp_path: Path) -> None:
    def plans(req: ChatRequest) -> str:
        leaf, count = plan_prompt(req)
        return json.dumps({"items": ["short", *[f"Item {i} of {leaf} is good?" for i in range(1, count)]]})

    run = RunDir(tmp_path)
    summary = generate_stage(config(), FakeEngine(responder(plans)), run, make_tree())
    assert (summary.plan_calls, summary.plan_given_up, summary.plan_items) == (1, 0, 27)
    items = {(line["leaf_id"], line["index"]): line["item"] for line in read_jsonl(run.plans)}
    assert all(item.startswith("Item 3 of") for (_, index), item in items.items() if index == 0), \
        "slot 1's item was too short: the first spare (item 4 of 5) took its place"


def test_planner_reads_its_journal_and_skips_tried_slots(tmp_path: Path) -> None:
    tree = make_tree()
    leaf = tree.leaves()[0]
    path = tuple(tree.path(leaf.id))
    journal = tmp_path / "plans.jsonl"
    engine = FakeEngine(responder())
    first = Planner(engine, config().generation, tree, journal, encode=fake_encode)
    assert first.plan([(leaf.id, path, [0, 1, 2])]) == 3
    again = Planner(engine, config().generation, tree, journal, encode=fake_encode)
    assert again.plan([(leaf.id, path, [0, 1, 2])]) == 0 and engine.num_calls == 1
    assert [again.item(leaf.id, i) for i in range(3)] == [first.item(leaf.id, i) for i in range(3)]


def test_the_ray_runner_refuses_a_plan_in_one_line_before_any_cluster() -> None:
    from topictree_hf.errors import ConfigError
    from topictree_hf.runners.open import RunnerChoice, open_where

    with pytest.raises(ConfigError, match="generation.plan runs on the local runner only"):
        open_where(config(), RunnerChoice("ray"))
