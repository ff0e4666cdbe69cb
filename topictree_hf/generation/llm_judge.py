"""The LLM judge as a check step (generation.judge): one request per sample that passed the steps
before it (generation/judge.py `judge_request`: temperature 0, a JSON schema, seeded from the task id
and the attempt), answered in the samples' own stream when the judge is the generating model, or in
groups on a model of its own (`generation.judge.model`, opened on first use, released by `close`).

A score under `threshold` rejects the sample ("judge score 2: <reason>") and it is retried like any
other rejection; an answer without a score keeps it unscored. The score and reason go into the
record (`judge_score`, `judge_reason`: dataset columns).
"""

from __future__ import annotations

from collections.abc import Callable

from topictree_hf.config import EngineConfig, JudgeConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine
from topictree_hf.engines.registry import create_engine
from topictree_hf.generation.checks import Candidate, Check, Result
from topictree_hf.generation.judge import judge_request, parse_judgement
from topictree_hf.generation.prompts import seed_of
from topictree_hf.records import JUDGE_SCORE

EngineOpener = Callable[[EngineConfig], Engine]


class LLMJudge(Check):
    name = JUDGE_SCORE

    def __init__(self, config: JudgeConfig, engine: EngineConfig, open_engine: EngineOpener = create_engine) -> None:
        """`engine` is the generating engine's config: the judge runs there unless `config.model`
        names another model, which `open_engine` opens with the same backend settings."""
        self.config, self._engine_config, self._open = config, engine, open_engine
        self.separate = config.model not in (None, engine.model)
        self._engine: Engine | None = None

    def ask(self, candidate: Candidate) -> ChatRequest:
        task, attempt = candidate.job.task, candidate.job.attempt
        return judge_request(candidate.messages, task.path, self.config.rubric, seed_of(f"{task.id}|{attempt}|judge"))

    def filter(self, candidate: Candidate) -> Result:
        out = candidate.answer
        verdict = parse_judgement(out.text) if out is not None and out.finish_reason != "error" else None
        score, why = verdict if verdict is not None else (None, None)
        candidate.fields.update(judge_score=score, judge_reason=why)
        if score is not None and score < self.config.threshold:
            return False, f"{JUDGE_SCORE} {score}: {why or 'no reason given'}"
        return True

    def answer(self, requests: list[ChatRequest]) -> list[Completion]:
        if self._engine is None:
            self._engine = self._open(self._engine_config.model_copy(update={"model": self.config.model}))
        return self._engine.generate(requests)

    def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()
