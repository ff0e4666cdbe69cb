"""JSON-schema constrained decoding for the transformers backend.

`Guide` wraps one grammar library behind three calls (new matcher, fill a bitmask row, consume a
token). llguidance is the default: it is light (no triton) and was the faster of the two on the
bundled model (docs/benchmarks.md); xgrammar, which vLLM also uses, is an optional extra.
Both write the same packed int32 bitmask (bit j of word w allows token 32*w + j).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import torch

from topictree_hf.errors import BackendUnavailableError, ConfigError

GUIDES = ("llguidance", "xgrammar")


class Matcher(Protocol):
    def fill(self, bitmask: torch.Tensor, row: int) -> None: ...
    def consume(self, token: int) -> bool: ...


class Guide:
    """Compiles JSON schemas for one tokenizer and hands out per-request matchers."""

    def __init__(self, tokenizer: Any, vocab_size: int, library: str = "llguidance") -> None:
        if library not in GUIDES:
            raise ConfigError(f"unknown guided-decoding library {library!r}; choose from {', '.join(GUIDES)}")
        self.library = library
        self.vocab_size = vocab_size
        if library == "llguidance":
            import llguidance.hf

            self._lltok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        else:
            try:
                import xgrammar as xgr
            except ImportError:
                raise BackendUnavailableError(
                    "xgrammar is not installed: pip install 'topictree-hf[xgrammar]' or use llguidance"
                ) from None
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
            self._xgr_compiler = xgr.GrammarCompiler(info)
        self._grammar = lru_cache(maxsize=256)(self._compile)

    def _compile(self, schema_json: str) -> Any:
        if self.library == "llguidance":
            import llguidance

            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                schema_json,
                defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
            )
            is_error, problems = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self._lltok)
            if is_error:
                raise ConfigError(f"JSON schema is not usable for guided decoding: {problems[0]}; fix the schema")
            return grammar
        return self._xgr_compiler.compile_json_schema(schema_json, any_whitespace=False)

    def matcher(self, schema: dict[str, Any]) -> Matcher:
        compiled = self._grammar(json.dumps(schema, sort_keys=True))
        if self.library == "llguidance":
            return _LLMatcher(self._lltok, compiled)
        return _XGRMatcher(compiled)

    def new_bitmask(self, rows: int) -> torch.Tensor:
        return torch.full((rows, (self.vocab_size + 31) // 32), -1, dtype=torch.int32)


class _LLMatcher:
    def __init__(self, tokenizer: Any, grammar: str) -> None:
        import llguidance

        self._m = llguidance.LLMatcher(tokenizer, grammar, log_level=0)

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        v = bitmask[row]
        self._m.unsafe_compute_mask_ptr(v.data_ptr(), v.numel() * v.element_size())

    def consume(self, token: int) -> bool:
        return bool(self._m.consume_token(token))


class _XGRMatcher:
    def __init__(self, compiled: Any) -> None:
        import xgrammar as xgr

        self._m = xgr.GrammarMatcher(compiled)

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        self._m.fill_next_token_bitmask(bitmask, row)

    def consume(self, token: int) -> bool:
        return bool(self._m.accept_token(token))


def allowed_mask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Unpack a packed int32 bitmask into a bool tensor (rows, vocab_size): True = allowed."""
    packed = bitmask.numpy().view(np.uint8)
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, :vocab_size]
    return torch.from_numpy(bits.astype(bool))
