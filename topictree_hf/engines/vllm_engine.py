"""The `vllm` backend: in-process `vllm.LLM`, one `chat` call per batch (vLLM schedules it),
structured outputs through `StructuredOutputsParams(json=...)`, prefix caching on.

vLLM is imported here only, lazily; without it the error names the extra to install. Usage
stats stay off unless the user set VLLM_NO_USAGE_STATS / DO_NOT_TRACK themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from topictree_hf.config import EngineConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, FinishReason, Progress
from topictree_hf.engines.models import cache_root, gguf_as_folder, resolve_model
from topictree_hf.errors import BackendUnavailableError, ConfigError, EngineError

INSTALL = "pip install 'topictree-hf[vllm]'"


USAGE_STATS_VARS = ("VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK", "DO_NOT_TRACK")


def usage_stats_off() -> None:
    """vLLM sends usage stats unless told not to: tell it, unless the user already chose (set any of
    USAGE_STATS_VARS, to anything: VLLM_NO_USAGE_STATS=0 alone turns them on, so nothing else is set)."""
    if not any(name in os.environ for name in USAGE_STATS_VARS):
        os.environ["VLLM_NO_USAGE_STATS"] = "1"
        os.environ["DO_NOT_TRACK"] = "1"


def import_vllm() -> Any:
    usage_stats_off()  # before the import: vLLM reads it when its engine starts
    try:
        import vllm
    except ImportError:
        raise BackendUnavailableError(f"backend 'vllm' needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def engine_kwargs(config: EngineConfig) -> dict[str, Any]:
    """`vllm.LLM(...)` keyword arguments from the config; `engine.options` pass through unchanged."""
    kwargs: dict[str, Any] = {
        "model": model_path(config.model),
        "dtype": "auto" if config.dtype in ("auto", "int8") else config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enable_prefix_caching": True,
    }
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    if config.max_model_len:
        kwargs["max_model_len"] = config.max_model_len
    kwargs.update(config.options)
    return kwargs


def model_path(model: str) -> str:
    """What vLLM loads: a local folder, or a hub id as given. A GGUF (the bundled model included) becomes
    the safetensors folder that the transformers loader caches, made now if missing: vLLM cannot build a
    tokenizer from these GGUFs."""
    if not (model.startswith("bundled:") or os.path.exists(os.path.expanduser(model))):
        return model
    source = resolve_model(model)
    if source.gguf_file is None:
        return str(source.path)
    folder = gguf_as_folder(source)
    if folder is None:
        raise EngineError(f"cannot cache a safetensors copy of {source.gguf_file} under {cache_root()}, which "
                          "vLLM needs for a GGUF model; make that folder writable or set TOPICTREE_CACHE")
    return str(folder)


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
        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema is not None else None
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
            sampling_params=[self.sampling_params(r) for r in requests],
            use_tqdm=False,
            add_generation_prompt=not prefill[0],
            continue_final_message=prefill[0],
        )
        if progress is not None:
            progress(len(requests))
        return [_completion(o, r.json_schema is not None) for o, r in zip(outputs, requests, strict=True)]

    def close(self) -> None:
        """Stop the engine-core process and free the GPU now, not when the garbage collector gets to it."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        for owner in (llm, engine, getattr(engine, "engine_core", None)):  # newest API first
            shutdown = getattr(owner, "shutdown", None)
            if callable(shutdown):
                shutdown()
                break
        del llm


def _completion(output: Any, schema: bool) -> Completion:
    first = output.outputs[0]
    text = first.text
    reason: FinishReason = "length" if first.finish_reason == "length" else "stop"
    if schema and (value := _leading_json(text)) is not None and value != text:
        text, reason = value, "stop"  # the object was complete; what followed it was past the grammar's end
    return Completion(text, reason, len(output.prompt_token_ids or []), len(first.token_ids or []))


def _leading_json(text: str) -> str | None:
    """The complete JSON value `text` starts with, or None. Some SmolLM2 outputs under vLLM's structured
    outputs carried text after the object (../shared/gpu/README.md); the contract is the object alone."""
    stripped = text.lstrip()
    try:
        _, end = json.JSONDecoder().raw_decode(stripped)
    except ValueError:
        return None
    return stripped[:end]
