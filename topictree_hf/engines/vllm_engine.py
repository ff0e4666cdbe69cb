"""The `vllm` backend: in-process `vllm.LLM`, one `chat` call per batch (vLLM schedules it),
structured outputs through `StructuredOutputsParams(json=...)`, prefix caching on.

vLLM is imported here only, lazily; without it the error names the extra to install. Usage
stats stay off unless the user set VLLM_NO_USAGE_STATS / DO_NOT_TRACK themselves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from topictree_hf.config import EngineConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress
from topictree_hf.engines.models import resolve_model
from topictree_hf.errors import BackendUnavailableError, ConfigError

INSTALL = "pip install 'topictree-hf[vllm]'"


def import_vllm() -> Any:
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        import vllm
    except ImportError:
        raise BackendUnavailableError(f"backend 'vllm' needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def engine_kwargs(config: EngineConfig) -> dict[str, Any]:
    """`vllm.LLM(...)` keyword arguments from the config; `engine.options` pass through unchanged."""
    source = resolve_model(config.model) if _is_local(config.model) else None
    kwargs: dict[str, Any] = {
        "model": str(source.path / source.gguf_file) if source and source.gguf_file else
        (str(source.path) if source else config.model),
        "dtype": "auto" if config.dtype in ("auto", "int8") else config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enable_prefix_caching": True,
    }
    if source and source.gguf_file:
        kwargs["tokenizer"] = str(source.path)
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    if config.max_model_len:
        kwargs["max_model_len"] = config.max_model_len
    kwargs.update(config.options)
    return kwargs


def _is_local(model: str) -> bool:
    return model.startswith("bundled:") or os.path.exists(os.path.expanduser(model))


class VLLMEngine(Engine):
    backend = "vllm"

    def __init__(self, config: EngineConfig) -> None:
        vllm = import_vllm()
        if config.dtype == "int8":
            raise ConfigError("engine.dtype int8 is for the transformers backend on CPU; use auto with vllm")
        self.config = config
        self.model_name = config.model
        self._vllm = vllm
        self.llm = vllm.LLM(**engine_kwargs(config))

    def sampling_params(self, request: ChatRequest) -> Any:
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
        return self._vllm.SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            structured_outputs=structured,
        )

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        if not requests:
            return []
        prefill = [r.messages[-1]["role"] == "assistant" for r in requests]
        if any(prefill) and not all(prefill):  # vLLM takes these flags per call, not per request
            half = prefill.index(not prefill[0])
            return self.generate(requests[:half], progress) + self.generate(requests[half:], progress)
        outputs = self.llm.chat(
            [r.messages for r in requests],
            [self.sampling_params(r) for r in requests],
            use_tqdm=False,
            add_generation_prompt=not prefill[0],
            continue_final_message=prefill[0],
        )
        if progress is not None:
            progress(len(requests))
        return [_completion(o) for o in outputs]

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None),
                                                                     "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm


def _completion(output: Any) -> Completion:
    first = output.outputs[0]
    reason = "length" if first.finish_reason == "length" else "stop"
    return Completion(first.text, reason, len(output.prompt_token_ids or []), len(first.token_ids or []))
