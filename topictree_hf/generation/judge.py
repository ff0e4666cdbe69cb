"""The quality judge for one generated sample: cheap rule checks, and the pieces of an optional
LLM judge (request, parsing, config).

Rules catch what validation cannot: a well-formed sample that teaches nothing. Each names one
failure the bundled model was seen to make (issue 15 and tests/data/quality_labels.jsonl): an
answer that restates its question, an answer that describes an answer ("An answer that is correct,
1 to 4 sentences long.") or comments on the sample ("This response builds on the previous one"),
template placeholders ("[country]"), an answer that copies the question, a prompt that is only the
topic name ("Sourdough Bread Making"), and a factual question about the assistant itself ("your
cultural heritage"). Every rule returns one short, stable reason string
so the generator can count rejections by reason and feed the reason back into a retry.

    reason = rule_reject("qa", messages, path)     # "judge: restates question" or None
    request = judge_request(messages, path)        # ChatRequest for the LLM judge (JSON schema set)
    verdict = parse_judgement(completion.text)     # (score, reason) or None

All functions are pure: no engine, no I/O, no logging.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from topictree_hf.config import JudgeConfig  # noqa: F401  (re-exported: it lived here first)
from topictree_hf.engines.base import ChatRequest, SamplingParams
from topictree_hf.wordforms import content_words, singular, words

Messages = Sequence[Mapping[str, str]]
PREFIX = "judge: "
COPIES_QUESTION = PREFIX + "copies question"
RESTATES_QUESTION = PREFIX + "restates question"
DESCRIBES_ANSWER = PREFIX + "describes an answer"
PLACEHOLDER = PREFIX + "placeholder"
ASKS_ABOUT_ASSISTANT = PREFIX + "asks about the assistant"
PROMPT_IS_TOPIC = PREFIX + "prompt is only the topic"
# In the order they are tried: the first that fires is the reason.
RULES: tuple[str, ...] = (COPIES_QUESTION, DESCRIBES_ANSWER, PLACEHOLDER, PROMPT_IS_TOPIC, RESTATES_QUESTION,
                          ASKS_ABOUT_ASSISTANT)
FACTUAL_FORMATS = frozenset({"qa", "instruction"})
CODE_FORMATS = frozenset({"code"})

# --- rule patterns -------------------------------------------------------------------------------

_DESCRIBES = re.compile("|".join([
    # "An answer that is correct, ...", "A response which provides ...", "The answer should ..."
    r"^\W*(?:an?|the|my|this)\s+(?:correct\s+|good\s+|short\s+|detailed\s+)?"
    r"(?:answer|response|reply|output|explanation)\s+(?:that|which|should|must|will|to|with|is\s+correct)\b",
    r"\b\d+\s+to\s+\d+\s+sentences?\b",  # the template's "1 to 4 sentences long"
    r"\b(?:this|the)\s+(?:question|instruction|task|prompt)\s+(?:requires|asks\s+for|calls\s+for|needs|is\s+asking)\b",
    r"\b(?:provides?|gives?|offers?)\s+an?\s+(?:detailed|clear|brief|concise|short|complete|correct|accurate|good)\s+"
    r"(?:answer|response|explanation)\b",  # not "gives a rapid (immune) response"
    r"\bself-contained\s+and\s+answerable\b",
    r"\b(?:the\s+)?(?:answer|response|output)\s+is\s+(?:correct|accurate|concise|self-contained)\b",
    # a non-answer about the topic: "X is a topic that has been extensively researched"
    r"\bis\s+a\s+(?:\w+\s+){0,2}(?:topic|subject)\s+(?:that|which|of)\b",
    # commentary on the sample instead of the sample: "This response builds on the previous one"
    r"\b(?:this|the)\s+(?:response|answer)\s+(?:needs\s+to|builds\s+on|requires)\b",
    r"\b(?:this|the)\s+instructions?\s+(?:(?:is|are)\s+(?:a|an|about|designed|clear)|needs?\s+to|requires)\b",
    r"\bthe\s+user\s+(?:is\s+asked|asked\s+for|requested)\b",
    r"\bprevious\s+attempt\s+was\s+rejected\b|\bthe\s+previous\s+(?:answer|response|instruction)\b",
    r"\bhere\s+is\s+a\s+better\s+one\b|\brewritten\s+version\b",
    # "The answer is the capital of Egypt is Cairo.": a sentence about the answer wrapped round one
    r"^\W*the\s+answer\s+is\s*:?\s+(?:the|a|an)\s+(?:[\w'-]+\s+){0,10}?(?:is|are|was|were)\b",
    r"\bplease\s+(?:add|edit|provide)\s+(?:an?\s+|the\s+)?(?:input|answer|response)\b",
    # commentary on the sample after the answer (Qwen2.5-0.5B, 2026-12-03): "This question is self-contained
    # and directly addresses ...", "This question introduces ...", "Answer Explanation: ...", "The answer provides"
    r"\bthis\s+question\s+(?:is\s+(?:self-contained|specifically|designed)|introduces|(?:directly\s+)?addresses)\b",
    r"\banswer\s+explanation\s*:",
    r"\bthe\s+answer\s+provides\b",
]), re.IGNORECASE)

_PLACEHOLDER = re.compile("|".join([
    r"(?i:\[(?:insert\s|your\s|name\b|\.\.\.)[^\[\]\n]{0,40}\])",  # "[insert date]", "[Your Name]", "[...]"
    r"\[[A-Za-z_][A-Za-z_ ]{0,30}\](?!\()",  # "[country]", "[List of details]" (not "[1]", not a markdown link)
    r"\{\{?\s*[A-Za-z_][\w ]{0,30}\}\}?",  # "{name}", "{{ topic }}"
    r"<\s*(?:the\s+|your\s+|a\s+|an\s+)?[a-z_][a-z_ ]{0,30}>",  # "<topic>", "<the answer>"
    r"_{3,}",  # fill-in blanks
]))

# "your lawn" / "your budget" address any reader (a how-to); "your heritage" / "your favourite" ask
# the assistant about a self it does not have.
_TO_ASSISTANT = re.compile("|".join([
    r"\byour\s+(?:own\s+)?(?:cultural\s+|personal\s+)?(?:heritage|culture|background|favou?rites?|opinions?|views?|"
    r"experiences?|family|childhood|hometown|home\s+town|country|life|name|age|job|hobby|hobbies|memories|"
    r"beliefs?|feelings?|thoughts?|preferences?|ancestors?|ancestry|religion|nationality)\b",
    r"\byourself\b",
    r"\b(?:do|did|have|had|are|were|would|will|could)\s+you\s+(?:ever\s+|personally\s+)?"
    r"(?:think|feel|like|love|enjoy|prefer|believe|remember|visit|visited|been|experienced|grow|grew|live|lived)\b",
]), re.IGNORECASE)

_LEAD_IN = re.compile(r"^\W*(?:the\s+)?(?:answer|response|output)\s*(?:is)?\s*:?\s*", re.IGNORECASE)


# --- rule checks ---------------------------------------------------------------------------------

def turn_pairs(messages: Messages) -> list[tuple[str, str]]:
    """(user, assistant) pairs in order; system turns and an unanswered last user turn are skipped."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for m in messages:
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "user":
            question = content
        elif role == "assistant" and question is not None:
            pairs.append((question, content))
            question = None
    return pairs


