"""A scripted engine for unit tests and host-side benchmarks: no model, records every call.

Test support, not part of the package: tests (and scripts/bench_*.py, which put tests/ on sys.path)
register it through the same registry as the real backends:
`register_backend("fake", lambda cfg: FakeEngine(responder))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from topictree_hf.engines.base import ChatRequest, Completion, Engine, Progress

Responder = Callable[[ChatRequest], "str | Completion"]


class FakeEngine(Engine):
    backend = "fake"

    def __init__(self, responder: Responder, model_name: str = "fake-model", record: bool = True,
                 parameter_count: int | None = None) -> None:
        """`record=False` keeps only the call count (benchmarks: recording holds every request);
        `parameter_count`: the size the engine reports (None: unknown, as for a served model)."""
        self.responder = responder
        self.model_name = model_name
        self.parameter_count = parameter_count
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


def request_kind(req: ChatRequest) -> str:
    """What a request is for, read the way a scripted engine can: a tree expansion's schema lists
    `subtopics`, a leaf plan's (generation.plan) `items`, the LLM judge's asks for a `score`; anything
    else asks for a sample."""
    properties = (req.json_schema or {}).get("properties") or {}
    if "subtopics" in properties:
        return "subtopics"
    if "items" in properties:
        return "plan"
    return "judge" if "score" in properties and "reason" in properties else "sample"
