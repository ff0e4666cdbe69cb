"""The `vllm` backend's wiring, checked without starting vLLM: `vllm.LLM` keyword arguments (a GGUF becomes
the cached safetensors folder, since vLLM cannot use its tokenizer; the CPU build gets whole-prompt
scheduling and a KV cache sized from free RAM), the platform checks and settings, and the request loop
(`enqueue_chat` + `LLMEngine.step`: order, per-request prefill and structured outputs, streaming, engine
death, shutdown) against a stub module. tests/test_vllm_backend.py runs the real thing (`vllm` tier)."""

from __future__ import annotations

import itertools
import json
import os
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from feed import Feed

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, SamplingParams, create_engine
from topictree_hf.engines import vllm_platform as platform
from topictree_hf.engines.models import resolve_model
from topictree_hf.engines.vllm_engine import (
    VLLMEngine,
    _leading_json,
    death_message,
    engine_kwargs,
    estimate_parameters,
    model_path,
)
from topictree_hf.errors import BackendUnavailableError, ConfigError, EngineError

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


def test_int8_means_auto(tmp_path: Path) -> None:  # a Hub id becomes its cached snapshot: test_hub_download.py
    (tmp_path / "config.json").write_text("{}")
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), dtype="int8"))
    assert kwargs["model"] == str(tmp_path) and kwargs["dtype"] == "auto"
    assert "tokenizer" not in kwargs and "max_num_seqs" not in kwargs


def test_options_override_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), options={"enable_prefix_caching": False}))
    assert kwargs["enable_prefix_caching"] is False


def test_cpu_kwargs_schedule_whole_prompts_and_size_the_kv_cache_from_free_ram(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 32768}))
    monkeypatch.setattr(platform, "available_memory", lambda: 10 * platform.GiB)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path)), cpu=True)
    assert kwargs["enable_chunked_prefill"] is False, "a split seeded prompt crashes the CPU worker"
    assert kwargs["enforce_eager"] is True, "as fast as compiled on 2 cores, and starts 13 s sooner"
    assert kwargs["max_model_len"] == kwargs["max_num_batched_tokens"] == 4096, "every prompt fits one step"
    assert "gpu_memory_utilization" not in kwargs and kwargs["kv_cache_memory_bytes"] == int(2.5 * platform.GiB)
    long = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), max_model_len=32768), cpu=True)
    assert long["max_model_len"] == long["max_num_batched_tokens"] == 32768, "the user's length, whole prompts"
    short = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), max_model_len=1024), cpu=True)
    assert short["max_num_batched_tokens"] == platform.CPU_TOKEN_BUDGET == 2048
    assert platform.kv_cache_bytes(100 * platform.GiB) == platform.KV_CACHE_MAX
    assert platform.kv_cache_bytes(6 * platform.GiB, weights=2 * platform.GiB) < 1 * platform.GiB, "weights first"
    with pytest.raises(EngineError, match="not enough free memory for vLLM on CPU"):
        platform.kv_cache_bytes(16 * platform.GiB, weights=14 * platform.GiB)


def test_cpu_memory_the_user_chose_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    chosen = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), gpu_memory_utilization=0.3), cpu=True)
    assert chosen["gpu_memory_utilization"] == 0.3 and "kv_cache_memory_bytes" not in chosen
    options = {"kv_cache_memory_bytes": 1 << 30, "enable_chunked_prefill": True, "max_num_batched_tokens": 512,
               "enforce_eager": False}
    mine = engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path), options=options), cpu=True)
    assert {k: mine[k] for k in options} == options, "engine.options win"
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    assert "kv_cache_memory_bytes" not in engine_kwargs(EngineConfig(backend="vllm", model=str(tmp_path)), cpu=True)