def _copies(question: str, answer: str) -> bool:
    """The answer is the question again: reordered into a statement, or the question followed by more."""
    q, a = words(question), words(_LEAD_IN.sub("", answer))
    if not a:
        return False
    return q == a or (set(q) == set(a) and abs(len(q) - len(a)) <= 1) or (len(q) >= 2 and a[:len(q)] == q)


def _is_topic(question: str, path: Sequence[str]) -> bool:
    """The prompt is a topic of the path and nothing else ("Sourdough Bread Making"); every word
    counts, so "What is sourdough bread making?" is a question, not a topic."""
    key = _word_set(question)
    return bool(key) and any(key == _word_set(topic) for topic in path)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(singular(w) for w in words(text))


def _restates(question: str, answer: str) -> bool:
    """The answer adds (almost) no word the question did not have: "What is the capital of the
    ancient city of Babylon?" / "Babylon is the capital of the ancient city of Babylon."

    Words are compared by their first 5 letters so "relationship" / "related" count as one."""
    q = {w[:5] for w in content_words(question)}
    a = [w[:5] for w in content_words(_LEAD_IN.sub("", answer))]
    if not a:  # "No." / "It is not.": short, but not a restatement
        return False
    novel = sum(1 for w in a if w not in q)
    return novel == 0 or (len(a) >= 6 and novel / len(a) < 0.2)


