"""The `openai` backend against a REAL HTTP server on 127.0.0.1 that each test starts (stdlib
ThreadingHTTPServer in a thread): scripted answers for retries, concurrency, order and the API key;
one `slow` variant serves the bundled model through the transformers engine, honouring
`response_format: json_schema`. Loopback only; short backoff; every loop is bounded."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest
from feed import Feed
from http_support import json_handler

from topictree_hf.config import DEFAULT_MODEL, SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, Engine, SamplingParams, create_engine
from topictree_hf.errors import EngineError, ServerUnreachableError

KEY = "sk-test-0123456789abcdef"
Answer = tuple[int, dict[str, Any]]  # HTTP status, JSON body


def ok(text: str, finish: str = "stop", prompt: int = 3, completion: int = 5) -> Answer:
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                 "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


class Server:
    """An OpenAI-compatible server: GET /v1/models, POST /v1/chat/completions answered by `answer`."""

    def __init__(self, answer: Callable[[dict[str, Any], dict[str, str]], Answer], model: str = "served-model",
                 delay: Callable[[dict[str, Any]], float] = lambda _body: 0.0) -> None:
        self.answer, self.model, self.delay = answer, model, delay
        self.posts: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(json_handler(server)):  # type: ignore[misc]
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = dict(self.headers.items())
                with server.lock:
                    server.posts.append((body, headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay(body))
                    answer = server.answer(body, headers)
                finally:  # done before the client hears back, so its next request cannot overlap this one
                    with server.lock:
                        server.in_flight -= 1
                self._send(*answer)

        return Handler


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(answer: Callable[[dict[str, Any], dict[str, str]], Answer], **kwargs: Any) -> Server:
        started.append(Server(answer, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


def engine_for(url: str, **over: Any) -> Engine:
    """Short backoff and timeouts, so failures cost milliseconds."""
    return create_engine(EngineConfig(**({"backend": "openai", "base_url": url, "max_retries": 3,
                                          "retry_backoff": 0.01, "request_timeout": 10} | over)))


def req(i: int, schema: dict[str, Any] | None = None, max_tokens: int = 32) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"request {i}"}], SamplingParams(0.3, 0.9, max_tokens, seed=i),
                       schema)


def index(body: dict[str, Any]) -> int:
    return int(body["messages"][-1]["content"].split()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_request_body_and_completion_fields(serve: Callable[..., Server]) -> None:
    server = serve(lambda body, _h: ok(json.dumps({"n": index(body)}), "length", prompt=7, completion=9))
    engine = engine_for(server.url)
    assert engine.model_name == "served-model", "the bundled default defers to what the server serves"
    (out,) = engine.generate([req(4, SCHEMA, max_tokens=20)])
    assert (out.text, out.finish_reason, out.prompt_tokens, out.output_tokens) == ('{"n": 4}', "length", 7, 9)
    ((body, headers),) = server.posts
    assert body["model"] == "served-model" and body["messages"] == [{"role": "user", "content": "request 4"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.9, 20, 4)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "Authorization" not in headers, "no key set, no header"


def test_a_named_model_is_sent_as_named(serve: Callable[..., Server]) -> None:
    server = serve(lambda _b, _h: ok("x"))
    engine_for(server.url, model="my/model").generate([req(0)])
    assert server.posts[0][0]["model"] == "my/model" and "response_format" not in server.posts[0][0]


def test_only_the_default_model_defers_to_the_server(serve: Callable[..., Server]) -> None:
    """No --model means the config's default (a bundled name no server serves): the server's model is
    used. A model the user names, a bundled one too, is sent as named."""
    server = serve(lambda _b, _h: ok("x"))
    assert EngineConfig().model == DEFAULT_MODEL and engine_for(server.url).model_name == "served-model"
    engine_for(server.url, model=SMOLLM2).generate([req(0)])
    assert server.posts[0][0]["model"] == SMOLLM2


def test_order_is_kept_when_answers_come_back_out_of_order(serve: Callable[..., Server]) -> None:
    server = serve(lambda body, _h: ok(f"answer {index(body)}"), delay=lambda body: 0.02 * (8 - index(body)))
    done: list[int] = []
    out = engine_for(server.url, max_concurrency=8).generate([req(i) for i in range(8)], progress=done.append)
    assert [c.text for c in out] == [f"answer {i}" for i in range(8)]
    assert sum(done) == 8


def test_requests_in_flight_are_bounded(serve: Callable[..., Server]) -> None:
    server = serve(lambda body, _h: ok(str(index(body))), delay=lambda _body: 0.05)
    out = engine_for(server.url, max_concurrency=3).generate([req(i) for i in range(12)])
    assert [c.text for c in out] == [str(i) for i in range(12)]
    assert server.max_in_flight == 3, "as many as allowed, never more"


def test_429_and_503_are_retried_with_backoff(serve: Callable[..., Server], caplog: pytest.LogCaptureFixture) -> None:
    tries: dict[int, int] = {}
    lock = threading.Lock()

    def flaky(body: dict[str, Any], _headers: dict[str, str]) -> Answer:
        with lock:
            tries[index(body)] = tries.get(index(body), 0) + 1
            n = tries[index(body)]
        return {1: (429, {"error": "slow down"}), 2: (503, {"error": "busy"})}.get(n, ok(f"done {index(body)}"))

    server = serve(flaky)
    with caplog.at_level(logging.WARNING, logger="topictree_hf.engines.openai_engine"):
        out = engine_for(server.url, max_retries=2).generate([req(i) for i in range(4)])
    assert [c.text for c in out] == [f"done {i}" for i in range(4)]
    assert tries == dict.fromkeys(range(4), 3) and len(server.posts) == 12
    assert "HTTP 429" in caplog.text and "HTTP 503" in caplog.text


def test_a_server_that_stays_busy_stops_the_run_with_one_line(serve: Callable[..., Server]) -> None:
    server = serve(lambda _b, _h: (503, {"error": "overloaded"}))
    engine = engine_for(server.url, max_retries=2)
    start = time.perf_counter()
    with pytest.raises(ServerUnreachableError) as err:
        engine.generate([req(0)])
    message = str(err.value)
    assert "\n" not in message and server.url in message and "HTTP 503" in message
    assert "rerun to resume" in message
    assert len(server.posts) == 3, "one try and two retries, then stop"
    assert time.perf_counter() - start < 5


def test_a_client_error_is_not_retried_and_becomes_an_error_completion(serve: Callable[..., Server]) -> None:
    server = serve(lambda body, _h: (400, {"error": "bad schema"}) if index(body) == 1 else ok("fine"))
    out = engine_for(server.url).generate([req(0), req(1), req(2)])
    assert [c.finish_reason for c in out] == ["stop", "error", "stop"]
    assert out[1].error is not None and out[1].error.startswith("HTTP 400") and "bad schema" in out[1].error
    assert len(server.posts) == 3


def test_a_malformed_answer_is_an_error_completion(serve: Callable[..., Server]) -> None:
    server = serve(lambda _b, _h: (200, {"choices": []}))
    (out,) = engine_for(server.url).generate([req(0)])
    assert out.finish_reason == "error" and "malformed response" in (out.error or "")


def test_unreachable_server_is_one_line_naming_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(ServerUnreachableError) as err:
        engine_for(url)
    message = str(err.value)
    assert "\n" not in message and f"cannot reach the server at {url}" in message
    assert "vllm serve" in message and "--base-url" in message
    assert time.perf_counter() - start < 5


def test_api_key_is_sent_as_bearer_when_set(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", KEY)
    server = serve(lambda _b, _h: ok("x"))
    engine_for(server.url, api_key_env="MY_SERVER_KEY").generate([req(0)])
    assert server.posts[0][1]["Authorization"] == f"Bearer {KEY}"


def test_api_key_never_appears_in_errors(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    echo = serve(lambda _b, headers: (400, {"error": f"rejected {headers.get('Authorization')}"}))
    with caplog.at_level(logging.DEBUG):
        (out,) = engine_for(echo.url).generate([req(0)])
    assert out.finish_reason == "error" and "rejected Bearer ***" in (out.error or "")
    assert KEY not in (out.error or "")

    refused = serve(lambda _b, _h: (401, {"error": "bad key"}))
    with pytest.raises(EngineError) as err:
        engine_for(refused.url).generate([req(0)])
    assert "HTTP 401" in str(err.value) and "$OPENAI_API_KEY" in str(err.value) and KEY not in str(err.value)

    with pytest.raises(ServerUnreachableError) as unreachable:
        engine_for(f"http://127.0.0.1:{free_port()}/v1")
    assert KEY not in str(unreachable.value) and KEY not in caplog.text


# --- the same backend in front of the real bundled model ---------------------------------------------

def model_server(engine: Engine) -> Callable[[dict[str, Any], dict[str, str]], Answer]:
    """Answers a chat completion with the transformers engine, one request at a time."""
    lock = threading.Lock()

    def answer(body: dict[str, Any], _headers: dict[str, str]) -> Answer:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema")
        request = ChatRequest(body["messages"], SamplingParams(body["temperature"], body["top_p"], body["max_tokens"],
                                                               body.get("seed")), schema)
        with lock:
            (out,) = engine.generate([request])
        return ok(out.text, out.finish_reason, out.prompt_tokens, out.output_tokens)

    return answer


@pytest.mark.slow
def test_bundled_model_behind_the_server_honours_the_schema(serve: Callable[..., Server],
                                                            bundled_engine: Engine) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    server = serve(model_server(bundled_engine))
    requests = [ChatRequest([{"role": "user", "content": f'Name a city in {country} as JSON {{"city": "..."}}.'}],
                            SamplingParams(0.7, 0.95, 24, seed=i), schema)
                for i, country in enumerate(["France", "Japan", "Kenya"])]
    out = engine_for(server.url, max_concurrency=2).generate(requests)
    for completion in out:
        jsonschema.validate(json.loads(completion.text), schema)
    direct = [bundled_engine.generate([r])[0] for r in requests]
    assert [c.text for c in out] == [c.text for c in direct], "same requests, same seeds, same answers, same order"
    assert [c.prompt_tokens for c in out] == [c.prompt_tokens for c in direct]
    assert all(body.get("response_format") for body, _ in server.posts)


def test_stream_yields_each_completion_as_it_finishes_with_bounded_in_flight(serve: Callable[..., Server]) -> None:
    """Request 0 is slow: the others (and a retry appended while consuming) come back before it; at most
    3 are pulled ahead of what came back, and the server never sees more than 3 at once."""
    server = serve(lambda body, _h: ok(f"answer {index(body)}"),
                   delay=lambda body: 0.6 if index(body) == 0 else 0.02)
    feed = Feed([req(i) for i in range(8)])
    seen: list[tuple[int, str]] = []
    for position, completion in engine_for(server.url, max_concurrency=8).stream(feed, max_in_flight=3):
        assert feed.pulled - len(seen) <= 3, "pulled lazily: never more than max_in_flight outstanding"
        seen.append((position, completion.text))
        if len(seen) == 1:
            feed.append(req(20))  # a retry joins the same stream
    assert sorted(seen) == sorted([(i, f"answer {i}") for i in range(8)] + [(8, "answer 20")])
    assert seen[-1] == (0, "answer 0"), "no barrier: everything else finished before the slow request"
    assert server.max_in_flight <= 3


def test_stream_spreads_over_the_fleet_and_stops_on_a_fatal_error(serve: Callable[..., Server]) -> None:
    a, b = (serve(lambda body, _h: ok(str(index(body))), delay=lambda _body: 0.02) for _ in range(2))
    engine = engine_for(f"{a.url},{b.url}", max_concurrency=4)
    out = dict(engine.stream([req(i) for i in range(12)], max_in_flight=4))
    assert {i: c.text for i, c in out.items()} == {i: str(i) for i in range(12)}
    assert a.posts and b.posts and len(a.posts) + len(b.posts) == 12
    single = engine_for(a.url, max_retries=0)
    a.close()
    with pytest.raises(ServerUnreachableError, match="stopped answering"):
        list(single.stream([req(i) for i in range(5)], max_in_flight=2))
    with pytest.raises(ValueError, match="at least 1"):
        next(engine.stream([req(0)], max_in_flight=0))
