"""The `vllm` backend's wiring, checked on a CPU machine: `vllm.LLM` keyword arguments (a GGUF becomes
the cached safetensors folder, since vLLM cannot use its tokenizer), per-request structured outputs,
one `chat` call per batch, order, shutdown. vLLM is not installed here, so a stub module stands in for
it; tests/test_gpu_vllm.py runs the real thing on a GPU machine."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from topictree_hf.config import BUNDLED_MODEL, EngineConfig
from topictree_hf.engines import ChatRequest, SamplingParams, create_engine
from topictree_hf.engines.models import resolve_model
from topictree_hf.engines.vllm_engine import _leading_json, engine_kwargs, model_path
from topictree_hf.errors import ConfigError

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_kwargs_for_a_local_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    config = EngineConfig(backend="vllm", model=str(tmp_path), dtype="bfloat16", tensor_parallel_size=2,
                          max_num_seqs=128, max_model_len=4096, gpu_memory_utilization=0.5,
                          options={"load_format": "dummy", "enforce_eager": True})
    assert engine_kwargs(config) == {
        "model": str(tmp_path), "dtype": "bfloat16", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
        "enable_prefix_caching": True, "max_num_seqs": 128, "max_model_len": 4096,
        "load_format": "dummy", "enforce_eager": True,
    }


def test_a_hub_id_passes_through_and_int8_means_auto() -> None:
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct", dtype="int8"))
    assert kwargs["model"] == "Qwen/Qwen2.5-0.5B-Instruct" and kwargs["dtype"] == "auto"
    assert "tokenizer" not in kwargs and "max_num_seqs" not in kwargs


def test_options_override_the_defaults() -> None:
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model="a/b", options={"enable_prefix_caching": False}))
    assert kwargs["enable_prefix_caching"] is False


@pytest.mark.slow
def test_the_bundled_gguf_becomes_a_cached_safetensors_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path))
    folder = Path(model_path(BUNDLED_MODEL))  # converts now: the cache is empty
    assert folder.parent == tmp_path / "models"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16" and "quantization_config" not in config
    assert resolve_model(str(folder)).gguf_file is None, "a plain transformers folder"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    kwargs = engine_kwargs(EngineConfig(backend="vllm"))
    assert kwargs["model"] == str(folder) and "tokenizer" not in kwargs
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, "converted once, then reused"


def test_leading_json() -> None:
    assert _leading_json('{"a": 1}') == '{"a": 1}'
    assert _leading_json(' {"a": [1, 2]} and then some chatter') == '{"a": [1, 2]}'
    assert _leading_json('{"a": "unfinished') is None
    assert _leading_json("plain text") is None


class StubLLM:
    """Stands in for `vllm.LLM`: records its arguments, answers each chat with its position and schema."""

    instances: list[StubLLM] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.chats: list[dict[str, Any]] = []
        self.shut = False
        StubLLM.instances.append(self)

    def chat(self, messages: list[Any], sampling_params: list[Any] | None = None, **kwargs: Any) -> list[Any]:
        self.chats.append({"messages": messages, "sampling_params": sampling_params, **kwargs})
        outs = []
        for i, (chat, params) in enumerate(zip(messages, sampling_params or [], strict=True)):
            text = chat[-1]["content"]
            if params.structured_outputs is not None:
                text = json.dumps({"name": text}) + " trailing chatter"
            reason = "length" if params.structured_outputs is not None else "stop"
            first = types.SimpleNamespace(text=text, finish_reason=reason, token_ids=[0] * (i + 1))
            outs.append(types.SimpleNamespace(outputs=[first], prompt_token_ids=[0] * 10))
        return outs

    def shutdown(self) -> None:
        self.shut = True


@pytest.fixture
def stub_vllm(monkeypatch: pytest.MonkeyPatch) -> type[StubLLM]:
    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    vllm.LLM = StubLLM  # type: ignore[attr-defined]
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    sampling.StructuredOutputsParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    monkeypatch.delenv("VLLM_NO_USAGE_STATS", raising=False)
    StubLLM.instances.clear()
    return StubLLM


def test_one_chat_call_per_batch_with_per_request_params(stub_vllm: type[StubLLM], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    engine = create_engine(EngineConfig(backend="vllm", model=str(tmp_path), max_num_seqs=8))
    assert os.environ["VLLM_NO_USAGE_STATS"] == "1", "usage stats off unless the user chose"
    (llm,) = stub_vllm.instances
    assert llm.kwargs["model"] == str(tmp_path) and llm.kwargs["enable_prefix_caching"] is True
    requests = [ChatRequest([{"role": "user", "content": f"r{i}"}], SamplingParams(0.5, 0.9, 10 + i, seed=i),
                            SCHEMA if i % 2 else None) for i in range(4)]
    out = engine.generate(requests)
    assert len(llm.chats) == 1 and llm.chats[0]["use_tqdm"] is False
    params = llm.chats[0]["sampling_params"]
    assert [p.seed for p in params] == [0, 1, 2, 3] and [p.max_tokens for p in params] == [10, 11, 12, 13]
    assert [p.structured_outputs is not None for p in params] == [False, True, False, True]
    assert params[1].structured_outputs.json == SCHEMA
    assert [c.text for c in out] == ["r0", '{"name": "r1"}', "r2", '{"name": "r3"}'], "order kept, tail cut"
    assert [c.finish_reason for c in out] == ["stop"] * 4 and [c.output_tokens for c in out] == [1, 2, 3, 4]
    engine.close()
    engine.close()
    assert llm.shut and engine.llm is None


def test_int8_is_refused_with_the_fix(stub_vllm: type[StubLLM]) -> None:
    with pytest.raises(ConfigError, match="use auto with vllm"):
        create_engine(EngineConfig(backend="vllm", model="a/b", dtype="int8"))
