"""The request source `Engine.stream` expects, for tests: re-pollable (StopIteration while empty,
more after `append`, as the generator's retries arrive), counting what was pulled."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from topictree_hf.engines.base import ChatRequest


class Feed:
    def __init__(self, requests: Iterable[ChatRequest] = ()) -> None:
        self.queue: deque[ChatRequest] = deque(requests)
        self.pulled = 0

    def append(self, request: ChatRequest) -> None:
        self.queue.append(request)

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> ChatRequest:
        if not self.queue:
            raise StopIteration
        self.pulled += 1
        return self.queue.popleft()
