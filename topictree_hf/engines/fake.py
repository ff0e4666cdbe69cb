"""A scripted engine for unit tests and host-side benchmarks: no model, records every call.

Tests register it through the same registry as the real backends:
`register_backend("fake", lambda cfg: FakeEngine(responder))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress

Responder = Callable[[ChatRequest], "str | Completion"]


class FakeEngine(Engine):
    backend = "fake"

    def __init__(self, responder: Responder, model_name: str = "fake-model") -> None:
        self.responder = responder
        self.model_name = model_name
        self.calls: list[list[ChatRequest]] = []

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        self.calls.append(list(requests))
        out: list[Completion] = []
        for req in requests:
            answer = self.responder(req)
            if isinstance(answer, str):
                answer = Completion(answer, "stop", prompt_tokens=1, output_tokens=max(1, len(answer) // 4))
            out.append(answer)
        if progress is not None:
            progress(len(requests))
        return out

    @property
    def num_calls(self) -> int:
        return len(self.calls)
