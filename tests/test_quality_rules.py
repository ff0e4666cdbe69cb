"""The sample judge: each rule on constructed examples, the LLM-judge pieces, and the rules'
precision and recall on tests/data/quality_labels.jsonl (real bundled-model outputs, labelled by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engine import request_kind
from pydantic import ValidationError

from topictree_hf.generation.judge import (
    ASKS_ABOUT_ASSISTANT,
    COPIES_QUESTION,
    DEFAULT_RUBRIC,
    DESCRIBES_ANSWER,
    JUDGE_SCHEMA,
    PLACEHOLDER,
    PROMPT_IS_TOPIC,
    RESTATES_QUESTION,
    RULES,
    JudgeConfig,
    judge_request,
    parse_judgement,
    rule_reject,
    turn_pairs,
)

LABELS = Path(__file__).parent / "data" / "quality_labels.jsonl"
PATH = ["Historical Events", "Ancient History", "Babylon"]


def qa(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


# --- each rule: it fires on the pattern, and not on a good sample that looks close ---------------

@pytest.mark.parametrize(("question", "answer"), [
    ("What is the capital of the ancient city of Babylon?", "Babylon is the capital of the ancient city of Babylon."),
    ("What is the capital of Babylon?", "The answer is Babylon."),
    ("Why is sorghum cultivation important?", "Sorghum cultivation is important."),
    ("What is the relationship between sorghum cultivation and the growth of African grasses, a staple crop?",
     "Sorghum cultivation is closely related to the growth of African grasses, which are a staple crop."),
])
def test_restates_question(question: str, answer: str) -> None:
    assert rule_reject("qa", qa(question, answer), PATH) == RESTATES_QUESTION


@pytest.mark.parametrize(("question", "answer"), [
    ("What is the capital of Babylonia?", "Babylon, on the Euphrates river south of modern Baghdad."),
    ("When did the Western Roman Empire fall?", "476."),
    ("Who built the Hanging Gardens of Babylon?", "Tradition credits Nebuchadnezzar II, around 600 BC."),
    ("Why is sorghum cultivation important?", "Sorghum tolerates drought, so it feeds millions in dry regions."),
])
def test_a_real_answer_does_not_restate(question: str, answer: str) -> None:
    assert rule_reject("qa", qa(question, answer), PATH) is None


@pytest.mark.parametrize("answer", [
    "An answer that is correct, 1 to 4 sentences long.",
    "This question requires a response that provides a detailed answer about the city.",
    "The answer should explain the main causes in a few sentences.",
    "The history of borders is a topic that has been extensively researched.",
    "A response which gives a clear explanation of the trade routes.",
    "The answer is correct and concise.",
    "Rome grew from river trade.\n\nThis response builds on the previous one and adds more detail.",
    "Babylon was rebuilt.\nThe user requested a short answer, so it is brief.",
    "Babylon fell to Persia.\nHere is a better one.",
    "The answer is the city of Babylon was taken by Cyrus.",
])
def test_describes_an_answer(answer: str) -> None:
    assert rule_reject("qa", qa("What caused the fall of Babylon in 539 BC?", answer), PATH) == DESCRIBES_ANSWER


@pytest.mark.parametrize("answer", [
    "Cyrus the Great of Persia took the city in 539 BC, reportedly without a battle.",
    "The answer lies in the Persian army: Cyrus diverted the Euphrates and entered the city.",
    "A topic of debate among historians is whether the city surrendered; most sources say it did.",
    "The answer is Cyrus the Great, whose army entered the city in 539 BC.",
    "The answer is that Cyrus's army diverted the river and walked in along the riverbed.",
    "The Persian king gives a rapid response: his army diverts the Euphrates and enters the city.",
    "The response was swift: Nabonidus fled, and the city opened its gates to the Persians.",
    "If the user wants a date, 539 BC is the year Cyrus took the city; a previous attempt had failed.",
])
def test_a_real_answer_is_not_a_description(answer: str) -> None:
    assert rule_reject("qa", qa("What caused the fall of Babylon in 539 BC?", answer), PATH) is None


@pytest.mark.parametrize(("question", "answer"), [
    ("What is the capital of [country]?", "The capital of [country] is [country_name]."),
    ("Who ruled Babylon?", "Babylon was ruled by {name} during the {era} period."),
    ("Describe <topic>.", "<topic> was an important city state of Mesopotamia."),
    ("Who ruled Babylon in 600 BC?", "King ____ ruled the city at the time of its greatest walls."),
    ("Who wrote the letter?", "It was signed by [Your Name], the scribe of the temple archive."),
])
def test_placeholder(question: str, answer: str) -> None:
    assert rule_reject("qa", qa(question, answer), PATH) == PLACEHOLDER


@pytest.mark.parametrize("answer", [
    "Hammurabi ruled Babylon [1] and wrote a famous code of laws.",
    "See [the British Museum](https://example.org) for the Cyrus Cylinder, found in Babylon in 1879.",
    "Nebuchadnezzar II, who reigned 605-562 BC, rebuilt the Ishtar Gate.",
])
def test_brackets_that_are_not_placeholders(answer: str) -> None:
    assert rule_reject("qa", qa("Who ruled Babylon at its height?", answer), PATH) is None


def test_code_may_use_braces_and_angle_brackets() -> None:
    code = "```python\ndef greet(name):\n    return f'Hello {name} <b>!</b>'\n```"
    messages = [{"role": "user", "content": "Write a Python function that formats a greeting for a name."},
                {"role": "assistant", "content": code}]
    assert rule_reject("code", messages, ["Programming", "Python"]) is None
    messages[0]["content"] = "Write a Python function that greets [user_name]."
    assert rule_reject("code", messages, ["Programming", "Python"]) == PLACEHOLDER


def test_prompt_that_is_only_the_topic() -> None:
    path = ["World Cuisine", "Bread-making", "Sourdough Bread Making"]
    answer = "Mix flour, water and a live starter, let it rise overnight, then bake at a high heat."
    assert rule_reject("instruction", qa("Sourdough Bread Making", answer), path) == PROMPT_IS_TOPIC
    assert rule_reject("qa", qa("sourdough bread-making?", answer), path) == PROMPT_IS_TOPIC
    assert rule_reject("instruction", qa("Explain sourdough bread making to a beginner.", answer), path) is None
    assert rule_reject("qa", qa("What is sourdough bread making?", answer), path) is None
    assert rule_reject("chat", qa("Sourdough Bread Making", answer), path) is None


@pytest.mark.parametrize(("question", "answer"), [
    ("How to make a simple pizza with a twist?", "How to make a simple pizza with a twist."),
    ("Use the input to plan your lawn care.", "Use the input to plan your lawn care.\n\nThe plan is detailed."),
    ("How to make a cake without butter and eggs.", "How to make a cake without butter and eggs, in 100 words."),
    ("What is the capital of Babylon?", "The capital of Babylon is what?"),
    ("Babylonian astronomy and its star catalogues", "Babylonian astronomy and its star catalogues"),
])
def test_copies_question(question: str, answer: str) -> None:
    assert rule_reject("qa", qa(question, answer), PATH) == COPIES_QUESTION


@pytest.mark.parametrize(("fmt", "question"), [
    ("qa", "What is your cultural heritage?"),
    ("qa", "Have you ever visited the ruins of Babylon?"),
    ("instruction", "Describe your favourite Babylonian artefact."),
    ("qa", "Do you think Hammurabi's code was fair?"),
    ("instruction", "Tell me about yourself and Babylon."),
])
def test_asks_about_the_assistant(fmt: str, question: str) -> None:
    answer = "The Pacific Northwest has a rich mix of Indigenous and settler traditions from the 1800s onward."
    assert rule_reject(fmt, qa(question, answer), PATH) == ASKS_ABOUT_ASSISTANT


@pytest.mark.parametrize(("fmt", "question"), [
    ("qa", "How do you read a cuneiform tablet?"),  # generic "you"
    ("instruction", "Explain in your own words why Babylon's walls were famous."),
    ("qa", "How can you protect your clay tablets from humidity?"),  # "your" of a how-to
    ("chat", "What is your favourite Babylonian artefact?"),  # a chat may address the assistant
])
def test_generic_you_and_chat_are_allowed(fmt: str, question: str) -> None:
    answer = "Scribes pressed a reed stylus into wet clay; readers identify sign groups from right-angled wedges."
    assert rule_reject(fmt, qa(question, answer), PATH) is None


def test_every_chat_turn_is_checked_and_system_turns_skipped() -> None:
    messages = [{"role": "system", "content": "Be brief."},
                *qa("Who founded Babylon?", "The Amorite king Sumu-abum founded its first dynasty around 1894 BC."),
                *qa("And its famous king?", "An answer that is correct, 1 to 4 sentences long.")]
    assert len(turn_pairs(messages)) == 2
    assert rule_reject("chat", messages, PATH) == DESCRIBES_ANSWER
    assert rule_reject("chat", messages[:3], PATH) is None


def test_rule_names_are_stable_and_counted_by_prefix() -> None:
    assert RULES == (COPIES_QUESTION, DESCRIBES_ANSWER, PLACEHOLDER, PROMPT_IS_TOPIC, RESTATES_QUESTION,
                     ASKS_ABOUT_ASSISTANT)
    assert all(r.startswith("judge: ") and r.split(":")[0] == "judge" for r in RULES)


# --- the LLM judge pieces --------------------------------------------------------------------------

def test_judge_request_carries_path_example_rubric_and_schema() -> None:
    messages = [{"role": "system", "content": "SYSTEM PROMPT"},
                *qa("Who built the Ishtar Gate?", "Nebuchadnezzar II, around 575 BC." + "x" * 3000)]
    request = judge_request(messages, PATH, seed=7)
    text = request.messages[-1]["content"]
    assert "Historical Events > Ancient History > Babylon" in text and "Who built the Ishtar Gate?" in text
    assert DEFAULT_RUBRIC in text and "SYSTEM PROMPT" not in text and len(text) < 2500
    assert request.json_schema == JUDGE_SCHEMA and request_kind(request) == "judge"
    assert request.sampling.temperature == 0.0 and request.sampling.seed == 7
    custom = judge_request(messages, PATH, rubric="Score 5 only for answers with a date.")
    assert "Score 5 only for answers with a date." in custom.messages[-1]["content"]
    assert DEFAULT_RUBRIC not in custom.messages[-1]["content"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"score": 4, "reason": "Correct and on topic."}', (4, "Correct and on topic.")),
    ('Sure! {"score": "2", "reason": "vague"} done', (2, "vague")),
    ('{"score": 9, "reason": "x"} {"score": 1, "reason": "wrong"}', (1, "wrong")),
    ("Score: 3 - acceptable but vague", (3, "acceptable but vague")),
    ('{"score": true, "reason": "x"}', None),
    ("I cannot grade this.", None),
    ('{"score": 5, "reason": "cut off', (5, "cut off")),
])
def test_parse_judgement(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_judgement(text) == expected


def test_judge_config() -> None:
    assert JudgeConfig().model_dump() == {"model": None, "rubric": None, "threshold": 3}
    assert JudgeConfig(threshold=5, model="/models/judge").threshold == 5
    for bad in ({"threshold": 0}, {"threshold": 6}, {"treshold": 3}):
        with pytest.raises(ValidationError):
            JudgeConfig.model_validate(bad)


# --- precision and recall on the labelled set ------------------------------------------------------

# Measured 2026-12-01 on 103 labelled samples (100 bad): precision 1.00 (61 of 61), recall 0.61;
# held-out parts: 29 samples labelled before the rules were last changed, recall 0.48; 14 samples of
# the README command run without rules after they were final (split heldout2), recall 0.64 (9 of 14).
# See docs/quality.md. 2026-12-03: 40 samples of Qwen2.5-Coder-0.5B (the README command through vLLM, a
# history root and a Python root; split heldout3), 27 bad, almost all for wrong facts, which no rule can
# see: precision 1.00 (5 of 5), recall 0.19, and no rule fires on any of the 13 good answers. The recall
# floor is the 135M model's (its failures are the patterns the rules target); the precision floor and
# "no good sample rejected" hold for both models.
PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.55
QWEN = "readme-qwen0.5b-"


def _labelled() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_labelled_set_is_well_formed() -> None:
    rows = _labelled()
    assert len(rows) >= 60
    for row in rows:
        assert set(row) >= {"format", "topic_path", "messages", "label", "why"}
        assert row["label"] in ("good", "bad") and row["why"].strip()
        assert row["messages"] and all(set(m) == {"role", "content"} for m in row["messages"])
    labels = [row["label"] for row in rows]
    # The bundled 135M model rarely writes a good sample: 3 of 89 by hand labels (docs/quality.md).
    assert labels.count("good") >= 3 and labels.count("bad") >= 30


def rule_scores(rows: list[dict]) -> tuple[float, float, int, int, int]:
    """(precision, recall, true positives, false positives, false negatives) of the rules, "bad" positive."""
    tp = fp = fn = 0
    for row in rows:
        flagged = rule_reject(row["format"], row["messages"], row["topic_path"]) is not None
        bad = row["label"] == "bad"
        tp += flagged and bad
        fp += flagged and not bad
        fn += bad and not flagged
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def test_rules_precision_and_recall_on_the_labelled_set() -> None:
    rows = _labelled()
    precision, _, tp, fp, _ = rule_scores(rows)
    assert precision >= PRECISION_FLOOR, f"precision {precision:.2f} (tp {tp}, fp {fp})"
    _, recall, tp, _, fn = rule_scores([row for row in rows if not row.get("source", "").startswith(QWEN)])
    assert recall >= RECALL_FLOOR, f"recall on the 135M model's samples {recall:.2f} (tp {tp}, fn {fn})"
    # few good samples exist, so a single false positive matters more than the ratio shows
    rejected_good = [(row["why"], rule_reject(row["format"], row["messages"], row["topic_path"]))
                     for row in rows if row["label"] == "good"
                     and rule_reject(row["format"], row["messages"], row["topic_path"]) is not None]
    assert not rejected_good, rejected_good


def test_no_rule_rejects_a_good_answer_of_the_default_model() -> None:
    """A rule that fires on good 0.5B answers is a bug (issue 21): the 13 good Qwen samples all pass, and
    the rules still catch the commentary on the sample that Qwen appends ("This question is ...")."""
    rows = [row for row in _labelled() if row.get("source", "").startswith(QWEN)]
    assert len(rows) >= 40 and sum(row["label"] == "good" for row in rows) >= 13
    precision, recall, tp, fp, fn = rule_scores(rows)
    assert fp == 0 and tp >= 5, (tp, fp, fn)


def test_the_score_can_fail() -> None:
    """The floor is not vacuous: rules that flag nothing, or everything, miss it."""
    rows = _labelled()
    for row in rows:
        row["label"] = "good" if row["label"] == "bad" else "bad"
    precision, recall, *_ = rule_scores(rows)
    assert precision < PRECISION_FLOOR or recall < RECALL_FLOOR
