"""The check steps of a sample, in the order they run (`check_steps`); each keeps a candidate or
rejects it with a reason (the chain, generation/checks.py, counts). To add a step, write its class
here and put it in the list.

    validation   engine error, empty, truncated at max_tokens, unparseable / missing sections, the
                 format's check, copies a sentence of its template
    rules        generation/judge.py `rule_reject` (generation.rules): each rule its own reason
    LLM judge    generation/llm_judge.py (generation.judge): a score under the threshold rejects
    dedup        last, so only kept texts are remembered
"""

from __future__ import annotations

from topictree_hf.config import Config
from topictree_hf.dedup import Deduper
from topictree_hf.generation.checks import Candidate, Check, Result
from topictree_hf.generation.judge import rule_reject
from topictree_hf.generation.llm_judge import LLMJudge
from topictree_hf.generation.prompts import Prompts
from topictree_hf.generation.templates import Template
from topictree_hf.records import EMPTY, ENGINE_ERROR, INVALID, MISSING_SECTIONS, TRUNCATED, UNPARSEABLE, messages_text
from topictree_hf.textparse import parse_json


def check_steps(config: Config, prompts: Prompts, dedup: Deduper) -> list[Check]:
    """The steps the config asks for, in order."""
    gen = config.generation
    steps: list[Check] = [Validate(prompts)]
    if gen.rules:
        steps.append(Rules())
    if gen.judge is not None:
        steps.append(LLMJudge(gen.judge, config.engine))
    steps.append(Dedup(dedup))
    return steps


class Validate(Check):
    """The completion is a sample of its format: parsed into `candidate.messages` when it is."""

    name = INVALID

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts

    def filter(self, candidate: Candidate) -> Result:
        out, task = candidate.completion, candidate.job.task
        if out.finish_reason == "error":
            return False, f"{ENGINE_ERROR}: {out.error or 'unknown'}"
        if not out.text.strip():
            return False, EMPTY
        if out.finish_reason == "length":
            return False, TRUNCATED
        fmt, turns = self.prompts.formats[task.format], self.prompts.gen.chat_turns
        json_mode = self.prompts.mode == "json"
        obj = parse_json(out.text) if json_mode else fmt.from_text(f"{fmt.lead} {out.text}", turns)
        if obj is None:
            return False, UNPARSEABLE if json_mode else MISSING_SECTIONS
        problem = fmt.check(obj, turns)
        if problem:
            return False, f"{INVALID}: {problem}"
        messages = fmt.messages(obj)
        if echoes_template(messages_text(messages), self.prompts.templates[task.format]):
            return False, f"{INVALID}: repeats the instructions"
        candidate.messages = messages
        return True


def echoes_template(text: str, template: Template) -> bool:
    """True when the sample copies an instruction sentence of its template (tiny models do)."""
    lowered = " ".join(text.lower().split())
    return any(sentence in lowered for sentence in template.static_sentences)


class Rules(Check):
    """The rule checks of generation/judge.py: a well-formed sample that teaches nothing."""

    name = "judge"

    def filter(self, candidate: Candidate) -> Result:
        task = candidate.job.task
        rule = rule_reject(task.format, candidate.messages, task.path)
        return (False, rule) if rule else True


class Dedup(Check):
    """Not a duplicate of a sample kept before (exact, near or semantic: generation.dedup); a kept
    text is remembered, so this step runs last."""

    name = "duplicate"

    def __init__(self, dedup: Deduper) -> None:
        self.dedup = dedup

    def filter(self, candidate: Candidate) -> Result:
        dup = self.dedup.check_and_add(messages_text(candidate.messages))
        return (False, dup) if dup else True
