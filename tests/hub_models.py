"""A local Hub endpoint for the model-download tests: a FakeHub (tests/fakehub.py) served over real
HTTP on 127.0.0.1, so `HF_ENDPOINT=http://127.0.0.1:PORT` works for a `topictree` process as it would
for the Hub. The server can cut a file's downloads short (the connection closes after N bytes), and
counts what was downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from crash_support import TESTS
from fakehub import FakeHub

SKIPPED_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding", "date", "server"}
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOPICTREE_OFFLINE")


class HubServer:
    """`url` serves `hub`; `cut[path] = N`: every GET of that repo file stops at byte N of the file
    (the connection closes mid-body) until the entry is removed."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.cut: dict[str, int] = {}
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of each ranged GET
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def downloads(self, repo_id: str) -> list[str]:
        """The GET requests of repo files (not HEAD, not the API), in order."""
        prefix = f"/{repo_id}/resolve/"
        return [path for method, path in self.hub.requests if method == "GET" and path.startswith(prefix)]

    def api_calls(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.hub.requests if p.startswith("/api/") and p != "/api/agent-harnesses"]

    def stop_at(self, path: str, start: int) -> int | None:
        """How many bytes of a file's body that starts at offset `start` go out before the cut (None: all)."""
        if "/resolve/" not in path:
            return None
        name = path.split("/resolve/", 1)[1].partition("/")[2]  # /ORG/NAME/resolve/REV/FILE
        return max(0, self.cut[name] - start) if name in self.cut else None


def _handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:
            self._serve()

        do_HEAD = do_POST = do_PUT = do_GET

        def _serve(self) -> None:
            httpx = server.hub.httpx
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(self.command, server.url + self.path, headers=list(self.headers.items()),
                                    content=body)
            response = server.hub.handle(request)
            if self.command == "GET" and "range" in request.headers:
                server.ranges.append((request.url.path, request.headers["range"]))
            data = b"" if self.command == "HEAD" else response.content
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in SKIPPED_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", response.headers.get("content-length") or str(len(data)))
            self.end_headers()
            stop = server.stop_at(request.url.path, _range_start(response)) if self.command == "GET" else None
            if stop is None:
                self.wfile.write(data)
                return
            self.wfile.write(data[:stop])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def _range_start(response: Any) -> int:
    content_range = response.headers.get("content-range", "")  # "bytes START-END/TOTAL"
    return int(content_range.split()[1].split("-")[0]) if content_range.startswith("bytes ") else 0


@contextlib.contextmanager
def serving(hub: FakeHub | None = None) -> Iterator[HubServer]:
    server = HubServer(hub or FakeHub())
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def tiny_model_files(weights: int = 24_000_000) -> dict[str, bytes]:
    """A repo shaped like a model (config, tokenizer config, LFS weights), not one that loads. The
    weights are larger than huggingface_hub's 10 MiB download chunk, so a cut download leaves a partial file."""
    block = hashlib.sha256(b"weights").digest()
    return {"config.json": json.dumps({"model_type": "llama", "max_position_embeddings": 2048}).encode(),
            "tokenizer_config.json": b"{}",
            "model.safetensors": (block * (weights // len(block) + 1))[:weights]}


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hub_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    """A `topictree` process's environment: the local endpoint, its own HF_HOME, no token, offline only
    where the test says (`extra`)."""
    env = {k: v for k, v in os.environ.items() if k not in (*OFFLINE_VARS, "HF_TOKEN")}
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), TOPICTREE_NO_PROGRESS="1", **extra)
    return env


def use_endpoint(monkeypatch: Any, url: str, home: Path) -> None:
    """This process's huggingface_hub talks to `url` with its cache under `home`, offline as the CLI
    leaves it (HF_HUB_OFFLINE read at import: the parsed constants are patched), model downloads allowed."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOPICTREE_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))


def topictree(server_url: str, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`topictree ARGS` as a process (tests/fake_cli.py) in `home`, downloading from `server_url`, with the
    socket guard on: the test fails if the process tried any address but loopback."""
    log = home / "net.log"
    full_env = hub_env(server_url, home / "hf", TOPICTREE_TEST_NET_LOG=str(log), **env)
    proc = subprocess.run([sys.executable, str(TESTS / "fake_cli.py"), *args], cwd=home, env=full_env,
                          capture_output=True, text=True, timeout=900)
    reached = [line for line in log.read_text().splitlines() if not line.startswith("# ")] if log.exists() else []
    assert reached == [], f"a non-loopback address was tried: {reached}"
    return proc
