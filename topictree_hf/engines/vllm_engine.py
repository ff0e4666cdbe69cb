"""The `vllm` backend: in-process `vllm.LLM`, fed through vLLM's own engine loop (`enqueue_chat` +
`LLMEngine.step`), so requests go in as they come and completions come out as each one finishes;
structured outputs through `StructuredOutputsParams(json=...)`, prefix caching on.

vLLM is imported here only, lazily, with the platform checks and settings of `vllm_platform` (the CPU
build needs its own). Usage stats stay off unless the user set VLLM_NO_USAGE_STATS / DO_NOT_TRACK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from topictree_hf.config import EngineConfig
from topictree_hf.engines import vllm_platform as platform
from topictree_hf.engines.base import ChatRequest, Completion, Engine, FinishReason, Progress
from topictree_hf.engines.models import cache_root, gguf_as_folder, resolve_model
from topictree_hf.engines.vllm_platform import INSTALL, import_vllm
from topictree_hf.errors import ConfigError, EngineError
from topictree_hf.telemetry import USAGE_STATS_VARS, usage_stats_off

__all__ = ["INSTALL", "USAGE_STATS_VARS", "VLLMEngine", "engine_kwargs", "import_vllm", "model_path", "usage_stats_off"]

log = logging.getLogger(__name__)
MEMORY_FIX = ("lower engine.batch_size or engine.max_num_seqs (or engine.max_model_len), or free RAM/GPU memory "
              "(engine.gpu_memory_utilization)")


def memory_auto(config: EngineConfig) -> bool:
    """On CPU the default `gpu_memory_utilization` means "size the KV cache from free RAM": vLLM would
    otherwise reserve that share of ALL RAM. A value the user set, or one in `engine.options`, is
    passed through."""
    chosen = config.gpu_memory_utilization is not None
    return not chosen and not {"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(config.options)


def engine_kwargs(config: EngineConfig, cpu: bool = False) -> dict[str, Any]:
    """`vllm.LLM(...)` keyword arguments from the config; `engine.options` pass through unchanged and win."""
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
    if kwargs["gpu_memory_utilization"] is None:  # "auto": vLLM's own default on a GPU
        del kwargs["gpu_memory_utilization"]
    if cpu:
        auto = memory_auto(config)
        if auto:
            kwargs.pop("gpu_memory_utilization", None)
        kwargs.update(platform.cpu_engine_kwargs(config.max_model_len, kwargs["model"], auto))
    kwargs.update(config.options)
    return kwargs


def model_path(model: str) -> str:
    """What vLLM loads: a local folder (a Hub model's snapshot in the local cache, downloaded first when
    missing: engines/hub.py). A GGUF (the bundled models included) becomes the safetensors folder that the
    transformers loader caches, made now if missing: vLLM cannot build a tokenizer from these GGUFs."""
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
        if config.dtype == "int8":
            raise ConfigError("engine.dtype int8 is for the transformers backend on CPU; use auto with vllm")
        self.config = config
        self.model_name = config.model
        self.llm: Any = None
        self._children: set[int] = set()
        quiet = platform.quiet()
        self.log_path = engine_log_path() if quiet else None
        with platform.temporary_env(platform.logging_environment(quiet)):
            self._vllm = vllm = import_vllm()
            self.on_cpu = platform.is_cpu(vllm)
            settings = platform.cpu_environment() if self.on_cpu else {}
            kwargs = engine_kwargs(config, cpu=self.on_cpu)
            with platform.temporary_env(settings) as chosen:
                log.debug("vLLM settings: %s, LLM(%s)", chosen, kwargs)
                self._start(vllm, kwargs)
        if quiet:  # what vLLM's front end would log from now on (an engine death included) is ours to say
            logging.getLogger("vllm").setLevel(logging.CRITICAL)
        self.parameter_count: int | None = parameter_count(kwargs["model"], self.llm)

    def _start(self, vllm: Any, kwargs: dict[str, Any]) -> None:
        before = platform.child_pids()
        try:
            with platform.stderr_to(self.log_path):
                self.llm = vllm.LLM(**kwargs)
        except Exception as exc:
            self._children = platform.child_pids() - before
            self.close()
            raise EngineError(start_failure(exc, self.log_path)) from exc
        self._children = platform.child_pids() - before

    def sampling_params(self, request: ChatRequest) -> Any:
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema is not None else None
        return self._vllm.SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            structured_outputs=structured, repetition_penalty=s.repetition_penalty or 1.0,
        )

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        """Every request in at once (vLLM schedules them), completions back in request order."""
        results: list[Completion | None] = [None] * len(requests)
        for index, completion in self.stream(requests):
            results[index] = completion
            if progress is not None:
                progress(1)
        return [c if c is not None else Completion("", "error", error="no output") for c in results]

    def stream(
        self, requests: Iterable[ChatRequest], max_in_flight: int | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """Complete requests as they are pulled from `requests` (lazily: at most `max_in_flight` outstanding,
        None for no bound), yielding `(pull index, completion)` as each one finishes. The iterable is
        polled again after every completion, so requests the caller appends while consuming (retries) are
        picked up; the stream ends when it yields nothing and nothing is in flight. Leaving the loop early
        aborts what is still in flight."""
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.llm is None:
            raise EngineError("the vllm engine is closed")
        source = iter(requests)
        in_flight: dict[str, tuple[int, bool]] = {}  # vLLM request id -> (pull index, under a schema)
        pulled = 0

        def room() -> bool:
            return max_in_flight is None or len(in_flight) < max_in_flight

        try:
            while True:
                request = next(source, None) if room() else None
                if request is not None:
                    with self._queuing(paused=not in_flight):
                        while request is not None:
                            index, pulled = pulled, pulled + 1
                            try:
                                in_flight[self._add(request)] = (index, request.json_schema is not None)
                            except ValueError as exc:  # this request only, e.g. a prompt over max_model_len
                                yield index, Completion("", "error", error=" ".join(str(exc).split())[:300])
                            request = next(source, None) if room() else None
                if not in_flight:
                    return
                for output in self._step():
                    entry = in_flight.pop(output.request_id, None) if output.finished else None
                    if entry is not None:
                        yield entry[0], _completion(output, entry[1])
        finally:
            if in_flight and self.llm is not None:
                self._abort(list(in_flight))

    @contextlib.contextmanager
    def _queuing(self, paused: bool) -> Iterator[None]:
        """With `paused` (the engine is idle), vLLM's scheduler waits until the whole refill is queued, so
        the first batch, and with it every seeded text, does not depend on how fast requests arrive."""
        engine = self.llm.llm_engine
        if paused:
            try:
                engine.sleep(level=0, mode="keep")
            except Exception as exc:
                if self._dead(exc):
                    raise self._died(exc) from exc
                log.debug("cannot pause vLLM's scheduler", exc_info=True)
                paused = False
        try:
            yield
        finally:
            if paused and self.llm is not None:
                try:
                    engine.wake_up(tags=["scheduling"])
                except Exception as exc:
                    raise self._died(exc) from exc

    def _add(self, request: ChatRequest) -> str:
        """Render and queue one request; its vLLM request id. A request vLLM refuses (a prompt over
        max_model_len, a template that rejects it) raises ValueError: that request fails, not the engine."""
        prefill = request.messages[-1]["role"] == "assistant"
        try:
            (internal_id,) = self.llm.enqueue_chat(
                [request.messages], [self.sampling_params(request)], use_tqdm=False,
                add_generation_prompt=not prefill, continue_final_message=prefill,
            )
        except Exception as exc:
            if self._dead(exc):
                raise self._died(exc) from exc
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc
        return _external_id(internal_id)

    def _dead(self, exc: BaseException) -> bool:
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        return type(exc).__name__ == "EngineDeadError" or bool(getattr(getattr(core, "resources", None),
                                                                       "engine_dead", False))

    def _step(self) -> list[Any]:
        try:
            return list(self.llm.llm_engine.step())
        except Exception as exc:
            raise self._died(exc) from exc

    def _abort(self, request_ids: list[str]) -> None:
        try:
            self.llm.llm_engine.abort_request(request_ids)
        except Exception:  # a dead engine has nothing left to abort
            log.debug("abort of %d requests failed", len(request_ids), exc_info=True)

    def _died(self, exc: BaseException) -> EngineError:
        """The engine cannot go on: one line with the likely cause and the fix; its processes are stopped."""
        message = death_message(exc, self.log_path)
        self.close()
        return EngineError(message)

    def close(self) -> None:
        """Stop vLLM's engine-core and worker processes now (not when the garbage collector gets to it) and
        make sure none is left behind."""
        llm, self.llm = self.llm, None
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            shutdown = getattr(core, "shutdown", None) or getattr(llm, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:
                    log.debug("vLLM shutdown failed", exc_info=True)
            del llm
        platform.reap(getattr(self, "_children", set()))
        if self.log_path is not None and self.log_path.exists() and not _has_error(self.log_path):
            self.log_path.unlink(missing_ok=True)


def engine_log_path() -> Path:
    return cache_root() / "logs" / f"vllm-{os.getpid()}.log"


def _external_id(internal_id: str) -> str:
    """`enqueue_chat` returns vLLM's internal id ("<counter>-<random>"); outputs carry the counter part."""
    return internal_id.split("-", 1)[0]


