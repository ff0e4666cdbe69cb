"""The engine contract, shaped like `vllm.LLM.generate`: a batch of chat requests in, a list of
completions out, same length and order. Every backend implements `generate`; nothing else in the
library knows which backend it talks to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from topictree_hf.errors import ConfigError

FinishReason = Literal["stop", "length", "error"]
Progress = Callable[[int], None]  # called with the number of requests just finished


@dataclass(slots=True, frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None  # per request: the same seed gives the same text where the backend allows


@dataclass(slots=True)
class ChatRequest:
    """One chat to complete. A final `assistant` message is continued (prefill), not answered."""

    messages: list[dict[str, str]]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None  # guided decoding when set


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None  # set when finish_reason == "error" (e.g. a request that failed after retries)


class Engine(ABC):
    """A loaded model. Use as a context manager, or call `close()` when done."""

    backend: ClassVar[str]
    model_name: str

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        """Complete every request; the result has the same length and order as `requests`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model and any processes or connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def parse_options(model: type[OptionsT], options: dict[str, Any], backend: str) -> OptionsT:
    """Validate `engine.options` for one backend (a pydantic model with extra="forbid"): one line on error."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise ConfigError(f"engine.options.{where}: {err['msg']} for backend {backend} "
                          f"(allowed: {', '.join(model.model_fields)})") from None
