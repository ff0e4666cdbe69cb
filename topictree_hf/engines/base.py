"""The engine contract, shaped like `vllm.LLM.generate`: a batch of chat requests in, a list of
completions out, same length and order. Every backend implements `generate`; nothing else in the
library knows which backend it talks to. What the generator may ask of an engine is declared on
`Engine`: `backend`, `model_name`, `parameter_count` (None when unknown), `generate`, `stream`, `close`.

`stream` is the continuous form the sample generator uses: requests are pulled lazily from an
iterable, at most `max_in_flight` outstanding, and each completion comes back as soon as it finishes,
with the index of its request in pull order. The iterable is polled again after completions, so the
caller can append requests (retries) while it consumes. `Engine.stream` is a default built on
`generate` (chunks of `max_in_flight`); the vllm and openai backends complete each request on its own."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from topictree_hf.errors import ConfigError

FinishReason = Literal["stop", "length", "error"]
Progress = Callable[[int], None]  # called with the number of requests just finished
DEFAULT_IN_FLIGHT = 32  # `stream`'s bound when the caller gives none (the default engine.batch_size)


@dataclass(slots=True, frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None  # per request: the same seed gives the same text where the backend allows
    repetition_penalty: float | None = None  # > 1 discourages tokens already in the prompt or output; None: off


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
    parameter_count: int | None = None  # the model's size where the backend knows it (picks the `auto` mode)

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        """Complete every request; the result has the same length and order as `requests`."""

    def stream(
        self, requests: Iterable[ChatRequest], max_in_flight: int | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """Yield `(pull index, completion)` for requests pulled lazily from `requests`, at most
        `max_in_flight` outstanding (None: DEFAULT_IN_FLIGHT). This default pulls a chunk of up to
        `max_in_flight`, completes it with one `generate` call, yields each completion, then polls the
        iterable again (an iterator that was momentarily empty may yield again: appended retries); it
        ends when a poll gets nothing. Backends that can finish requests one by one override it."""
        size = check_in_flight(max_in_flight) or DEFAULT_IN_FLIGHT
        source = iter(requests)
        pulled = 0
        while chunk := list(itertools.islice(source, size)):
            for offset, completion in enumerate(self.generate(chunk)):
                yield pulled + offset, completion
            pulled += len(chunk)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model and any processes or connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_in_flight(max_in_flight: int | None) -> int | None:
    """`max_in_flight` as given, after checking that a bound is at least 1."""
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    return max_in_flight


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
