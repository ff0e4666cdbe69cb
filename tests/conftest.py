"""Shared fixtures and the tier rules (tests/tiers.py): unit tests (fake engine), `slow` (bundled model
on CPU, one loaded engine shared by the whole session), `vllm` (the real vLLM backend wherever the
hardware runs it), `gpu` (CUDA). A skip must name absent hardware; a skip for a missing package fails
the run, since `scripts/setup.sh --dev` installs every package the tests need."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tiers

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines import ChatRequest, Completion, register_backend, restore_backend
from topictree_hf.rundir import RunDir
from topictree_hf.threads import passive_omp_wait

if TYPE_CHECKING:
    from fake_engine import FakeEngine

TIER_TIMES: dict[str, tuple[float, int]] = {}  # tier -> (seconds, tests run)
os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
passive_omp_wait()  # what create_engine does, before any test module loads torch (the session shares 2 cores)


@pytest.fixture(autouse=True)
def _isolated_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the user's HF token or cache, and nothing reaches a hub."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOPICTREE_OFFLINE", "1")  # no model download (tests/hub_models.py serves one locally)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {"gpu": tiers.gpu_missing(), "vllm": tiers.vllm_hardware_missing()}
    for item in items:
        for marker, reason in reasons.items():
            if reason is not None and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn a skip that names a missing package (or no absent hardware) into a failure that says why."""
    report = yield
    tier = next((t for t in ("vllm", "gpu", "slow") if t in item.keywords), "fast")
    seconds, count = TIER_TIMES.get(tier, (0.0, 0))
    TIER_TIMES[tier] = (seconds + report.duration, count + (report.when == "call"))
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if tiers.forbidden_skip(reason):
            report.outcome = "failed"
            report.longrepr = (f"skipped for a reason that is not absent hardware: {reason!r}; "
                               "scripts/setup.sh --dev must install what tests need, and a test skips only "
                               "for missing hardware (tests/tiers.py)")
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Seconds per tier (set-up and teardown included), so CI logs show what each tier costs."""
    if TIER_TIMES:
        parts = [f"{tier} {seconds:.0f} s ({count} tests)" for tier, (seconds, count) in sorted(TIER_TIMES.items())]
        terminalreporter.write_line("time per tier: " + ", ".join(parts))


@pytest.fixture(scope="session")
def bundled_engine() -> Iterator[object]:
    """The bundled SmolLM2-135M-Instruct on the transformers backend, loaded once per session."""
    from topictree_hf.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(EngineConfig(backend="transformers", model=SMOLLM2, batch_size=16))
    yield engine
    engine.close()


@pytest.fixture
def fake_backend() -> Iterator[Callable[[Callable[[ChatRequest], str | Completion]], FakeEngine]]:
    """Register a scripted engine as backend 'fake' through the real registry; returns it. The
    registry is put back as it was after the test."""
    from fake_engine import FakeEngine  # here, not at the top: see generated_run_source

    replaced: list[object] = []

    def make(responder: Callable[[ChatRequest], str | Completion]) -> FakeEngine:
        engine = FakeEngine(responder)
        previous = register_backend("fake", lambda _cfg: engine)
        if not replaced:
            replaced.append(previous)
        return engine

    yield make
    if replaced:
        restore_backend("fake", replaced[0])  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def generated_run_source(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A run dir written by the real tree builder and generator (the scripted FakeModel engine), once
    per session; tests take a copy (`generated_run`)."""
    # Imported here, not at the top: tests/test_tiers.py runs a copy of this conftest without the support modules.
    from generated_run import make_generated_run

    return make_generated_run(tmp_path_factory.mktemp("generated") / "run")


@pytest.fixture
def generated_run(generated_run_source: RunDir, tmp_path: Path) -> RunDir:
    """A private copy of the generated run dir (16 leaves, 48 samples), free to change."""
    shutil.copytree(generated_run_source.path, tmp_path / "run")
    return RunDir(tmp_path / "run")
