"""The `openai` backend: any OpenAI-compatible server (`vllm serve`, llama.cpp, TGI, ...), or a fleet
of them behind no load balancer.

Many requests in flight (bounded by `engine.max_concurrency`; `stream` yields each as it finishes),
JSON schema through the standard `response_format: json_schema` (vLLM honours it), retries with
exponential backoff on 429, 5xx and connection errors. Standard library HTTP only. The API key, if
any, is read from the environment variable the config names and never written anywhere.

With several `engine.base_url`s each request goes to the server with the fewest requests in flight
(ties in turn). A server that still fails after `max_retries` is marked down for `server_retry_after`
seconds and its requests move to the others; after the rest it gets one try again. Only when every
server is down does the run stop, with `ServerUnreachableError`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from topictree_hf.config import DEFAULT_MODEL, EngineConfig
from topictree_hf.engines.base import ChatRequest, Completion, Engine, FinishReason, Progress, check_in_flight
from topictree_hf.errors import ConfigError, EngineError, ServerUnreachableError

logger = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}


class _Retryable(Exception):
    pass


@dataclass(slots=True)
class Server:
    """One server of the fleet and what the balancer knows about it."""

    url: str
    in_flight: int = 0
    requests: int = 0  # requests sent (each retry counts)
    failures: int = 0  # requests given up on this server
    down_until: float = 0.0  # monotonic time; a server is down while now < down_until
    probation: bool = False  # came back from down: one try, no retries
    last_error: str = ""

    def is_down(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.down_until


class Fleet:
    """Least-in-flight balancing over servers, with down marking. Thread-safe."""

    def __init__(self, urls: Sequence[str], retry_after: float) -> None:
        self.servers = [Server(u.rstrip("/")) for u in urls]
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._turn = 0

    def acquire(self) -> Server | None:
        """The up server with the fewest requests in flight (counted as in flight now), or None
        when every server is down."""
        with self._lock:
            now = time.monotonic()
            n = len(self.servers)
            order = [self.servers[(self._turn + k) % n] for k in range(n)]
            self._turn = (self._turn + 1) % n
            up = [s for s in order if not s.is_down(now)]
            if not up:
                return None
            server = min(up, key=lambda s: s.in_flight)  # min keeps the first of equals: ties rotate
            server.in_flight += 1
            return server

    def release(self, server: Server, ok: bool, reason: str = "") -> None:
        with self._lock:
            server.in_flight -= 1
            if ok:
                server.probation = False
                return
            server.failures += 1
            server.last_error = reason
            if not server.is_down():
                server.down_until = time.monotonic() + self.retry_after
                server.probation = True
                logger.warning("server %s marked down for %.0fs (%s); its requests move to the others",
                               server.url, self.retry_after, reason)

    def mark_down(self, server: Server, reason: str) -> None:
        """Down from the start (did not answer at load time); no request holds it."""
        with self._lock:
            server.last_error = reason
            server.down_until = time.monotonic() + self.retry_after
            server.probation = True

    def count_request(self, server: Server) -> None:
        with self._lock:
            server.requests += 1

    def describe_down(self) -> str:
        return "; ".join(f"{s.url}: {s.last_error or 'down'}" for s in self.servers)


class OpenAIEngine(Engine):
    backend = "openai"

    def __init__(self, config: EngineConfig) -> None:
        assert config.base_urls, "validated by EngineConfig"
        self.config = config
        self.fleet = Fleet(config.base_urls, config.server_retry_after)
        self.base_url = self.fleet.servers[0].url
        self._key = os.environ.get(config.api_key_env) or None
        served = self._served_models()
        # No --model given (the config's default, a bundled name no server serves): the server's first model.
        self.model_name = served[0] if config.model == DEFAULT_MODEL and served else config.model

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def server_stats(self) -> dict[str, dict[str, Any]]:
        """Per server: requests sent, requests given up there, and whether it is down now."""
        return {s.url: {"requests": s.requests, "failures": s.failures, "down": s.is_down()}
                for s in self.fleet.servers}

    def _served_models(self) -> list[str]:
        """Ask every server what it serves; a server that does not answer starts out marked down."""
        served: dict[str, list[str]] = {}
        for server in self.fleet.servers:
            try:
                data = self._call(server, "GET", "/models", None, timeout=10.0, retries=2)
            except _Retryable as exc:
                self.fleet.mark_down(server, str(exc))
                if len(self.fleet.servers) > 1:
                    logger.warning("server %s does not answer (%s); starting without it", server.url, exc)
                continue
            except urllib.error.HTTPError as exc:
                self._raise_if_auth(exc, server)
                served[server.url] = []  # some servers have no /models; the configured model name is used
                continue
            served[server.url] = [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
        if not served:
            servers = self.fleet.servers
            if len(servers) == 1:
                raise ServerUnreachableError(f"cannot reach the server at {servers[0].url} ({servers[0].last_error}); "
                                             "start it (e.g. `vllm serve MODEL`) or fix --base-url")
            raise ServerUnreachableError(f"cannot reach any of the {len(servers)} servers "
                                         f"({self.fleet.describe_down()}); start them (e.g. `vllm serve MODEL`) "
                                         "or fix --base-url")
        models = {url: ids[0] for url, ids in served.items() if ids}
        if len(set(models.values())) > 1:
            listed = ", ".join(f"{url}: {model}" for url, model in models.items())
            raise ConfigError(f"the servers serve different models ({listed}); list servers of one model in "
                              "--base-url")
        return next((ids for ids in served.values() if ids), [])

    def _raise_if_auth(self, exc: urllib.error.HTTPError, server: Server) -> None:
        if exc.code in AUTH_STATUS:
            held = "the key in" if self._key else "no key in"
            raise EngineError(f"the server at {server.url} refused the request (HTTP {exc.code}) with {held} "
                              f"${self.config.api_key_env}; set that variable (engine.api_key_env names it)")

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
        if s.repetition_penalty is not None and s.repetition_penalty != 1.0:
            body["repetition_penalty"] = s.repetition_penalty  # vLLM's extension (extra_body); only when set
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
        for index, completion in self.stream(requests, max(1, len(requests))):
            results[index] = completion
            if progress is not None:
                progress(1)
        return [r for r in results if r is not None]

    def stream(
        self, requests: Iterable[ChatRequest], max_in_flight: int | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """Requests pulled lazily, each sent on its own (to the fleet's least busy server), at most
        `max_in_flight` outstanding and `engine.max_concurrency` on the wire; each completion is yielded
        as soon as its response arrives, and the iterable is polled again after every completion (appended
        retries are picked up). A fatal error (every server down, a refused key) ends the stream."""
        bound = min(check_in_flight(max_in_flight) or self.config.max_concurrency, self.config.max_concurrency)
        source = iter(requests)
        pending: dict[Future[Completion], int] = {}
        pulled = 0
        pool = ThreadPoolExecutor(max_workers=bound, thread_name_prefix="topictree-http")
        try:
            while True:
                while len(pending) < bound and (request := next(source, None)) is not None:
                    pending[pool.submit(self._complete, request)] = pulled
                    pulled += 1
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:  # on a fatal error, requests not yet sent are dropped rather than retried in vain
            pool.shutdown(wait=True, cancel_futures=True)

    def _complete(self, request: ChatRequest) -> Completion:
        body = self.body(request)
        for _hop in range(4 * len(self.fleet.servers)):  # each failed hop rests a server: bounded anyway
            server = self.fleet.acquire()
            if server is None:
                break
            retries = 0 if server.probation else self.config.max_retries
            try:
                data = self._call(server, "POST", "/chat/completions", body, self.config.request_timeout, retries)
            except _Retryable as exc:
                self.fleet.release(server, ok=False, reason=self._redact(str(exc)))
                continue
            except urllib.error.HTTPError as exc:
                self.fleet.release(server, ok=True)
                self._raise_if_auth(exc, server)
                return Completion("", "error", error=f"HTTP {exc.code}: {self._redact(_error_text(exc))}")
            self.fleet.release(server, ok=True)
            return _completion(data)
        if len(self.fleet.servers) == 1:
            raise ServerUnreachableError(
                f"the server at {self.base_url} stopped answering ({self.fleet.servers[0].last_error}) after "
                f"{self.config.max_retries} retries; check that it is running or fix --base-url, then rerun to resume")
        raise ServerUnreachableError(
            f"every server stopped answering ({self.fleet.describe_down()}); check that they are running or fix "
            "--base-url, then rerun to resume")

    def _redact(self, text: str) -> str:
        """Servers may echo request headers in an error body: the key never leaves this object."""
        return text.replace(self._key, "***") if self._key else text

    def _call(self, server: Server, method: str, path: str, body: dict[str, Any] | None, timeout: float,
              retries: int) -> Any:
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in range(retries + 1):
            req = urllib.request.Request(server.url + path, data=payload, method=method, headers=self._headers())
            self.fleet.count_request(server)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS:
                    raise
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
                reason = _short(exc)
            if attempt == retries or (server.is_down() and len(self.fleet.servers) > 1):
                raise _Retryable(reason)  # out of retries here, or another request found it down: move on
            delay = min(30.0, self.config.retry_backoff * 2**attempt) * (0.5 + random.random())
            logger.warning("%s %s%s failed (%s); retry %d/%d in %.1fs", method, server.url, path, reason,
                           attempt + 1, retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")


def _completion(data: Any) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return Completion("", "error", error="malformed response from server (no choices[0].message)")
    reason: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    return Completion(text, reason, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")[:200].replace("\n", " ")
    except OSError:
        return exc.reason or ""
