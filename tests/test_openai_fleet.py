"""The `openai` backend over several servers: two (or three) REAL HTTP servers on 127.0.0.1 started by
the test (stdlib ThreadingHTTPServer), requests spread by load, a server stopped mid-run, every server
down. Loopback only, short timeouts and backoff, bounded loops."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from http_support import json_handler

from topictree_hf.cli import main
from topictree_hf.config import Config, EngineConfig, load_config
from topictree_hf.engines import ChatRequest, SamplingParams
from topictree_hf.engines.openai_engine import OpenAIEngine
from topictree_hf.errors import ConfigError, ServerUnreachableError
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ta", "vi", "zo") for b in "aeiouxyz"]


class FakeServer:
    """An OpenAI-compatible server in a thread: GET /v1/models, POST /v1/chat/completions."""

    def __init__(self, model: str = "tiny", delay: float = 0.0, stop_after: int | None = None,
                 answer: Callable[[dict[str, Any]], str] | None = None) -> None:
        self.model, self.delay, self.stop_after = model, delay, stop_after
        self.answer = answer or scripted
        self.completions = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.closed = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def admit(self) -> bool:
        """Count a completion, or refuse it once the server is stopping (then it answers 503)."""
        with self.lock:
            if self.stopped.is_set():
                return False
            self.completions += 1
            if self.completions == self.stop_after:
                self.stopped.set()  # shutdown() waits for serve_forever: call it from another thread
                threading.Thread(target=self._close, daemon=True).start()
            return True

    def stop(self) -> None:
        with self.lock:
            self.stopped.set()
        self._close()

    def _close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.httpd.shutdown()
        self.httpd.server_close()  # the port now refuses connections

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(json_handler(server)):  # type: ignore[misc]
            def do_POST(self) -> None:  # noqa: N802
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                if server.delay:
                    time.sleep(server.delay)
                if not server.admit():
                    self._send(503, {"error": "shutting down"})
                    return
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": server.answer(request)},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 20}})

        return Handler


def scripted(request: dict[str, Any]) -> str:
    """A valid, unique qa sample for a sample request (random words, so no two are near-duplicates)."""
    rng = random.Random(request.get("seed", 0))
    props = request.get("response_format", {}).get("json_schema", {}).get("schema", {}).get("properties", {})
    return json.dumps({k: " ".join(rng.choices(WORDS, k=12)) + "." for k in props or ("question", "answer")})


@pytest.fixture
def servers() -> Iterator[Callable[..., FakeServer]]:
    started: list[FakeServer] = []

    def start(**kwargs: Any) -> FakeServer:
        started.append(FakeServer(**kwargs))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def fast(urls: list[str] | str, **over: Any) -> EngineConfig:
    """Short timeouts and backoff: a dead server costs milliseconds, not minutes."""
    base = {"backend": "openai", "base_url": urls, "max_retries": 2, "retry_backoff": 0.01, "request_timeout": 5,
            "server_retry_after": 60, "max_concurrency": 8, "batch_size": 16}
    return EngineConfig(**(base | over))


def flat_tree(leaves: int = 6) -> TopicTree:
    tree = TopicTree.new("Historical Events")
    for i in range(leaves):
        tree.add_child(tree.root_id, f"Era {i} {WORDS[i]}")
    return tree


def requests(n: int) -> list[ChatRequest]:
    schema = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}}
    return [ChatRequest([{"role": "user", "content": f"q{i}"}], SamplingParams(seed=i), schema) for i in range(n)]


def test_requests_spread_by_load_over_two_servers(servers: Callable[..., FakeServer]) -> None:
    a, b = servers(), servers()
    engine = OpenAIEngine(fast([a.url, b.url]))
    assert engine.model_name == "tiny"
    out = engine.generate(requests(64))
    assert len(out) == 64 and all(c.finish_reason == "stop" for c in out)
    assert a.completions + b.completions == 64
    assert min(a.completions, b.completions) >= 20, (a.completions, b.completions)


def test_a_slow_server_gets_fewer_requests(servers: Callable[..., FakeServer]) -> None:
    """Least-in-flight, not round-robin: requests wait on the slow server, so the fast one takes more."""
    slow, quick = servers(delay=0.05), servers()
    engine = OpenAIEngine(fast([slow.url, quick.url], max_concurrency=4))
    engine.generate(requests(80))
    assert slow.completions + quick.completions == 80
    assert quick.completions > 2 * slow.completions, (slow.completions, quick.completions)


def test_server_stopped_mid_run_moves_load_and_the_run_completes(servers: Callable[..., FakeServer],
                                                                 tmp_path: Path) -> None:
    a, b = servers(stop_after=10), servers()
    config = Config(generation={"num_samples": 60, "formats": ["qa"], "dedup": "exact", "plan": False},
                    engine=fast([a.url, b.url]).model_dump(), output={"run_dir": str(tmp_path)})
    run_dir = RunDir(tmp_path)
    run_dir.prepare(config)
    tree = flat_tree()
    engine = OpenAIEngine(config.engine)
    summary = generate_stage(config, engine, run_dir, tree)

    samples = list(run_dir.iter_samples())
    assert (summary.valid, summary.failed, len(samples)) == (60, 0, 60), summary.to_dict()
    assert len({s.id for s in samples}) == 60
    assert a.stopped.is_set() and a.completions == 10
    assert b.completions == 50, "every request after the stop went to the survivor"
    stats = engine.server_stats()
    assert stats[a.url]["down"] and not stats[b.url]["down"]
    assert stats[a.url]["failures"] >= 1 and stats[b.url]["failures"] == 0


def test_every_server_down_stops_the_run_with_one_line(servers: Callable[..., FakeServer]) -> None:
    a, b = servers(), servers()
    engine = OpenAIEngine(fast([a.url, b.url]))
    a.stop()
    b.stop()
    start = time.perf_counter()
    with pytest.raises(ServerUnreachableError) as err:
        engine.generate(requests(20))
    message = str(err.value)
    assert "\n" not in message and a.url in message and b.url in message
    assert "--base-url" in message and "rerun to resume" in message
    assert time.perf_counter() - start < 10


def test_a_server_down_at_start_is_skipped(servers: Callable[..., FakeServer]) -> None:
    dead, live = servers(), servers()
    dead.stop()
    engine = OpenAIEngine(fast([dead.url, live.url]))
    assert engine.server_stats()[dead.url]["down"]
    engine.generate(requests(12))
    assert live.completions == 12


def test_no_server_answering_at_start_names_them_all(servers: Callable[..., FakeServer]) -> None:
    a, b = servers(), servers()
    a.stop()
    b.stop()
    with pytest.raises(ServerUnreachableError, match="cannot reach any of the 2 servers") as err:
        OpenAIEngine(fast([a.url, b.url]))
    assert a.url in str(err.value) and b.url in str(err.value) and "vllm serve" in str(err.value)


def test_a_single_server_keeps_its_messages(servers: Callable[..., FakeServer]) -> None:
    a = servers()
    a.stop()
    with pytest.raises(ServerUnreachableError, match="cannot reach the server at"):
        OpenAIEngine(fast(a.url))


def test_servers_of_different_models_are_refused(servers: Callable[..., FakeServer]) -> None:
    a, b = servers(model="qwen-7b"), servers(model="llama-8b")
    with pytest.raises(ConfigError, match="serve different models"):
        OpenAIEngine(fast([a.url, b.url]))


def test_base_url_takes_a_list_or_a_comma_list() -> None:
    one = load_config(overrides={"engine.backend": "openai", "engine.base_url": "http://h1:8000/v1"})
    assert one.engine.base_url == "http://h1:8000/v1" and one.engine.base_urls == ["http://h1:8000/v1"]
    many = load_config(overrides={"engine.backend": "openai",
                                  "engine.base_url": "http://h1:8000/v1, http://h2:8000/v1,http://h1:8000/v1"})
    assert many.engine.base_urls == ["http://h1:8000/v1", "http://h2:8000/v1"]
    listed = load_config(overrides={"engine.backend": "openai", "engine.base_url": ["http://h1/v1", "http://h2/v1"]})
    assert listed.engine.base_urls == ["http://h1/v1", "http://h2/v1"]
    with pytest.raises(ConfigError, match="'h2:8000' is not an http"):
        load_config(overrides={"engine.backend": "openai", "engine.base_url": "http://h1:8000/v1,h2:8000"})


def test_cli_base_url_comma_list_builds_a_tree(servers: Callable[..., FakeServer], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    tree_answer = {"subtopics": ["Ancient Rome", "Medieval Europe", "Industrial Revolution"]}
    a, b = (servers(answer=lambda _request: json.dumps(tree_answer)) for _ in range(2))
    code = main(["tree", "--backend", "openai", "--base-url", f"{a.url},{b.url}", "--depth", "1",
                 "--degree", "3", "--run-dir", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    tree = TopicTree.load(tmp_path / "run" / "topic_tree.json")
    assert sorted(n.topic for n in tree.leaves()) == sorted(tree_answer["subtopics"])
    assert a.completions + b.completions >= 1
