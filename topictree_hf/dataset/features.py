"""The dataset row: its `datasets.Features` and the conversion from a journaled sample record.

The row is what TRL's SFTTrainer reads (`messages`) plus everything needed to trace a sample back to
its place in the tree and the settings that made it. Columns are fixed here, declared in the card's
`dataset_info`, and applied on load, so every build of every run has the same schema.
"""

from __future__ import annotations

from typing import Any

from datasets import Features, List, Value

MESSAGE = {"role": Value("string"), "content": Value("string")}

FEATURES = Features(
    {
        "id": Value("string"),
        "topic_path": List(Value("string")),
        "leaf": Value("string"),
        "depth": Value("int32"),
        "format": Value("string"),
        "messages": List(MESSAGE),
        "model": Value("string"),
        "backend": Value("string"),
        "mode": Value("string"),
        "template": Value("string"),
        "angle": Value("string"),
        "temperature": Value("float64"),
        "top_p": Value("float64"),
        "seed": Value("int64"),
        "finish_reason": Value("string"),
        "prompt_tokens": Value("int32"),
        "output_tokens": Value("int32"),
        "attempt": Value("int32"),
    }
)



class PreEncodedFeatures(Features):
    """FEATURES for writing rows made by `to_row`: those are already plain Python values of exactly
    these types (no images, audio or class labels to encode), so datasets' recursive per-row
    `encode_example`, half of the build time at a million rows, has nothing to do. The values are
    still checked against the schema when each batch becomes an Arrow table."""

    def encode_example(self, example: dict[str, Any]) -> dict[str, Any]:
        return example


# What each column means, for the card (a test keeps it in step with FEATURES).
FIELD_DOCS = {
    "id": ("string", "stable sample id (from path, index and seed); rows are sorted by it"),
    "topic_path": ("list of string", "the root-to-leaf topics this sample was written for, root first"),
    "leaf": ("string", "the last topic of the path"),
    "depth": ("int32", "depth of the leaf (the root is 0)"),
    "format": ("string", "sample format: qa, instruction, chat, code or custom"),
    "messages": ("list of {role, content}", "the conversation; what TRL's SFTTrainer reads"),
    "model": ("string", "the model that wrote the sample"),
    "backend": ("string", "engine backend: transformers, vllm or openai"),
    "mode": ("string", "json (schema-guided decoding) or text (tagged sections)"),
    "template": ("string", "the prompt template used"),
    "angle": ("string", "the angle the prompt asked for, for variety within one leaf"),
    "temperature": ("float64", "sampling temperature"),
    "top_p": ("float64", "nucleus sampling threshold"),
    "seed": ("int64", "sampling seed of the request"),
    "finish_reason": ("string", "why generation stopped (stop, length)"),
    "prompt_tokens": ("int32", "tokens in the prompt"),
    "output_tokens": ("int32", "tokens generated"),
    "attempt": ("int32", "1 for the first try; more when retried after a validation error"),
}

# Optional metadata columns and the Python type each must have (anything else becomes null:
# a journal written by an older generator lacks some of them, which must not stop a build).
_OPTIONAL_STR = ("model", "backend", "mode", "template", "angle", "finish_reason")
_OPTIONAL_INT = ("seed", "prompt_tokens", "output_tokens", "attempt")
_OPTIONAL_FLOAT = ("temperature", "top_p")


class BadRecord(ValueError):
    """A journal record that cannot become a row; `str(err)` is the short reason counted in the card."""


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """Turn one sample record (see rundir.py) into a row with exactly the FEATURES columns."""
    sid = record.get("id")
    if not isinstance(sid, str) or not sid:
        raise BadRecord("missing id")
    path = record.get("topic_path")
    if not isinstance(path, list) or not path or not all(isinstance(t, str) for t in path):
        raise BadRecord("bad topic_path")
    fmt = record.get("format")
    if not isinstance(fmt, str) or not fmt:
        raise BadRecord("missing format")
    depth = record.get("depth")
    leaf = record.get("leaf")
    row: dict[str, Any] = {
        "id": sid,
        "topic_path": list(path),
        "leaf": leaf if isinstance(leaf, str) and leaf else path[-1],
        "depth": depth if _is_int(depth) else len(path) - 1,
        "format": fmt,
        "messages": _messages(record.get("messages")),
    }
    for key in _OPTIONAL_STR:
        value = record.get(key)
        row[key] = value if isinstance(value, str) else None
    for key in _OPTIONAL_INT:
        value = record.get(key)
        row[key] = value if _is_int(value) else None
    for key in _OPTIONAL_FLOAT:
        value = record.get(key)
        row[key] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return row


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _messages(raw: Any) -> list[dict[str, str]]:
    """Keep role and content only; a message without text content (e.g. a tool call) is not a chat
    turn SFTTrainer can read, so the record is rejected rather than written with a hole in it."""
    if not isinstance(raw, list) or not raw:
        raise BadRecord("no messages")
    out = []
    for message in raw:
        if not isinstance(message, dict):
            raise BadRecord("message is not an object")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise BadRecord("message without role")
        if not isinstance(content, str):
            raise BadRecord("message content is not text")
        out.append({"role": role, "content": content})
    return out