def _check_pair(fmt: str, question: str, answer: str, path: Sequence[str]) -> str | None:
    code = fmt in CODE_FORMATS
    if _copies(question, answer):
        return COPIES_QUESTION
    if not code and _DESCRIBES.search(answer):
        return DESCRIBES_ANSWER
    if _PLACEHOLDER.search(question) or (not code and _PLACEHOLDER.search(answer)):
        return PLACEHOLDER
    if fmt in FACTUAL_FORMATS and _is_topic(question, path):
        return PROMPT_IS_TOPIC
    if not code and _restates(question, answer):
        return RESTATES_QUESTION
    if fmt in FACTUAL_FORMATS and _TO_ASSISTANT.search(question):
        return ASKS_ABOUT_ASSISTANT
    return None


def rule_reject(fmt: str, messages: Messages, path: Sequence[str] = ()) -> str | None:
    """Why the sample should be rejected (one of `RULES`), or None when every rule passes.

    `fmt` is the format name (qa, instruction, chat, code, custom); in `code` the solution is
    code, so only copying and placeholders in the task are checked; the you/your and topic-name
    rules apply to the factual formats (qa, instruction) only, since a chat may address the
    assistant. `path` is the topic path (root first): a prompt that is just one of its topics is rejected."""
    for question, answer in turn_pairs(messages):
        reason = _check_pair(fmt, question, answer, path)
        if reason is not None:
            return reason
    return None


# --- the LLM judge -------------------------------------------------------------------------------

DEFAULT_RUBRIC = (
    "Score the example from 1 to 5. 5: the answer is correct, about the topic at the end of the path, "
    "understandable without other context, and useful for training an assistant. 3: acceptable but vague "
    "or partly off-topic. 1: wrong, off-topic, a placeholder, a restated question, or not an answer."
)
JUDGE_SYSTEM = "You grade synthetic training examples strictly and briefly. Answer with JSON only."
JUDGE_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
MAX_TURN_CHARS = 1500  # bounds the judge's prompt (and its cost) whatever the sample's length
JUDGE_MAX_TOKENS = 80


def judge_messages(messages: Messages, path: Sequence[str], rubric: str | None = None) -> list[dict[str, str]]:
    """The chat that asks for one score: the path, the example (long turns cut), the rubric."""
    lines = [f"Topic path: {' > '.join(path)}" if path else "Topic path: (none)", "", "Example:"]
    for m in messages:
        if m.get("role") == "system":
            continue
        content = str(m.get("content") or "")
        if len(content) > MAX_TURN_CHARS:
            content = content[:MAX_TURN_CHARS] + " [...]"
        lines.append(f"{str(m.get('role')).capitalize()}: {content}")
    lines += ["", f"Rubric: {rubric or DEFAULT_RUBRIC}",
              'Reply as JSON: {"score": <1-5>, "reason": "<one short sentence>"}']
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def judge_request(messages: Messages, path: Sequence[str], rubric: str | None = None,
                  seed: int | None = None, max_tokens: int = JUDGE_MAX_TOKENS) -> ChatRequest:
    """One judge request (temperature 0, JSON schema for guided decoding); batch many in one
    `engine.generate` call."""
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=seed)
    return ChatRequest(judge_messages(messages, path, rubric), params, dict(JUDGE_SCHEMA))


_SCORE_TEXT = re.compile(r"\bscore\W{0,5}([1-5])\b", re.IGNORECASE)
_REASON_TEXT = re.compile(r'"reason"\s*:\s*"((?:[^"\\]|\\.)*)')


def parse_judgement(text: str) -> tuple[int, str] | None:
    """(score 1-5, reason) from the judge's answer: the first JSON object with an integer score,
    else a "score: N" line or a JSON object cut off at max_tokens (a model without guided decoding
    may skip or break the JSON); None if neither."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            score = obj.get("score")
            if isinstance(score, str) and score.strip().isdigit():
                score = int(score.strip())
            if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
                return score, " ".join(str(obj.get("reason") or "").split())[:200]
        start = text.find("{", start + 1)
    match = _SCORE_TEXT.search(text)
    if match is None:
        return None
    reason = _REASON_TEXT.search(text, match.end())  # JSON cut off at max_tokens
    rest = reason.group(1) if reason else text[match.end():].strip(" \t\n.,;:-")
    return int(match.group(1)), " ".join(rest.split())[:200]
