"""Engines: one contract (`Engine.generate`), many backends, one registry. Importing this package
changes nothing in the process; `create_engine` applies what a backend needs (threads.py)."""

from topictree_hf.engines.base import ChatRequest, Completion, Engine, SamplingParams
from topictree_hf.engines.registry import create_engine, known_backends, register_backend, restore_backend

__all__ = [
    "ChatRequest",
    "Completion",
    "Engine",
    "SamplingParams",
    "create_engine",
    "known_backends",
    "register_backend",
    "restore_backend",
]
