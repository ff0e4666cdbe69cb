"""The `transformers` backend: batched, left-padded generation on CPU (or a GPU when present),
with per-request seeds and JSON-schema constrained decoding. The default model is the bundled
SmolLM2-135M-Instruct GGUF."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessorList
from transformers.utils import logging as hf_logging

from topictree_hf.config import EngineConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress, parse_options
from topictree_hf.engines.constrained import Guide
from topictree_hf.engines.models import ModelSource, converted_gguf, gguf_as_folder, resolve_model
from topictree_hf.engines.parameters import count_parameters, is_copy, sample_rows
from topictree_hf.engines.sampling import RowSampler
from topictree_hf.errors import ConfigError, EngineError, ModelNotFoundError

logger = logging.getLogger(__name__)


class TransformersOptions(BaseModel):
    """`engine.options` accepted by this backend."""

    model_config = ConfigDict(extra="forbid")
    guidance: str = "llguidance"  # or "xgrammar"
    threads: int | None = None
    attn_implementation: str | None = None


class TransformersEngine(Engine):
    backend = "transformers"

    def __init__(self, config: EngineConfig) -> None:
        self.options = parse_options(TransformersOptions, config.options, self.backend)
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.config = config
        self.model_name = config.model
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        source = resolve_model(config.model)
        self.tokenizer, self.model = _load(source, self.device, config.dtype, self.options.attn_implementation)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = _eos_ids(self.tokenizer, self.model)
        self.parameter_count = count_parameters(_weights_folder(source)) or _count_loaded(self.model)
        self._guide: Guide | None = None

    @property
    def guide(self) -> Guide:
        if self._guide is None:
            weight = self.model.get_output_embeddings().weight
            weight = weight() if callable(weight) else weight  # int8 (dynamically quantized) Linear: a method
            self._guide = Guide(self.tokenizer, int(weight.shape[0]), self.options.guidance)
        return self._guide

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        prompts = [self._encode(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))  # similar lengths pad less
        results: list[Completion | None] = [None] * len(requests)
        size = self.config.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            outs = self._generate_batch([requests[i] for i in chunk], [prompts[i] for i in chunk])
            for i, out in zip(chunk, outs, strict=True):
                results[i] = out
            if progress is not None:
                progress(len(chunk))
        return [r for r in results if r is not None]

    def _encode(self, request: ChatRequest) -> list[int]:
        try:
            prefill = request.messages[-1]["role"] == "assistant"
            text = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=not prefill,
                                                      continue_final_message=prefill, tokenize=False)
        except Exception as exc:  # jinja errors from the model's own template
            raise EngineError(f"the model's chat template rejected a request ({exc}); check message roles") from None
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def _generate_batch(self, requests: list[ChatRequest], prompts: list[list[int]]) -> list[Completion]:
        needs_guide = any(r.json_schema is not None for r in requests)
        sampler = RowSampler(requests, self.guide if needs_guide else None, self.eos_ids)
        batch = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt", padding=True)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        width = batch["input_ids"].shape[1]
        sampler.starts = [width - len(p) for p in prompts]  # the repetition penalty skips the padding
        gen_config = GenerationConfig(
            max_new_tokens=max(r.sampling.max_tokens for r in requests) + 1,
            do_sample=False,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        out = self.model.generate(
            **batch, generation_config=gen_config, logits_processor=LogitsProcessorList([sampler])
        )
        new = out[:, batch["input_ids"].shape[1] :].tolist()
        return [self._completion(i, new[i], len(prompts[i]), sampler) for i in range(len(requests))]

    def _completion(self, i: int, tokens: list[int], n_prompt: int, sampler: RowSampler) -> Completion:
        stop = next((k for k, t in enumerate(tokens) if t in sampler.eos_ids), None)
        body = tokens if stop is None else tokens[:stop]
        finished = stop is not None and not sampler.truncated[i]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        return Completion(text, "stop" if finished else "length", n_prompt, len(body))

    def close(self) -> None:
        self.model = None
        self._guide = None


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' loading bars off while this engine loads (the caller reports loading), then as they were."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load(source: ModelSource, device: torch.device, dtype: str, attn: str | None) -> tuple[Any, Any]:
    with _no_progress_bars():
        return _load_quietly(source, device, dtype, attn)


def _load_quietly(source: ModelSource, device: torch.device, dtype: str, attn: str | None) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype, device)}
    if attn:
        kwargs["attn_implementation"] = attn
    folder, gguf = source.path, source.gguf_file
    if gguf:
        converted = gguf_as_folder(source)
        if converted is not None:
            folder, gguf = converted, None
    file_kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **file_kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **file_kwargs, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load model from {folder}: {str(exc).splitlines()[0]}; "
                                 "check that it is a complete transformers model folder or GGUF file") from None
    if dtype == "int8":
        if device.type != "cpu":
            raise ConfigError("engine.dtype int8 is CPU-only; use bfloat16 on a GPU")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    model.to(device)
    model.eval()
    return tokenizer, model


def _weights_folder(source: ModelSource) -> Any:
    """The safetensors folder the model was loaded from (None: a GGUF read directly, its cache unwritable)."""
    return converted_gguf(source) if source.gguf_file else source.path


def _count_loaded(model: Any) -> int:
    """Parameters of a loaded model (no safetensors headers to read), an output layer that copies the
    input embeddings counted once (engines/parameters.py)."""
    total = int(sum(p.numel() for p in model.parameters()))  # a tied output layer is one parameter already
    inputs = getattr(model.get_input_embeddings(), "weight", None)
    outputs = getattr(model.get_output_embeddings(), "weight", None)
    if not isinstance(inputs, torch.Tensor) or not isinstance(outputs, torch.Tensor) or inputs is outputs:
        return total
    if inputs.shape != outputs.shape or inputs.dim() != 2:
        return total
    rows = sample_rows(inputs.shape[0])
    with torch.no_grad():
        a, b = (w[rows].detach().float().cpu().numpy() for w in (outputs, inputs))
    return total - outputs.numel() if is_copy(a, b) else total


def _torch_dtype(dtype: str, device: torch.device) -> Any:
    """`auto` is float32 on CPU: there a request's text then depends on its seed alone, not on its
    batch-mates. CPU bfloat16 kernels round differently with the batch's shape (a lone row, a padded row,
    16 rows), which changes sampled tokens; bfloat16 is ~1.3x faster batched (docs/benchmarks.md)."""
    if dtype in ("float32", "int8"):
        return torch.float32
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    return getattr(torch, dtype)


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    if not ids:
        raise EngineError("the model defines no end-of-sequence token; set eos_token_id in its generation_config")
    return ids
