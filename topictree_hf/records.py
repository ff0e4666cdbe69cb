"""The two records of a run: `Sample` (a kept sample) and `Failure` (a sample that failed after retries).

The generator makes them, the journals hold them (`samples-*.jsonl`, `failures.jsonl`, one JSON object
a line: `to_json` / `from_json`), the builder turns a Sample into a dataset row (`to_row`), eval and the
Ray blocks read them back. The dataset's `Features` and the card's field table are derived from the
`Sample` fields below (each field's `column` metadata: its Arrow type and what it means).

Why a slotted dataclass and not pydantic or msgspec: no new dependency, attribute access and
construction are plain-Python fast (the builder converts a million records per build), and the
checks a journal line needs are few and specific (`from_json` names what is wrong in a short reason
that the card counts). `from_json` also reads journals written before this type existed: missing
optional keys become None (`leaf_id`: ""), `leaf` and `depth` are derived from the path, and an old template
name with its file suffix (`qa.jinja`) is read as the template's name (`qa`).

Conventions: `attempt` counts retries (0 for a first try accepted); `template` is the template's name
without a suffix; `id` is made by `sample_id` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

# Rejection reasons (the part of a reason before ":"); failures.jsonl `reason` is one of these.
ENGINE_ERROR = "engine error"
EMPTY = "empty"
TRUNCATED = "truncated"
UNPARSEABLE = "unparseable"
MISSING_SECTIONS = "missing sections"
INVALID = "invalid"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
SEMANTIC_DUPLICATE = "semantic_duplicate"
JUDGE = "judge"  # a rule check (generation/judge.py) fired; the detail names the rule: "judge: copies question"
JUDGE_SCORE = "judge score"  # the LLM judge scored the sample under its threshold: "judge score 2: off topic"
DEDUP_REASONS = frozenset({DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE})
REJECTION_REASONS = frozenset({ENGINE_ERROR, EMPTY, TRUNCATED, UNPARSEABLE, MISSING_SECTIONS, INVALID, JUDGE,
                               JUDGE_SCORE}) | DEDUP_REASONS
TEMPLATE_SUFFIXES = (".jinja", ".j2")


def reason_key(reason: str) -> str:
    """What a full rejection reason is counted under (the summary's rejections and failures): the part
    before ":" ("invalid: missing answer" -> "invalid"), except that each rule check counts under its
    own name ("judge: copies question") and each judge score under its score ("judge score 2")."""
    if reason.startswith(JUDGE + ": "):
        return reason
    return reason.split(":")[0]


def failure_reason(reason: str) -> str:
    """The rejection constant a failure record carries (`Failure.reason`) for a full reason."""
    key = reason.split(":")[0]
    return JUDGE_SCORE if key.startswith(JUDGE_SCORE) else key


class RecordError(ValueError):
    """A journal line that is not a valid record; `str(err)` is the short reason counted in the card."""


def sample_id(seed: int, leaf_id: str, fmt: str, index: int) -> str:
    """The one recipe for a sample id: stable for (seed, leaf, format, index within the leaf)."""
    return hashlib.sha256(f"{seed}|{leaf_id}|{fmt}|{index}".encode()).hexdigest()[:16]


def column(arrow: str, doc: str, card_type: str | None = None) -> Any:
    """Field metadata: this field is a dataset column of Arrow type `arrow` ("string", "int32",
    "list[string]", "messages", ...), documented in the card as `doc`."""
    return field(default=None, metadata={"arrow": arrow, "doc": doc, "card_type": card_type or arrow})


def required(arrow: str, doc: str, card_type: str | None = None) -> Any:
    return field(metadata={"arrow": arrow, "doc": doc, "card_type": card_type or arrow})


@dataclass(slots=True)
class Sample:
    id: str = required("string", "stable sample id (from seed, leaf, format and index); rows are sorted by it")
    topic_path: list[str] = required("list[string]", "the root-to-leaf topics this sample was written for, root "
                                     "first", "list of string")
    leaf: str = required("string", "the last topic of the path")
    depth: int = required("int32", "depth of the leaf (the root is 0)")
    format: str = required("string", "sample format: qa, instruction, chat, code or custom")
    messages: list[dict[str, str]] = required("messages", "the conversation; what TRL's SFTTrainer reads",
                                              "list of {role, content}")
    model: str | None = column("string", "the model that wrote the sample")
    backend: str | None = column("string", "engine backend: transformers, vllm or openai")
    mode: str | None = column("string", "json (schema-guided decoding) or text (tagged sections)")
    template: str | None = column("string", "the name of the prompt template used")
    angle: str | None = column("string", "the angle the prompt asked for, for variety within one leaf")
    planned: str | None = column("string", "the planned item this sample was written for (generation.plan: a "
                                 "leaf's samples are planned together so they differ); null without a plan")
    temperature: float | None = column("float64", "sampling temperature")
    top_p: float | None = column("float64", "nucleus sampling threshold")
    seed: int | None = column("int64", "sampling seed of the request")
    finish_reason: str | None = column("string", "why generation stopped (stop, length)")
    prompt_tokens: int | None = column("int32", "tokens in the prompt")
    output_tokens: int | None = column("int32", "tokens generated")
    attempt: int | None = column("int32", "retries before this sample was accepted (0: the first try)")
    judge_score: int | None = column("int32", "the LLM judge's score, 1 (useless) to 5 (correct, on topic, useful); "
                                     "null when no judge ran (generation.judge)")
    judge_reason: str | None = column("string", "the LLM judge's one-sentence reason for its score (null: no judge)")
    leaf_id: str = field(default="", metadata={})  # journaled (resume, Ray blocks), not a dataset column

    def to_json(self) -> dict[str, Any]:
        """The journal line (every field)."""
        return {name: getattr(self, name) for name in _ALL_FIELDS}

    def to_row(self) -> dict[str, Any]:
        """The dataset row: exactly the columns of `row_columns()`, in that order."""
        return {name: getattr(self, name) for name in _ROW_FIELDS}

    @classmethod
    def from_json(cls, record: Any) -> Sample:
        """A Sample from a journal line (or a dataset row), or RecordError naming what is wrong."""
        if not isinstance(record, dict):
            raise RecordError("record is not an object")
        sid = record.get("id")
        if not isinstance(sid, str) or not sid:
            raise RecordError("missing id")
        path = record.get("topic_path")
        if not isinstance(path, list) or not path or not all(isinstance(t, str) for t in path):
            raise RecordError("bad topic_path")
        fmt = record.get("format")
        if not isinstance(fmt, str) or not fmt:
            raise RecordError("missing format")
        leaf, depth, leaf_id = record.get("leaf"), record.get("depth"), record.get("leaf_id")
        return cls(
            id=sid, topic_path=list(path), leaf=leaf if isinstance(leaf, str) and leaf else path[-1],
            depth=depth if isinstance(depth, int) and not isinstance(depth, bool) else len(path) - 1,
            format=fmt, messages=_messages(record.get("messages")),
            model=_str(record.get("model")), backend=_str(record.get("backend")), mode=_str(record.get("mode")),
            template=_template_name(record.get("template")), angle=_str(record.get("angle")),
            planned=_str(record.get("planned")), temperature=_float(record.get("temperature")),
            top_p=_float(record.get("top_p")),
            seed=_int(record.get("seed")), finish_reason=_str(record.get("finish_reason")),
            prompt_tokens=_int(record.get("prompt_tokens")), output_tokens=_int(record.get("output_tokens")),
            attempt=_int(record.get("attempt")), judge_score=_int(record.get("judge_score")),
            judge_reason=_str(record.get("judge_reason")),
            leaf_id=leaf_id if isinstance(leaf_id, str) else "",
        )

    def text(self) -> str:
        """The text a sample is compared by (dedup, diversity): every non-system turn, roles dropped."""
        return messages_text(self.messages)


@dataclass(slots=True)
class Failure:
    """A sample that failed after every retry: `reason` is the rejection kind (see the constants
    above), `detail` the full reason, `raw` the start of the last model output."""

    id: str | None
    topic_path: list[str] = field(default_factory=list)
    format: str | None = None
    reason: str = "unknown"
    detail: str | None = None
    raw: str = ""
    attempt: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "topic_path": self.topic_path, "format": self.format, "reason": self.reason,
                "detail": self.detail, "raw": self.raw, "attempt": self.attempt}

    @classmethod
    def from_json(cls, record: Any) -> Failure:
        """Tolerant: a failure line is informative (counts, reasons), so nothing in it is required."""
        if not isinstance(record, dict):
            return cls(None, reason="unreadable")
        path = record.get("topic_path")
        reason = record.get("reason")
        return cls(_str(record.get("id")), [str(t) for t in path] if isinstance(path, list) else [],
                   _str(record.get("format")), str(reason) if reason is not None else "unknown",
                   _str(record.get("detail")), str(record.get("raw") or ""), _int(record.get("attempt")))

    def described(self) -> str:
        """`detail` ("invalid: missing answer") says more than `reason` ("invalid") when present."""
        return self.detail or self.reason or "unknown"


def messages_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] != "system")


def turns_text(messages: Sequence[dict[str, Any]], roles: Sequence[str] = ("user", "assistant")) -> str:
    """The text eval measures (and the build's neighbour columns embed): the non-empty turns of `roles`,
    one per line; tolerant of a missing or null content."""
    parts = [str(m.get("content") or "") for m in messages if m.get("role") in roles]
    return "\n".join(p for p in parts if p)


def row_columns() -> list[tuple[str, str, str, str]]:
    """(name, Arrow type, card type, meaning) of every dataset column, in column order."""
    return [(f.name, f.metadata["arrow"], f.metadata["card_type"], f.metadata["doc"])
            for f in fields(Sample) if "arrow" in f.metadata]


_ALL_FIELDS = tuple(f.name for f in fields(Sample))
_ROW_FIELDS = tuple(name for name, *_ in row_columns())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    return value if _is_int(value) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _template_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    for suffix in TEMPLATE_SUFFIXES:
        if value.endswith(suffix) and len(value) > len(suffix):
            return value[: -len(suffix)]
    return value


def _messages(raw: Any) -> list[dict[str, str]]:
    """Keep role and content only; a message without text content (e.g. a tool call) is not a chat
    turn SFTTrainer can read, so the record is rejected rather than written with a hole in it."""
    if not isinstance(raw, list) or not raw:
        raise RecordError("no messages")
    out = []
    for message in raw:
        if not isinstance(message, dict):
            raise RecordError("message is not an object")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise RecordError("message without role")
        if not isinstance(content, str):
            raise RecordError("message content is not text")
        out.append({"role": role, "content": content})
    return out
