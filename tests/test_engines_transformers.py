"""The `transformers` backend. Fast tests cover the per-row sampler without a model; `slow` tests run
the bundled SmolLM2-135M-Instruct (one engine for the whole session, `bundled_engine`): schema-valid
JSON, order and per-request seeds in mixed batches, reproducibility, finish reasons."""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsonschema
import pytest
import torch

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, Completion, Engine, SamplingParams, create_engine
from topictree_hf.engines.sampling import RowSampler, _draw
from topictree_hf.errors import ConfigError

SUBTOPICS = {  # the shape the tree builder asks for, with short items to keep the test quick
    "type": "object",
    "properties": {"subtopics": {"type": "array", "minItems": 3, "maxItems": 3,
                                 "items": {"type": "string", "minLength": 3, "maxLength": 24}}},
    "required": ["subtopics"],
    "additionalProperties": False,
}
CITY = {"type": "object", "properties": {"city": {"type": "string", "minLength": 2, "maxLength": 20}},
        "required": ["city"], "additionalProperties": False}
TOPICS = ["Ancient History", "Cell Biology", "Jazz", "Baking Bread", "Black Holes", "Impressionism",
          "Chess Openings", "Medieval Castles", "Volcanoes", "Roman Law"]


def ask(text: str, max_tokens: int = 64, seed: int | None = 0, schema: dict | None = None,
        temperature: float = 0.7) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(temperature, 0.95, max_tokens, seed), schema)


def subtopics_request(topic: str, seed: int) -> ChatRequest:
    return ask(f'Give three subtopics of "{topic}" as JSON: {{"subtopics": ["...", "...", "..."]}}', seed=seed,
               schema=SUBTOPICS)


