"""Engines: one contract (`Engine.generate`), many backends, one registry."""

import os
import sys

from topictree_hf.engines.base import ChatRequest, Completion, Engine, SamplingParams
from topictree_hf.engines.registry import create_engine, known_backends, register_backend

if "torch" not in sys.modules:
    # torch's OpenMP workers spin while they wait; when other processes share the cores (CI boxes,
    # shared machines) that stalls CPU generation 10-20x (docs/benchmarks.md). libgomp reads this once,
    # when torch loads, so it is set here, before any backend imports torch; a user's own value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = [
    "ChatRequest",
    "Completion",
    "Engine",
    "SamplingParams",
    "create_engine",
    "known_backends",
    "register_backend",
]
