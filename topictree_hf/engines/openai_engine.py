"""The `openai` backend: any OpenAI-compatible server (`vllm serve`, llama.cpp, TGI, ...).

Many requests in flight (bounded by `engine.max_concurrency`), JSON schema through the standard
`response_format: json_schema` (vLLM honours it), retries with exponential backoff on 429, 5xx and
connection errors. Standard library HTTP only. The API key, if any, is read from the environment
variable the config names and never written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from topictree_hf.config import BUNDLED_MODEL, EngineConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress
from topictree_hf.errors import ServerUnreachableError

logger = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class OpenAIEngine(Engine):
    backend = "openai"

    def __init__(self, config: EngineConfig) -> None:
        assert config.base_url, "validated by EngineConfig"
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self._key = os.environ.get(config.api_key_env) or None
        served = self._served_models()
        self.model_name = served[0] if config.model == BUNDLED_MODEL and served else config.model

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _served_models(self) -> list[str]:
        try:
            data = self._call("GET", "/models", None, timeout=10.0, retries=2)
        except _Retryable as exc:
            raise ServerUnreachableError(
                f"cannot reach the server at {self.base_url} ({exc}); start it (e.g. `vllm serve MODEL`) "
                "or fix --base-url"
            ) from None
        except urllib.error.HTTPError:
            return []  # some servers have no /models; the configured model name is used as is
        return [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]

    def body(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": request.messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if request.messages and request.messages[-1]["role"] == "assistant":
            body["continue_final_message"] = True  # vLLM's extension for prefill
            body["add_generation_prompt"] = False
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "sample", "schema": request.json_schema, "strict": True},
            }
        return body

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        workers = max(1, min(self.config.max_concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="topictree-http") as pool:
            futures = {pool.submit(self._complete, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
        return [r for r in results if r is not None]

    def _complete(self, request: ChatRequest) -> Completion:
        try:
            data = self._call("POST", "/chat/completions", self.body(request), self.config.request_timeout,
                              self.config.max_retries)
        except _Retryable as exc:
            raise ServerUnreachableError(
                f"the server at {self.base_url} stopped answering ({exc}) after {self.config.max_retries} "
                "retries; check that it is running, then rerun to resume"
            ) from None
        except urllib.error.HTTPError as exc:
            return Completion("", "error", error=f"HTTP {exc.code}: {_error_text(exc)}")
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            return Completion("", "error", error="malformed response from server (no choices[0].message)")
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text, reason, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def _call(self, method: str, path: str, body: dict[str, Any] | None, timeout: float, retries: int) -> Any:
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in range(retries + 1):
            req = urllib.request.Request(self.base_url + path, data=payload, method=method, headers=self._headers())
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS or attempt == retries:
                    if exc.code in RETRY_STATUS:
                        raise _Retryable(f"HTTP {exc.code}") from None
                    raise
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
                reason = _short(exc)
                if attempt == retries:
                    raise _Retryable(reason) from None
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
            logger.warning("%s %s failed (%s); retry %d/%d in %.1fs", method, path, reason, attempt + 1,
                           retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")[:200].replace("\n", " ")
    except OSError:
        return exc.reason or ""