def schema_valid(completion: Completion, schema: dict) -> bool:
    try:
        jsonschema.validate(json.loads(completion.text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


# --- the sampler, no model --------------------------------------------------------------------------

def logp_of(probs: Sequence[float]) -> torch.Tensor:
    return torch.tensor(probs, dtype=torch.float64).log().float()


def draws(logp: torch.Tensor, top_p: float, k: int, n: int = 2000) -> list[int]:
    top_logp, top_ids = logp.topk(k)
    return [_draw(logp, top_logp, top_ids, top_p, (i + 0.5) / n) for i in range(n)]


def test_draw_keeps_the_nucleus_in_proportion() -> None:
    logp = logp_of([0.05, 0.5, 0.0, 0.3, 0.15])  # token 2 is masked out
    picks = draws(logp, top_p=0.75, k=5)
    assert set(picks) == {1, 3}, "the smallest set reaching 0.75: tokens 1 and 3"
    assert picks.count(1) / len(picks) == pytest.approx(0.5 / 0.8, abs=0.01)


def test_draw_falls_back_to_a_full_sort_when_candidates_are_too_few() -> None:
    logp = logp_of([0.25, 0.25, 0.25, 0.25, 0.0])
    assert set(draws(logp, top_p=0.9, k=2)) == {0, 1, 2, 3}


def test_draw_never_returns_a_masked_token_even_at_the_top_of_the_cdf() -> None:
    logp = logp_of([0.0, 0.6, 0.4, 0.0, 0.0])
    for top_p in (1.0, 0.99):
        top_logp, top_ids = logp.topk(5)
        assert _draw(logp, top_logp, top_ids, top_p, 1.0 - 1e-17) == 2
        assert _draw(logp, top_logp, top_ids, top_p, 0.0) == 1


def test_sampler_rows_depend_on_their_own_seed_only() -> None:
    """The same request (same logits, same seed) gives the same tokens whatever its batch-mates."""
    torch.manual_seed(0)
    vocab, steps = 50, 6
    mine = ask("x", max_tokens=100, seed=7, temperature=0.9)
    others = [ask("y", seed=1, temperature=1.3), ask("z", seed=None, temperature=0.0)]
    logits = {id(r): torch.randn(steps, vocab) for r in [mine, *others]}  # what the model would give each

    def run(requests: list[ChatRequest]) -> list[int]:
        sampler = RowSampler(requests, None, eos_ids=[vocab - 1])
        ids = torch.zeros(len(requests), 1, dtype=torch.long)
        row = requests.index(mine)
        out = []
        for step in range(steps):
            scores = sampler(ids, torch.stack([logits[id(r)][step] for r in requests]))
            token = scores.argmax(dim=-1)
            out.append(int(token[row]))
            ids = torch.cat([ids, token[:, None]], dim=1)
        return out

    alone = run([mine])
    assert run([mine, *others]) == alone
    assert run([others[0], mine, others[1]]) == alone
    other_seed = ask("x", max_tokens=100, seed=8, temperature=0.9)
    logits[id(other_seed)] = logits[id(mine)]
    mine = other_seed
    assert run([mine]) != alone, "another seed, another draw"


def test_unknown_engine_option_is_one_line_before_loading() -> None:
    with pytest.raises(ConfigError) as err:
        create_engine(EngineConfig(backend="transformers", model=SMOLLM2, options={"warp": 9}))
    assert "engine.options.warp" in str(err.value) and "allowed: guidance, threads" in str(err.value)


# --- the bundled model ------------------------------------------------------------------------------

@pytest.mark.slow
def test_schema_gives_valid_json_for_at_least_9_of_10(bundled_engine: Engine) -> None:
    out = bundled_engine.generate([subtopics_request(topic, seed=i) for i, topic in enumerate(TOPICS)])
    valid = [c.text for c in out if schema_valid(c, SUBTOPICS)]
    assert len(valid) >= 9, [c.text for c in out]


@pytest.mark.slow
def test_mixed_batch_keeps_order_and_each_request_matches_itself_alone(bundled_engine: Engine) -> None:
    requests = [
        ask('Name a city in Italy as JSON {"city": "..."}.', max_tokens=24, seed=11, schema=CITY),
        ask("Say hello.", max_tokens=6, seed=12),
        ask("Write a long, detailed story about a lighthouse keeper and the sea, with many characters.",
            max_tokens=10, seed=13),
        ask('Name the largest city of a country in South America, as JSON {"city": "..."}.', max_tokens=24,
            seed=14, schema=CITY, temperature=0.0),
    ]
    batch = bundled_engine.generate(requests)
    alone = [bundled_engine.generate([r])[0] for r in requests]
    assert [c.prompt_tokens for c in batch] == [c.prompt_tokens for c in alone]
    assert len({c.prompt_tokens for c in batch}) == len(requests), "distinct prompts: the order is visible"
    assert [c.text for c in batch] == [c.text for c in alone]
    assert [c.finish_reason for c in batch] == [c.finish_reason for c in alone]
    assert schema_valid(batch[0], CITY) and schema_valid(batch[3], CITY)
    assert batch[1].output_tokens <= 6 and batch[2].output_tokens <= 10


@pytest.mark.slow
def test_seeded_runs_reproduce_and_seeds_matter(bundled_engine: Engine) -> None:
    requests = [ask(f"Write one sentence about {t}.", max_tokens=8, seed=i, temperature=1.0)
                for i, t in enumerate(TOPICS[:3])]
    first = [c.text for c in bundled_engine.generate(requests)]
    assert [c.text for c in bundled_engine.generate(requests)] == first
    reseeded = [ask(r.messages[0]["content"], max_tokens=8, seed=100 + i, temperature=1.0)
                for i, r in enumerate(requests)]
    assert [c.text for c in bundled_engine.generate(reseeded)] != first


@pytest.mark.slow
def test_finish_reason_length_and_stop(bundled_engine: Engine) -> None:
    tiny = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
            "additionalProperties": False}
    done: list[int] = []
    cut, stopped = bundled_engine.generate(
        [ask("Write a long essay about the history of Rome.", max_tokens=5),
         ask('Answer with JSON {"ok": true}.', max_tokens=16, schema=tiny)], progress=done.append)
    assert cut.finish_reason == "length" and cut.output_tokens == 5 and cut.text
    assert stopped.finish_reason == "stop" and json.loads(stopped.text) in ({"ok": True}, {"ok": False})
    assert cut.prompt_tokens > 0 and sum(done) == 2
    assert bundled_engine.generate([]) == []


@pytest.mark.slow
def test_parameter_count_of_the_bundled_model(bundled_engine: Engine) -> None:
    assert bundled_engine.parameter_count == 134_515_008, "SmolLM2-135M, its output layer tied to the embeddings"