def test_cpu_environment_reloads_the_compile_cache_and_keeps_vllms_binding() -> None:
    assert platform.cpu_environment() == {"VLLM_USE_AOT_COMPILE": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def test_settings_apply_only_where_unset_and_only_while_vllm_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")
    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    with platform.temporary_env({"VLLM_USE_AOT_COMPILE": "0", "VLLM_LOGGING_LEVEL": "ERROR"}) as chosen:
        assert chosen == {"VLLM_LOGGING_LEVEL": "ERROR"}
        assert os.environ["VLLM_USE_AOT_COMPILE"] == "1" and os.environ["VLLM_LOGGING_LEVEL"] == "ERROR"
    assert os.environ["VLLM_USE_AOT_COMPILE"] == "1" and "VLLM_LOGGING_LEVEL" not in os.environ


def test_vllm_logs_are_quiet_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOPICTREE_DEBUG", raising=False)
    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    assert platform.quiet() and platform.logging_environment(True)["VLLM_LOGGING_LEVEL"] == "ERROR"
    monkeypatch.setenv("TOPICTREE_DEBUG", "1")
    assert not platform.quiet()
    monkeypatch.delenv("TOPICTREE_DEBUG")
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")
    assert not platform.quiet() and platform.logging_environment(False) == {}


@pytest.mark.parametrize(("dists", "torch_version", "message"), [
    ({"vllm": "0.32.0"}, "2.13.0+cu130", "is the CUDA build and this machine has no CUDA GPU"),
    ({"vllm-cpu": "0.32.0"}, "2.12.0+cpu", r"vllm-cpu 0.32.0 needs torch 2.13.0\+cpu but torch 2.12.0\+cpu"),
])
def test_bad_installs_fail_with_one_line(dists: dict[str, str], torch_version: str, message: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(platform, "_dist_version", dists.get)
    monkeypatch.setattr(platform, "_required_torch", lambda _dist: "2.13.0+cpu")
    monkeypatch.setattr(torch, "__version__", torch_version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=message) as info:
        platform.check_install()
    assert "\n" not in str(info.value)


def test_the_cpu_build_pins_the_torch_it_was_built_for() -> None:
    if platform._dist_version("vllm-cpu") is None:
        pytest.skip("needs an x86-64 CPU with AVX-512 for vllm-cpu (not installed on this hardware)")
    assert platform._required_torch("vllm-cpu") == "2.13.0+cpu"


def test_a_torchvision_that_breaks_import_vllm_names_the_uninstall(monkeypatch: pytest.MonkeyPatch) -> None:
    err = platform._broken_import(RuntimeError("operator torchvision::nms does not exist"))
    assert str(err).endswith("pip uninstall -y torchvision torchaudio torchcodec")
    monkeypatch.setattr(platform, "check_install", lambda: None)
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'topictree-hf\[vllm\]'"):
        platform.import_vllm()


def test_parameters_from_safetensors_headers_and_from_a_config(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {}, "a": {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 24]},
                         "b": {"dtype": "BF16", "shape": [5], "data_offsets": [24, 34]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 34)
    assert platform.parameter_count_from_config(str(tmp_path)) == 17
    smollm2 = types.SimpleNamespace(hidden_size=576, num_hidden_layers=30, vocab_size=49152, num_attention_heads=9,
                                    head_dim=64, num_key_value_heads=3, intermediate_size=1536,
                                    tie_word_embeddings=True)
    assert estimate_parameters(smollm2) == 134_515_008  # SmolLM2-135M exactly


def test_the_root_cause_is_the_last_exception_in_vllms_log(tmp_path: Path) -> None:
    log = tmp_path / "vllm.log"
    log.write_text("Loading safetensors checkpoint shards: 100%\n"
                   "FutureWarning: `torch.distributed.reduce_op` is deprecated\n"
                   "(EngineCore pid=7) ERROR 12-01 11:00:00 [core.py:1] EngineCore encountered a fatal error.\n"
                   "Traceback (most recent call last):\n"
                   "(EngineCore pid=7) RuntimeError: CPU Generator does not use offset\n")
    assert platform.last_error_line(log) == "RuntimeError: CPU Generator does not use offset"
    message = death_message(Exception("EngineCore encountered an issue."), log)
    assert "enable_chunked_prefill false" in message and "rerun the same command to resume" in message
    silent = death_message(type("EngineDeadError", (Exception,), {})("EngineCore encountered an issue."), None)
    assert "likely out of memory" in silent and "engine.batch_size" in silent and "\n" not in silent


@pytest.mark.slow
def test_the_bundled_gguf_becomes_a_cached_safetensors_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path))
    folder = Path(model_path(SMOLLM2))  # converts now: the cache is empty
    assert folder.parent == tmp_path / "models"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16" and "quantization_config" not in config
    assert resolve_model(str(folder)).gguf_file is None, "a plain transformers folder"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    kwargs = engine_kwargs(EngineConfig(backend="vllm", model=SMOLLM2))
    assert kwargs["model"] == str(folder) and "tokenizer" not in kwargs
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, "converted once, then reused"
    assert platform.parameter_count_from_config(str(folder)) == 134_515_008, "SmolLM2-135M, from its headers"


