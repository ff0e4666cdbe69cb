"""How many parameters a model has, as the model defines them, from its safetensors headers (no
weights loaded).

One trap: a model whose output layer is its input embeddings (tied, as in Qwen2.5-0.5B or SmolLM2)
can reach us with the two stored apart. A GGUF may carry `output.weight` as its own tensor (quantized
differently from `token_embd.weight`), and its safetensors conversion then has `lm_head.weight`
beside `model.embed_tokens.weight` and `tie_word_embeddings: false`: summing the headers gives
Qwen2.5-Coder-0.5B 630M parameters instead of its 494M. So an output layer of the embeddings' shape
whose values are the embeddings' (up to quantization error, on a few sampled rows) is counted once.
An untied model's output layer differs from its embeddings by about their own size, far above that.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_NAMES = ("lm_head.weight", "embed_out.weight")  # the output layer, by suffix
INPUT_NAMES = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight")
COPY_TOLERANCE = 0.25  # relative difference of a copy: ~0.05 for Q5_0 vs Q8_0 of one tensor; untied: ~1.4
SAMPLE_ROWS = 16  # rows read at each of SAMPLE_PLACES evenly spaced places of the vocabulary
SAMPLE_PLACES = 4
MAX_HEADER = 100 * 2**20  # a larger header is not a safetensors file
# the dtypes whose values can be compared (bfloat16 read as its 16 bits)
_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


@dataclass(slots=True, frozen=True)
class Tensor:
    file: Path
    start: int  # the tensor's first byte in `file`
    dtype: str
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def count_parameters(folder: str | Path | None) -> int | None:
    """Parameters of the safetensors model in `folder`, an output layer that copies the input
    embeddings counted once; None when there is no folder, no safetensors file, or one is unreadable."""
    tensors = read_tensors(folder)
    if not tensors:
        return None
    total = sum(t.count for t in tensors.values())
    output, embeddings = _named(tensors, OUTPUT_NAMES), _named(tensors, INPUT_NAMES)
    if output is not None and embeddings is not None and _stored_copy(output, embeddings):
        total -= output.count
    return total


def read_tensors(folder: str | Path | None) -> dict[str, Tensor] | None:
    """Every tensor of the folder's *.safetensors files, from their headers."""
    if folder is None or not Path(folder).is_dir():
        return None
    tensors: dict[str, Tensor] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with open(file, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                if size > MAX_HEADER:
                    return None
                header = json.loads(f.read(size))
            for name, entry in header.items():
                if name != "__metadata__":
                    shape = tuple(int(d) for d in entry.get("shape", []))
                    start = 8 + size + int(entry.get("data_offsets", [0])[0])
                    tensors[name] = Tensor(file, start, str(entry.get("dtype")), shape)
        except (OSError, ValueError, TypeError, AttributeError, struct.error):
            return None
    return tensors


def is_copy(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether rows `a` are rows `b` up to quantization error (all-zero rows decide nothing)."""
    scale = float(np.linalg.norm(b))
    return scale > 0 and float(np.linalg.norm(a - b)) / scale < COPY_TOLERANCE


def sample_starts(rows: int) -> list[int]:
    """The first row of each sampled stretch of SAMPLE_ROWS rows, spread over `rows`."""
    last = max(0, rows - SAMPLE_ROWS)
    return sorted({round(i * last / max(1, SAMPLE_PLACES - 1)) for i in range(SAMPLE_PLACES)})


def sample_rows(rows: int) -> list[int]:
    """Every row `sample_starts` stretches cover (what a loaded model is compared on)."""
    return sorted({i for start in sample_starts(rows) for i in range(start, min(start + SAMPLE_ROWS, rows))})


def _named(tensors: dict[str, Tensor], suffixes: tuple[str, ...]) -> Tensor | None:
    found = [t for name, t in tensors.items() if name.endswith(suffixes)]
    return found[0] if len(found) == 1 else None


def _stored_copy(output: Tensor, embeddings: Tensor) -> bool:
    if output.shape != embeddings.shape or len(output.shape) != 2:
        return False
    if output.dtype not in _DTYPES or embeddings.dtype not in _DTYPES:
        return False
    try:
        a = np.concatenate([_rows(output, s) for s in sample_starts(output.shape[0])])
        b = np.concatenate([_rows(embeddings, s) for s in sample_starts(embeddings.shape[0])])
    except (OSError, ValueError):
        return False
    return is_copy(a, b)


def _rows(tensor: Tensor, first: int) -> np.ndarray:
    """Rows `first`..`first + SAMPLE_ROWS` of a 2-d tensor, as float32."""
    rows = min(SAMPLE_ROWS, tensor.shape[0] - first)
    dtype = _DTYPES[tensor.dtype]
    width = tensor.shape[1]
    with open(tensor.file, "rb") as f:
        f.seek(tensor.start + first * width * dtype.itemsize)
        raw: Any = np.frombuffer(f.read(rows * width * dtype.itemsize), dtype=dtype)
    if raw.size != rows * width:
        raise ValueError("truncated tensor data")
    if tensor.dtype == "BF16":  # bfloat16 is the upper half of a float32
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32).reshape(rows, width)
