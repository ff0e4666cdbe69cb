"""The `openai` backend against a real `vllm serve` (CPU build where no GPU is lent), started by a fixture
on 127.0.0.1 and a free port, stopped after: `topictree run --backend openai --base-url ...` builds a
dataset. The server's start takes 55-65 s on 2 cores with a warm compile cache (the module adds ~70 s
to the `vllm` tier), so it is not marked `slow`. scripts/bench_vllm.py row (c) times the same server.

    python -m pytest -q -m vllm tests/test_vllm_serve.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from vllm_support import VLLMServer, group_members, vllm_server  # noqa: F401 - a fixture

from topictree_hf.cli import main

pytestmark = pytest.mark.vllm


def test_openai_backend_against_vllm_serve_builds_a_dataset(vllm_server: VLLMServer, tmp_path: Path,  # noqa: F811
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "dataset"
    code = main(["run", "--root", "Ocean Life", "--depth", "1", "--degree", "3", "--samples", "6",
                 "--backend", "openai", "--base-url", vllm_server.url, "--model", "smollm2", "--seed", "7",
                 "--run-dir", str(run_dir), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    samples = [json.loads(line) for f in sorted(run_dir.glob("samples*.jsonl")) for line in f.read_text().splitlines()]
    assert len(samples) >= 2, f"{len(samples)} of 6 samples (a 135M model); stderr:\n{err}"
    assert {s["backend"] for s in samples} == {"openai"} and all(s["topic_path"][0] == "Ocean Life" for s in samples)
    assert list((out / "data").glob("*.parquet")) and (out / "README.md").is_file()
    assert vllm_server.proc.poll() is None, "the server is still up for the fixture to stop"


def journaled(run: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in run.glob("samples*.jsonl"))


def test_openai_fleet_of_two_vllm_servers_survives_one_killed(vllm_server: VLLMServer, tmp_path: Path,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The multi-URL `openai` backend on two real vLLM servers; the second is SIGKILLed (its whole
    process group) once the run has journaled samples: the survivor finishes the set, every id once,
    and nothing of the killed server is left."""
    second = VLLMServer(tmp_path / "second.log")
    run, config = tmp_path / "run", tmp_path / "config.yaml"
    config.write_text("generation:\n  max_tokens: 160\n  topup_budget: 8\n")
    killed = threading.Event()

    def kill_second() -> None:
        deadline = time.monotonic() + 900
        while journaled(run) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(second.proc.pid, signal.SIGKILL)
        killed.set()

    watcher = threading.Thread(target=kill_second, daemon=True)
    watcher.start()
    try:
        code = main(["run", str(config), "--root", "Rivers", "--depth", "1", "--degree", "2", "--samples", "12",
                     "--backend", "openai", "--base-url", f"{second.url},{vllm_server.url}", "--model", "smollm2",
                     "--seed", "7", "--batch-size", "4", "--no-eval", "--run-dir", str(run), "--out",
                     str(tmp_path / "dataset")])
    finally:
        second.stop()
    err = capsys.readouterr().err
    assert code == 0, err
    assert killed.is_set() and second.proc.poll() is not None, "the second server was killed mid-run"
    assert group_members(second.proc.pid) == [], "nothing of the killed server is left"
    ids = [json.loads(line)["id"] for f in [*run.glob("samples*.jsonl"), run / "failures.jsonl"] if f.exists()
           for line in f.read_text().splitlines()]
    assert len(ids) == len(set(ids)), "every id once"
    assert journaled(run) == 12, f"the survivor finished the set; stderr:\n{err}"
    assert vllm_server.proc.poll() is None, "the survivor is still up"


def test_stopping_the_server_leaves_no_process_of_its_group() -> None:
    """The stop path alone, on a stand-in server whose child would outlive a plain terminate()."""
    server = VLLMServer.__new__(VLLMServer)
    server.proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                                    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                                    "time.sleep(60)"], start_new_session=True)
    time.sleep(1.0)
    server.stop()
    assert server.proc.poll() is not None
    assert group_members(server.proc.pid) == [], "nobody left in the server's process group"