def test_leading_json() -> None:
    assert _leading_json('{"a": 1}') == '{"a": 1}'
    assert _leading_json(' {"a": [1, 2]} and then some chatter') == '{"a": [1, 2]}'
    assert _leading_json('{"a": "unfinished') is None
    assert _leading_json("plain text") is None


class StubEngineCore:
    """vLLM's engine loop in miniature: `step` finishes up to two queued requests, newest first, so
    completions come back out of order."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any, Any, dict[str, Any]]] = []
        self.steps = 0
        self.aborted: list[str] = []
        self.shut = False
        self.die_at_step: int | None = None
        self.widest = 0
        self.paused = False
        self.pauses = 0
        self.engine_core = self

    def step(self) -> list[Any]:
        assert not self.paused, "a step while paused would never return"
        self.steps += 1
        self.widest = max(self.widest, len(self.queue))
        if self.steps == self.die_at_step:
            raise type("EngineDeadError", (Exception,), {})("EngineCore encountered an issue.")
        done, self.queue = self.queue[-2:][::-1], self.queue[:-2]
        return [_output(*entry) for entry in done]

    def sleep(self, level: int, mode: str) -> None:
        assert level == 0 and mode == "keep" and not self.paused
        self.paused = True
        self.pauses += 1

    def wake_up(self, tags: list[str]) -> bool:
        assert tags == ["scheduling"] and self.paused
        self.paused = False
        return True

    def abort_request(self, request_ids: list[str]) -> None:
        self.aborted += request_ids
        self.queue = [e for e in self.queue if e[0] not in request_ids]

    def shutdown(self) -> None:
        self.shut = True


def _output(request_id: str, chat: Any, params: Any, flags: dict[str, Any]) -> Any:
    text = chat[-1]["content"]
    if params.structured_outputs is not None:
        text = json.dumps({"name": text}) + " trailing chatter"
    reason = "length" if params.structured_outputs is not None else "stop"
    first = types.SimpleNamespace(text=text, finish_reason=reason, token_ids=[0] * params.max_tokens)
    return types.SimpleNamespace(request_id=request_id, finished=True, outputs=[first], prompt_token_ids=[0] * 10)


class StubLLM:
    """Stands in for `vllm.LLM`: records its arguments and every `enqueue_chat`."""

    instances: list[StubLLM] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.enqueued: list[dict[str, Any]] = []
        self.llm_engine = StubEngineCore()
        self.counter = itertools.count()
        self.env = {k: v for k, v in os.environ.items() if k.startswith("VLLM_")}
        StubLLM.instances.append(self)

    def enqueue_chat(self, messages: list[Any], sampling_params: list[Any], **flags: Any) -> list[str]:
        assert len(messages) == len(sampling_params) == 1
        if messages[0][-1]["content"] == "too long":
            raise ValueError("The decoder prompt (length 9000) is longer than the maximum model length of 2048.")
        request_id = str(next(self.counter))
        self.enqueued.append({"messages": messages[0], "params": sampling_params[0], **flags})
        self.llm_engine.queue.append((request_id, messages[0], sampling_params[0], flags))
        return [f"{request_id}-0a1b2c3d"]


@pytest.fixture
def stub_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[StubLLM]:
    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    vllm.LLM = StubLLM  # type: ignore[attr-defined]
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    vllm.platforms = types.SimpleNamespace(  # type: ignore[attr-defined]
        current_platform=types.SimpleNamespace(is_cpu=lambda: False))
    sampling.StructuredOutputsParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    monkeypatch.setattr(platform, "check_install", lambda: None)
    monkeypatch.delenv("VLLM_NO_USAGE_STATS", raising=False)
    monkeypatch.setenv("TOPICTREE_CACHE", str(tmp_path / "cache"))
    StubLLM.instances.clear()
    return StubLLM


@pytest.fixture
def stub_engine(stub_vllm: type[StubLLM], tmp_path: Path) -> Iterator[VLLMEngine]:
    (tmp_path / "config.json").write_text("{}")
    engine = create_engine(EngineConfig(backend="vllm", model=str(tmp_path), max_num_seqs=8))
    assert isinstance(engine, VLLMEngine)
    yield engine
    engine.close()


def text_request(i: int, **kw: Any) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"r{i}"}], SamplingParams(0.5, 0.9, 10 + i, seed=i), **kw)


def test_every_request_goes_in_before_the_first_step_with_its_own_params(stub_engine: VLLMEngine) -> None:
    assert os.environ["VLLM_NO_USAGE_STATS"] == "1", "usage stats off unless the user chose"
    (llm,) = StubLLM.instances
    assert llm.kwargs["enable_prefix_caching"] is True and "enable_chunked_prefill" not in llm.kwargs, "GPU: as is"
    requests = [text_request(i, json_schema=SCHEMA if i % 2 else None) for i in range(4)]
    seen = []
    out = stub_engine.generate(requests, progress=seen.append)
    assert [e["use_tqdm"] for e in llm.enqueued] == [False] * 4 and llm.llm_engine.steps == 2
    params = [e["params"] for e in llm.enqueued]
    assert [p.seed for p in params] == [0, 1, 2, 3] and [p.max_tokens for p in params] == [10, 11, 12, 13]
    assert [p.structured_outputs is not None for p in params] == [False, True, False, True]
    assert params[1].structured_outputs.json == SCHEMA
    assert [c.text for c in out] == ["r0", '{"name": "r1"}', "r2", '{"name": "r3"}'], "order kept, tail cut"
    assert [c.finish_reason for c in out] == ["stop"] * 4 and [c.output_tokens for c in out] == [10, 11, 12, 13]
    assert seen == [1, 1, 1, 1], "progress as each one finishes"
    assert llm.llm_engine.pauses == 1, "the scheduler waited until the whole batch was queued"
    stub_engine.close()
    stub_engine.close()
    assert llm.llm_engine.shut and stub_engine.llm is None


def test_prefill_is_decided_per_request(stub_engine: VLLMEngine) -> None:
    prefilled = ChatRequest([{"role": "user", "content": "q"}, {"role": "assistant", "content": "Answer:"}])
    stub_engine.generate([text_request(0), prefilled, text_request(2)])
    flags = [(e["add_generation_prompt"], e["continue_final_message"]) for e in StubLLM.instances[0].enqueued]
    assert flags == [(True, False), (False, True), (True, False)]


def test_stream_pulls_lazily_and_keeps_at_most_max_in_flight(stub_engine: VLLMEngine) -> None:
    pulled: list[int] = []

    def source() -> Iterator[ChatRequest]:
        for i in range(7):
            pulled.append(i)
            yield text_request(i)

    llm = StubLLM.instances[0]
    stream = stub_engine.stream(source(), max_in_flight=3)
    first = next(stream)
    assert pulled == [0, 1, 2] and first[0] == 2, "three pulled, the newest finished first"
    rest = list(stream)
    assert sorted([first[0]] + [i for i, _ in rest]) == list(range(7))
    assert all(c.text == f"r{i}" for i, c in rest)
    assert llm.llm_engine.widest == 3 and llm.llm_engine.queue == [] and len(llm.enqueued) == 7


def test_stream_picks_up_retries_appended_while_consuming(stub_engine: VLLMEngine) -> None:
    feed = Feed(text_request(i) for i in range(3))  # re-polled after each completion

    done = []
    for index, completion in stub_engine.stream(feed, max_in_flight=2):
        done.append((index, completion.text))
        if completion.text == "r1":
            feed.append(text_request(9))  # a retry
    assert sorted(done) == [(0, "r0"), (1, "r1"), (2, "r2"), (3, "r9")]


def test_leaving_a_stream_early_aborts_what_is_in_flight(stub_engine: VLLMEngine) -> None:
    stream = stub_engine.stream((text_request(i) for i in range(5)), max_in_flight=4)
    next(stream)
    stream.close()
    assert sorted(StubLLM.instances[0].llm_engine.aborted) == ["0", "1", "2"], "all not yet handed out"


def test_a_request_vllm_refuses_fails_alone(stub_engine: VLLMEngine) -> None:
    refused = ChatRequest([{"role": "user", "content": "too long"}])
    out = stub_engine.generate([text_request(0), refused, text_request(2)])
    assert [c.finish_reason for c in out] == ["stop", "error", "stop"]
    assert out[1].error is not None and "maximum model length" in out[1].error
    assert stub_engine.llm is not None, "the engine goes on"


def test_a_dead_engine_is_one_line_and_leaves_nothing_running(stub_engine: VLLMEngine) -> None:
    llm = StubLLM.instances[0]
    llm.llm_engine.die_at_step = 1
    with pytest.raises(EngineError, match="likely out of memory") as info:
        stub_engine.generate([text_request(i) for i in range(3)])
    assert "\n" not in str(info.value) and "rerun the same command to resume" in str(info.value)
    assert llm.llm_engine.shut and stub_engine.llm is None
    with pytest.raises(EngineError, match="closed"):
        stub_engine.generate([text_request(0)])


def test_a_start_that_runs_out_of_memory_names_the_fix(stub_vllm: type[StubLLM], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_kw: Any) -> None:
        raise ValueError("Available memory on node 0 (3.1/15.1 GiB) on startup is less than desired CPU memory "
                         "utilization (0.9, 13.6 GiB).")

    monkeypatch.setattr(sys.modules["vllm"], "LLM", refuse)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineError, match=r"vLLM could not start .*gpu_memory_utilization") as info:
        create_engine(EngineConfig(backend="vllm", model=str(tmp_path)))
    assert "\n" not in str(info.value)


def test_on_cpu_the_platform_settings_hold_while_vllm_starts(stub_vllm: type[StubLLM], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VLLM_USE_AOT_COMPILE", "VLLM_LOGGING_LEVEL", "TOPICTREE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys.modules["vllm"].platforms.current_platform, "is_cpu", lambda: True)
    (tmp_path / "config.json").write_text("{}")
    with create_engine(EngineConfig(backend="vllm", model=str(tmp_path), max_model_len=1024)) as engine:
        (llm,) = StubLLM.instances
        assert llm.env["VLLM_USE_AOT_COMPILE"] == "0" and llm.env["VLLM_LOGGING_LEVEL"] == "ERROR"
        assert llm.kwargs["enable_chunked_prefill"] is False and "kv_cache_memory_bytes" in llm.kwargs
        assert "VLLM_USE_AOT_COMPILE" not in os.environ and "VLLM_LOGGING_LEVEL" not in os.environ, "then removed"
        assert engine.parameter_count is None, "no weights in this folder, no config to estimate from"


def test_int8_is_refused_with_the_fix(stub_vllm: type[StubLLM]) -> None:
    with pytest.raises(ConfigError, match="use auto with vllm"):
        create_engine(EngineConfig(backend="vllm", model="a/b", dtype="int8"))
