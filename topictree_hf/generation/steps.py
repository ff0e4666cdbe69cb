"""The check steps of a sample, in the order they run (`check_steps`); each keeps a candidate or
rejects it with a reason (the chain, generation/checks.py, counts). To add a step, write its class
here and put it in the list.

    validation   engine error, empty, truncated at max_tokens, unparseable / missing sections, the
                 format's check, copies a sentence of its template
    rules        generation/judge.py `rule_reject` (generation.rules): each rule its own reason
    LLM judge    generation/llm_judge.py (generation.judge): a score under the threshold rejects
    dedup        last, so only kept texts are remembered; `semantic` compares a sample with the kept
                 samples of its depth-1 branch only, and embeds a group of samples in one pass
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from topictree_hf.config import Config
from topictree_hf.dedup import Deduper, KeptText
from topictree_hf.generation.checks import Candidate, Check, Result
from topictree_hf.generation.judge import rule_reject
from topictree_hf.generation.llm_judge import LLMJudge
from topictree_hf.generation.prompts import Prompts
from topictree_hf.generation.templates import Template
from topictree_hf.records import (
    EMPTY,
    ENGINE_ERROR,
    INVALID,
    MISSING_SECTIONS,
    TRUNCATED,
    UNPARSEABLE,
    Sample,
    messages_text,
)
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
    text is remembered, so this step runs last. With `semantic` it is grouped: the samples of a group
    are embedded in one pass (`prepare`), then checked one by one, each against the kept samples of
    its branch, those of its own group that came before it included; a rejection quotes the start of
    the kept sample it is too close to, so the retry is asked to differ from it."""

    name = "duplicate"

    def __init__(self, dedup: Deduper) -> None:
        self.dedup = dedup
        self.grouped = dedup.embeds

    def prepare(self, candidates: list[Candidate]) -> None:
        vectors = self.dedup.embed([messages_text(c.messages) for c in candidates])
        for candidate, vector in zip(candidates, vectors, strict=True):
            candidate.prepared = {"vector": vector}

    def filter(self, candidate: Candidate) -> Result:
        kept = kept_text(candidate.messages, candidate.job.task.path)
        vector = (candidate.prepared or {}).get("vector")
        dup = self.dedup.check_and_add(kept.text, kept.branch, label=kept.label, vector=vector)
        return (False, dup) if dup else True


def kept_text(messages: list[dict[str, str]], path: Sequence[str]) -> KeptText:
    """What the dedup compares and remembers of a sample: its text (every non-system turn), its
    depth-1 branch (the path's first two names: a root-only path, the naive arms', is one branch)
    and its first user turn (what a semantic rejection quotes, cut short)."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    return KeptText(messages_text(messages), tuple(path[:2]), user)


def kept_texts(samples: Iterable[Sample]) -> Iterator[KeptText]:
    """`kept_text` of each sample: what `Deduper.remember` takes from a journal (a resumed run),
    so each lands in its branch."""
    return (kept_text(s.messages, s.topic_path) for s in samples)