def parameter_count(model: str, llm: Any) -> int | None:
    """From the safetensors headers of a local folder; else estimated from the model's config."""
    count = platform.parameter_count_from_config(model if os.path.isdir(model) else None)
    if count is not None:
        return count
    try:
        hf_config = llm.llm_engine.model_config.hf_text_config
    except AttributeError:
        return None
    return estimate_parameters(hf_config)


def estimate_parameters(cfg: Any) -> int | None:
    """A Llama-style decoder's parameters from its config (attention, gated MLP, norms, embeddings), for
    `mode: auto` when the weights are not in a local folder."""
    try:
        hidden, layers, vocab = int(cfg.hidden_size), int(cfg.num_hidden_layers), int(cfg.vocab_size)
        heads = int(cfg.num_attention_heads)
        head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
        kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
        inner = int(getattr(cfg, "intermediate_size", None) or 4 * hidden)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    embeddings = vocab * hidden * (1 if getattr(cfg, "tie_word_embeddings", False) else 2)
    norms = (2 * layers + 1) * hidden
    return layers * (attention + 3 * hidden * inner) + embeddings + norms


def _has_error(path: Path) -> bool:
    return platform.last_error_line(path) is not None


def start_failure(exc: BaseException, log_path: Path | None) -> str:
    cause = platform.root_cause(exc, log_path)
    where = f"; vLLM's log: {log_path}" if log_path is not None else ""
    if platform.looks_like_memory(cause):
        return f"vLLM could not start ({cause}): {MEMORY_FIX}{where}"
    return f"vLLM could not start ({cause}){where or '; rerun with TOPICTREE_DEBUG=1 to see its log'}"


def death_message(exc: BaseException, log_path: Path | None) -> str:
    cause = platform.root_cause(exc, log_path)
    where = f"; vLLM's log: {log_path}" if log_path is not None else ""
    resume = "; finished samples are journaled, rerun the same command to resume"
    if "Generator does not use offset" in cause:
        fix = ("a seeded request's prompt was split across scheduler steps: keep engine.options "
               "enable_chunked_prefill false (the CPU default) or raise max_num_batched_tokens")
    elif platform.looks_like_memory(cause) or cause.startswith("EngineDeadError"):
        fix = f"likely out of memory (a killed worker leaves no other trace): {MEMORY_FIX}"
    else:
        fix = "rerun with TOPICTREE_DEBUG=1 to see vLLM's log"
    return f"vLLM's engine stopped ({cause}): {fix}{resume}{where}"


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
