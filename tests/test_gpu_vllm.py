"""The `vllm` backend on a GPU machine (marked `gpu`: skipped without CUDA and vLLM). Models come from
the environment that ../shared/gpu/install_on_device.sh sets up: SMOLLM2_HF_DIR (SmolLM2-135M-Instruct
as safetensors) and DUMMY8B_DIR (an 8B-shaped config loaded with random weights, `load_format: dummy`).

    python -m pytest -q -m gpu tests/test_gpu_vllm.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import jsonschema
import pytest

from topictree_hf.config import EngineConfig
from topictree_hf.engines import ChatRequest, Completion, Engine, SamplingParams, create_engine

pytestmark = pytest.mark.gpu

SUBTOPICS = {
    "type": "object",
    "properties": {"subtopics": {"type": "array", "minItems": 3, "maxItems": 3,
                                 "items": {"type": "string", "minLength": 3, "maxLength": 40}}},
    "required": ["subtopics"],
    "additionalProperties": False,
}
TOPICS = ["Ancient History", "Cell Biology", "Jazz", "Baking Bread", "Black Holes", "Impressionism",
          "Chess Openings", "Medieval Castles", "Volcanoes", "Roman Law", "Coral Reefs", "Opera"]


def model_dir(variable: str) -> str:
    folder = os.environ.get(variable)
    if not folder or not os.path.isdir(folder):
        pytest.skip(f"${variable} names no model folder (see ../shared/gpu/README.md)")
    return folder


def schema_request(topic: str, seed: int, max_tokens: int = 128) -> ChatRequest:
    text = f'Give three subtopics of "{topic}" as JSON: {{"subtopics": ["...", "...", "..."]}}'
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(0.7, 0.95, max_tokens, seed), SUBTOPICS)


def text_request(i: int) -> ChatRequest:
    words = " ".join(["more"] * i)  # a distinct prompt length per request: order shows in prompt_tokens
    return ChatRequest([{"role": "user", "content": f"Write about the sea {words}."}],
                       SamplingParams(0.8, 0.95, 8 + 4 * i, seed=100 + i))


def valid(completion: Completion) -> bool:
    try:
        jsonschema.validate(json.loads(completion.text), SUBTOPICS)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


@pytest.fixture(scope="module")
def smollm2() -> Iterator[Engine]:
    config = EngineConfig(backend="vllm", model=model_dir("SMOLLM2_HF_DIR"), gpu_memory_utilization=0.3,
                          max_model_len=2048)
    with create_engine(config) as engine:
        yield engine


def test_smollm2_schema_outputs_are_valid(smollm2: Engine) -> None:
    out = smollm2.generate([schema_request(t, seed=i) for i, t in enumerate(TOPICS)])
    assert len(out) == len(TOPICS)
    assert sum(valid(c) for c in out) >= 0.9 * len(TOPICS), [c.text for c in out]


def test_smollm2_mixed_batch_keeps_order(smollm2: Engine) -> None:
    requests = [r for i in range(6) for r in (text_request(i), schema_request(TOPICS[i], seed=i))]
    out = smollm2.generate(requests)
    alone = [smollm2.generate([r])[0] for r in requests]
    assert [c.prompt_tokens for c in out] == [c.prompt_tokens for c in alone]
    texts = out[0::2]
    assert len({c.prompt_tokens for c in texts}) == len(texts), "distinct prompts, so the order is visible"
    assert all(c.output_tokens <= r.sampling.max_tokens for c, r in zip(out, requests, strict=True))
    assert sum(valid(c) for c in out[1::2]) >= 5


def test_smollm2_seeded_runs_reproduce(smollm2: Engine) -> None:
    requests = [text_request(i) for i in range(8)] + [schema_request(t, seed=i) for i, t in enumerate(TOPICS[:4])]
    first = [c.text for c in smollm2.generate(requests)]
    assert [c.text for c in smollm2.generate(requests)] == first


def test_dummy_8b_runs_and_closes() -> None:
    config = EngineConfig(backend="vllm", model=model_dir("DUMMY8B_DIR"), gpu_memory_utilization=0.5,
                          max_model_len=1024, options={"load_format": "dummy"})
    engine = create_engine(config)
    try:
        requests = [text_request(i) for i in range(16)]
        requests += [schema_request(t, seed=i, max_tokens=64) for i, t in enumerate(TOPICS)]
        out = engine.generate(requests)
        assert len(out) == len(requests)
        lengths = [c.prompt_tokens for c in out[:16]]
        assert lengths == sorted(set(lengths)), "prompts grow with i: the order is kept"
        finished = [c for c in out[16:] if c.finish_reason == "stop"]
        assert all(valid(c) for c in finished), "random weights, but the grammar still holds"
    finally:
        engine.close()
    assert engine.llm is None  # type: ignore[attr-defined]
    engine.close()  # a second close is harmless
