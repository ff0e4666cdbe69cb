"""The README's first command on the defaults (`bundled:qwen2.5-coder-0.5b-instruct`, `backend: auto`),
end to end through vLLM: the one test of the default model; every other test names SmolLM2. No
--model and no --backend, so what is tested is what a new user gets. A real process, so the vLLM
engine (and its memory) goes when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topictree_hf.config import DEFAULT_MODEL
from topictree_hf.engines import auto

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_the_readme_command_on_the_defaults_delivers_18_of_18_through_vllm(tmp_path: Path) -> None:
    assert auto.pick_backend() == "vllm", "the vllm tier runs where vLLM does, and then auto is vLLM"
    run, out = tmp_path / "run", tmp_path / "dataset"
    command = [sys.executable, "-m", "topictree_hf", "run", "--root", "Python Programming", "--depth", "2",
               "--degree", "3", "--samples", "18", "--no-eval", "--run-dir", str(run), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "TOPICTREE_NO_PROGRESS": "1"}, capture_output=True,
                          text=True, timeout=900)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr
    assert f"loading {DEFAULT_MODEL} on the vllm (auto) backend" in err, err

    summary = json.loads((run / "summary.json").read_text())["generation"]
    samples = [json.loads(line) for f in sorted(run.glob("samples*.jsonl")) for line in f.read_text().splitlines()]
    assert summary["delivered"] == len(samples) == 18, f"{len(samples)} of 18 delivered in {seconds:.0f}s:\n{err}"
    assert {s["backend"] for s in samples} == {"vllm"} and {s["model"] for s in samples} == {DEFAULT_MODEL}
    assert all(s["topic_path"][0] == "Python Programming" and len(s["topic_path"]) == 3 for s in samples)

    card = (out / "README.md").read_text()
    assert DEFAULT_MODEL in card and "| backend | vllm |" in card, "the card names the model and the backend"
    assert "delivered 18 of 18 samples" in err, "the closing summary says so"
