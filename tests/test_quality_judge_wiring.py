"""The sample judge wired into the generator (scripted engine): rule checks reject and are counted per
rule; the LLM judge (same engine, in the same stream, or a model of its own) scores each sample, the
score and reason are journaled and become dataset columns, samples under the threshold are retried;
a rerun after a crash does not judge journaled samples again; the repetition penalty reaches the
engine's sampling parameters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fake_engine import FakeEngine, request_kind
from fake_model import topic_path
from test_generation import DETAIL, answer, leaf_of, make_tree

from topictree_hf.config import Config
from topictree_hf.engines import ChatRequest, Completion
from topictree_hf.generation.prompts import SMALL_MODEL_REPETITION_PENALTY
from topictree_hf.pipeline import generate_stage
from topictree_hf.records import JUDGE, JUDGE_SCORE, REJECTION_REASONS
from topictree_hf.rundir import RunDir

Responder = Callable[[ChatRequest], "str | Completion"]


def config(**gen: object) -> Config:
    return Config(generation={"num_samples": 18, "formats": ["qa"], "mode": "text", "plan": False, **gen},
                  engine={"batch_size": 8})


def scored(judge: Callable[[str], tuple[int, str]]) -> Responder:
    """Samples from `answer`; judge requests scored by `judge(leaf)`."""
    def respond(req: ChatRequest) -> str:
        if request_kind(req) == "judge":
            score, reason = judge(topic_path(req)[-1])
            return json.dumps({"score": score, "reason": reason})
        return answer(req)
    return respond


def test_rules_reject_and_count_each_rule(tmp_path: Path) -> None:
    def bad(req: ChatRequest) -> str:
        leaf, seed = leaf_of(req), req.sampling.seed
        if leaf.endswith("a"):  # the answer adds nothing to the question
            return f" What is {leaf} number {seed}?\nAnswer: {leaf} number {seed} is {leaf}."
        if leaf.endswith("b"):  # an answer that describes an answer
            return f" What happened at {leaf} {seed}?\nAnswer: An answer that is correct, 1 to 4 sentences long."
        return answer(req)

    summary = generate_stage(config(max_retries=0, topup_budget=1.0), FakeEngine(bad), RunDir(tmp_path),
                             make_tree())
    assert summary.valid == 6 and summary.failed == 12
    assert summary.rejections == {"judge: restates question": 6, "judge: describes an answer": 6}
    assert summary.failures == summary.rejections  # no retries: each rejection is a failure, per rule
    failures = list(RunDir(tmp_path).iter_failures())
    assert {f.reason for f in failures} == {JUDGE} <= REJECTION_REASONS
    assert {f.detail for f in failures} == {"judge: restates question", "judge: describes an answer"}
    kept = generate_stage(config(max_retries=0, rules=False), FakeEngine(bad), RunDir(tmp_path / "off"),
                          make_tree())
    assert kept.valid == 18 and not kept.rejections  # rules: false keeps them


def test_a_rejected_rule_is_retried_with_its_reason(tmp_path: Path) -> None:
    prompts: list[str] = []

    def once_bad(req: ChatRequest) -> str:
        prompts.append(req.messages[1]["content"])
        if "rejected" in req.messages[1]["content"]:
            return answer(req)
        return f" What is {leaf_of(req)}?\nAnswer: [answer]"

    summary = generate_stage(config(max_retries=1), FakeEngine(once_bad), RunDir(tmp_path), make_tree())
    assert summary.valid == 18 and summary.retried == 18 and summary.rejections == {"judge: placeholder": 18}
    assert sum("(judge: placeholder)" in p for p in prompts) == 18


def test_judge_scores_are_journaled_and_become_dataset_columns(tmp_path: Path) -> None:
    from topictree_hf.dataset import build_dataset

    engine = FakeEngine(scored(lambda leaf: (2, "too vague") if leaf.endswith("a") else (5, "specific")))
    run = RunDir(tmp_path / "run")
    cfg = config(judge={"threshold": 3}, max_retries=1, topup_budget=1.0)
    run.prepare(cfg)
    tree = make_tree()
    tree.save(run.tree_file)
    summary = generate_stage(cfg, engine, run, tree)
    kinds = [request_kind(r) for call in engine.calls for r in call]
    assert kinds.count("sample") == 18 + 6 and kinds.count("judge") == 24  # every sample that passed is judged
    assert summary.engine_calls == 1, "the judge's requests go into the samples' stream"
    assert summary.valid == 12 and summary.failed == 6
    assert summary.rejections == {f"{JUDGE_SCORE} 2": 12} and summary.judge_requests == 24
    assert summary.judge_scores == {2: 12, 5: 12}
    assert summary.judge_prompt_tokens > 0 and summary.judge_output_tokens > 0
    assert summary.output_tokens == sum(len(answer(r)) // 4 for call in engine.calls for r in call
                                        if request_kind(r) == "sample"), "judge tokens are counted apart"
    samples = list(run.iter_samples())
    assert {(s.judge_score, s.judge_reason) for s in samples} == {(5, "specific")}
    failures = list(run.iter_failures())
    assert {(f.reason, f.detail) for f in failures} == {(JUDGE_SCORE, "judge score 2: too vague")}
    prompts = [r.messages[1]["content"] for call in engine.calls for r in call if request_kind(r) == "sample"]
    assert sum("(judge score 2: too vague)" in p for p in prompts) == 6, "retried with the judge's reason"
    judge = next(r for call in engine.calls for r in call if request_kind(r) == "judge")
    assert judge.sampling.temperature == 0.0 and judge.json_schema is not None
    prompt = judge.messages[-1]["content"]
    assert DETAIL in prompt and "Topic path: Historical Events > " in prompt

    result = build_dataset(run.path, tmp_path / "ds")
    assert result.total_rows == 12
    rows = [r for f in sorted((tmp_path / "ds" / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert {(r["judge_score"], r["judge_reason"]) for r in rows} == {(5, "specific")}


def test_without_a_judge_the_columns_are_null_and_old_lines_load(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    generate_stage(config(), FakeEngine(answer), run, make_tree())
    line = json.loads(run.sample_shard(0).read_text().splitlines()[0])
    assert line["judge_score"] is None and line["judge_reason"] is None
    from topictree_hf.records import Sample

    old = {k: v for k, v in line.items() if not k.startswith("judge_")}
    assert Sample.from_json(old).judge_score is None


def test_an_unparsed_judgement_keeps_the_sample_unscored(tmp_path: Path) -> None:
    def respond(req: ChatRequest) -> str:
        return "I think it is fine." if request_kind(req) == "judge" else answer(req)

    run = RunDir(tmp_path)
    summary = generate_stage(config(judge={}), FakeEngine(respond), run, make_tree())
    assert summary.valid == 18 and summary.judge_unparsed == 18 and not summary.judge_scores
    assert {s.judge_score for s in run.iter_samples()} == {None}


class Crash(Exception):
    pass


def test_a_rerun_after_a_crash_does_not_judge_journaled_samples_again(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    judge = scored(lambda leaf: (1, "off topic") if leaf.endswith("b") else (4, "fine"))
    answered = 0

    def crashing(req: ChatRequest) -> str:
        nonlocal answered
        answered += 1
        if answered > 20:  # mid-run: samples and judgements of the earlier chunks are settled
            raise Crash
        return judge(req)

    with pytest.raises(Crash):
        generate_stage(config(judge={}, max_retries=1), FakeEngine(crashing), run, make_tree())
    before = {s.id: s for s in run.iter_samples()}
    assert 0 < len(before) < 18 and all(s.judge_score == 4 for s in before.values())
    journaled_seeds = {s.seed for s in before.values()}

    engine = FakeEngine(judge)
    summary = generate_stage(config(judge={}, max_retries=1), engine, run, make_tree())
    judged = [r for call in engine.calls for r in call if request_kind(r) == "judge"]
    judged_seeds = {int(r.messages[-1]["content"].split(" seed ")[1].split()[0].strip(",?.")) for r in judged}
    assert not judged_seeds & journaled_seeds, "a journaled sample was judged again"
    assert summary.judge_requests == len(judged) == summary.valid + summary.rejections[f"{JUDGE_SCORE} 1"]
    after = {s.id: s for s in run.iter_samples()}
    assert all(after[i].judge_score == s.judge_score for i, s in before.items())
    assert summary.delivered == len(after) and summary.resumed >= len(before)


class ClosingEngine(FakeEngine):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_judge_model_of_its_own_scores_in_groups_and_is_closed(tmp_path: Path, fake_backend) -> None:  # noqa: ANN001
    judge_engine = ClosingEngine(scored(lambda leaf: (2, "vague") if leaf.endswith("c") else (5, "good")))
    fake_backend(lambda _req: "unused")
    from topictree_hf.engines import registry

    registry.register_backend("fake", lambda cfg: judge_engine if cfg.model == "judge-model" else None)
    main = FakeEngine(answer)
    cfg = Config(generation={"num_samples": 18, "formats": ["qa"], "mode": "text", "plan": False, "max_retries": 1,
                             "topup_budget": 1.0, "judge": {"model": "judge-model"}},
                 engine={"backend": "fake", "batch_size": 8})
    run = RunDir(tmp_path)
    summary = generate_stage(cfg, main, run, make_tree())
    assert {request_kind(r) for call in main.calls for r in call} == {"sample"}
    assert {request_kind(r) for call in judge_engine.calls for r in call} == {"judge"}
    assert max(len(c) for c in judge_engine.calls) <= 8 and summary.judge_requests == 24
    assert summary.valid == 12 and summary.failed == 6 and summary.judge_seconds > 0
    assert judge_engine.closed, "the judge engine is released when the stage ends"
    assert {s.judge_score for s in run.iter_samples()} == {5}


@pytest.mark.parametrize(("setting", "params", "expected"), [
    (None, 135_000_000, SMALL_MODEL_REPETITION_PENALTY),
    (None, 7_000_000_000, None),
    (None, None, None),
    (1.0, 135_000_000, None),
    (1.3, 7_000_000_000, 1.3),
])
def test_repetition_penalty_reaches_the_sampling_params(tmp_path: Path, setting: float | None, params: int | None,
                                                        expected: float | None) -> None:
    engine = FakeEngine(answer)
    engine.parameter_count = params
    generate_stage(config(repetition_penalty=setting), engine, RunDir(tmp_path), make_tree())
    assert {r.sampling.repetition_penalty for call in engine.calls for r in call} == {expected}


def test_engines_pass_the_repetition_penalty_on() -> None:
    from topictree_hf.engines.base import SamplingParams
    from topictree_hf.engines.openai_engine import OpenAIEngine

    with_penalty = ChatRequest([{"role": "user", "content": "x"}], SamplingParams(repetition_penalty=1.2))
    without = ChatRequest([{"role": "user", "content": "x"}], SamplingParams())
    body = OpenAIEngine.body
    fake = type("E", (), {"model_name": "m"})()
    assert body(fake, with_penalty)["repetition_penalty"] == 1.2  # type: ignore[arg-type]
    assert "repetition_penalty" not in body(fake, without)  # type: ignore[arg-type]


def test_the_transformers_sampler_penalizes_each_row_on_its_own_tokens() -> None:
    """RowSampler: a seen token's logit is divided by the row's penalty when positive, multiplied when
    negative (vLLM's definition); left padding is not "seen"; a row without a penalty is untouched."""
    import torch

    from topictree_hf.engines.base import SamplingParams
    from topictree_hf.engines.sampling import RowSampler

    rows = [ChatRequest([], SamplingParams(temperature=0.0, repetition_penalty=2.0)),
            ChatRequest([], SamplingParams(temperature=0.0))]
    sampler = RowSampler(rows, None, [9])
    sampler.starts = [1, 0]  # row 0: one pad token (id 0) on the left
    scores = torch.tensor([[4.0, 3.0, -2.0, 1.0, 0.5, 0, 0, 0, 0, 0],
                           [4.0, 3.0, -2.0, 1.0, 0.5, 0, 0, 0, 0, 0]])
    ids = torch.tensor([[0, 1, 2], [0, 1, 2]])
    sampler._penalize(ids, scores)
    assert scores[0, :5].tolist() == [4.0, 1.5, -4.0, 1.0, 0.5]
    assert scores[1, :5].tolist() == [4.0, 3.0, -2.0, 1.0, 0.5]
