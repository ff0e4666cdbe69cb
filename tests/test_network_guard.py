"""No command but `push` opens a network connection (nor does a run, unless it downloads a Hub model
the cache lacks: tests/test_hub_download.py, against a local endpoint). Real processes (tests/fake_cli.py) run every
command with a socket guard installed before anything is imported: each attempt to resolve or reach a
non-loopback address is logged and refused. HF_HUB_OFFLINE is unset, so nothing but the CLI itself
keeps the Hub libraries offline. A real push must show up in the log, or the guard saw nothing.
vLLM's usage stats (it phones home by default) are off unless the user turned them on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from crash_support import TESTS
from net_guard import install, is_local

CONFIG = """\
root: Ancient Egypt
tree: {depth: 2, degree: 2}
generation: {num_samples: 8, formats: [qa, chat]}
engine: {backend: fake, batch_size: 4}
"""
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")  # a push must head for the Hub itself
PIPELINE = ["init", "init.yaml", "::", "tree", "c.yaml", "--run-dir", "run", "::",
            "generate", "c.yaml", "--run-dir", "run", "::", "build", "run", "--out", "ds", "::",
            "show", "run/topic_tree.json", "::", "run", "c.yaml", "--run-dir", "run2", "--out", "ds2", "::",
            "baseline", "c.yaml", "--out", "naive", "::", "eval", "ds", "--baseline", "naive", "--json", "ev.json"]


def guarded(args: list[str], cwd: Path, log: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1", "TOPICTREE_TEST_NET_LOG": str(log),
           "HF_TOKEN": "hf_NetGuardToken0123456789abcdefghij"}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOPICTREE_OFFLINE",
                 "TOPICTREE_CRASH_AT", "HF_ENDPOINT", *PROXIES, *(p.lower() for p in PROXIES)):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, str(TESTS / "fake_cli.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    attempts: dict[str, list[str]] = {}
    current = "(before any command)"
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("# "):
            current = line[2:]
            attempts[current] = []
        else:
            attempts.setdefault(current, []).append(line)
    return proc, attempts


def test_no_command_but_push_touches_the_network(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    proc, attempts = guarded(PIPELINE, tmp_path, tmp_path / "net.log")
    assert proc.returncode == 0, proc.stderr
    ran = [cmd.split()[1] for cmd in attempts]
    assert ran == ["init", "tree", "generate", "build", "show", "run", "baseline", "eval"]
    assert {cmd: hits for cmd, hits in attempts.items() if hits} == {}
    assert (tmp_path / "ds2" / "README.md").is_file() and (tmp_path / "ev.json").is_file()

    dry, attempts = guarded(["push", "ds", "user/history-qa", "--dry-run"], tmp_path, tmp_path / "dry.log")
    assert dry.returncode == 0, dry.stderr
    assert "data/train-00000-of-00001.parquet" in dry.stdout
    assert attempts == {"topictree push ds user/history-qa --dry-run": []}

    real, attempts = guarded(["push", "ds", "user/history-qa"], tmp_path, tmp_path / "push.log")
    hits = attempts["topictree push ds user/history-qa"]
    assert any("huggingface.co" in hit for hit in hits), f"the guard saw no attempt by a real push: {real.stderr}"
    assert real.returncode == 2 and "network failure while pushing" in real.stderr, real.stderr
    assert "Traceback" not in real.stderr


def test_the_guard_refuses_outside_addresses_and_lets_loopback_through() -> None:
    seen: list[str] = []
    undo = install(seen.append)
    try:
        with pytest.raises(OSError):
            socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed
        with pytest.raises(OSError):
            socket.getaddrinfo("huggingface.co", 443)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname(), timeout=5)
        client.close()
        server.close()
    finally:
        undo()
    assert seen == ["connect 192.0.2.1:443", "resolve huggingface.co"]
    assert is_local("::1") and is_local("localhost") and not is_local("10.0.0.1")


def vllm_collects(env: dict[str, str]) -> bool:
    """vLLM's own rule (vllm/envs.py VLLM_NO_USAGE_STATS and VLLM_DO_NOT_TRACK, usage_lib.py)."""
    do_not_track = (env.get("VLLM_DO_NOT_TRACK") or env.get("DO_NOT_TRACK") or "0") == "1"
    return not (do_not_track or env.get("VLLM_NO_USAGE_STATS", "0") == "1")


@pytest.mark.parametrize(("user", "collects"), [
    ({}, False),  # nobody chose: off
    ({"VLLM_NO_USAGE_STATS": "0"}, True),  # the user turned them on: left on
    ({"DO_NOT_TRACK": "0"}, True),
    ({"DO_NOT_TRACK": "1"}, False),
    ({"VLLM_NO_USAGE_STATS": "1"}, False),
])
@pytest.mark.parametrize("installed", [True, False])
def test_vllm_usage_stats_are_off_unless_the_user_turns_them_on(user: dict[str, str], collects: bool,
                                                                installed: bool,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from topictree_hf.engines.vllm_engine import USAGE_STATS_VARS, import_vllm
    from topictree_hf.errors import BackendUnavailableError

    for name in USAGE_STATS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    # a stand-in module: the env must be set before vLLM is imported, whether or not it is installed
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm") if installed else None)
    if installed:
        assert import_vllm() is sys.modules["vllm"]
    else:
        with pytest.raises(BackendUnavailableError, match=r"pip install 'topictree-hf\[vllm\]'"):
            import_vllm()
    assert vllm_collects(dict(os.environ)) is collects
    for name, value in user.items():
        assert os.environ[name] == value, "a choice the user made is never overwritten"


def test_the_cli_turns_vllm_usage_stats_off_for_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from topictree_hf.cli import main
    from topictree_hf.engines.vllm_engine import USAGE_STATS_VARS

    for name in USAGE_STATS_VARS:
        monkeypatch.delenv(name, raising=False)
    assert main(["init", "-"]) == 0
    assert not vllm_collects(dict(os.environ))
    monkeypatch.delenv("DO_NOT_TRACK")
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "0")
    assert main(["init", "-"]) == 0
    assert vllm_collects(dict(os.environ)) and "DO_NOT_TRACK" not in os.environ
    capsys.readouterr()
