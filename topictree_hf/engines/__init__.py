"""Engines: one contract (`Engine.generate`), many backends, one registry."""

from topictree_hf.engines.base import ChatRequest, Completion, Engine, SamplingParams
from topictree_hf.engines.registry import create_engine, known_backends, register_backend

__all__ = [
    "ChatRequest",
    "Completion",
    "Engine",
    "SamplingParams",
    "create_engine",
    "known_backends",
    "register_backend",
]
