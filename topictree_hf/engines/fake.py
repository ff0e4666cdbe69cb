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

    def __init__(self, responder: Responder, model_name: str = "fake-model", record: bool = True) -> None:
        """`record=False` keeps only the call count (benchmarks: recording holds every request)."""
        self.responder = responder
        self.model_name = model_name
        self.record = record
        self.calls: list[list[ChatRequest]] = []
        self._count = 0

    def generate(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[Completion]:
        self._count += 1
        if self.record:
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
        return self._count
