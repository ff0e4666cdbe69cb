"""Sample formats: each is a JSON schema for guided decoding, a tagged-text layout, a validator,
and the conversion to `messages` (list of {role, content}, what TRL's SFTTrainer reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from topictree_hf.config import CustomFormat
from topictree_hf.errors import ConfigError
from topictree_hf.textparse import parse_tagged, strip_code_fence

MIN_CHARS = 8
SHORT_FIELDS = {"language": 40}  # field -> max length; may be a single word
_LEAD_IN = re.compile(r"^(?:the\s+)?(?:answer|response|output|solution)(?:\s+is)?\s*:?\s*", re.IGNORECASE)
_JUNK = re.compile(r"\{\{|\}\}|<\w+ ?[\w ]*>|\.\.\.$|^\W*$")


def _text(min_len: int = MIN_CHARS, max_len: int = 4000) -> dict[str, Any]:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _object(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _field_problem(obj: dict[str, Any], name: str, optional: bool = False) -> str | None:
    min_len = 1 if name in SHORT_FIELDS else MIN_CHARS
    value = obj.get(name)
    if value is None or value == "":
        return None if optional else f"missing {name}"
    if not isinstance(value, str):
        return f"{name} is not text"
    text = value.strip()
    if len(text) < min_len and not optional:
        return f"{name} too short"
    if _JUNK.search(text):
        return f"{name} holds a placeholder"
    return None


@dataclass(frozen=True)
class Format:
    name: str
    fields: tuple[str, ...]  # in layout order
    aliases: dict[str, str]  # lower-case tag -> field
    optional: tuple[str, ...] = ()

    @property
    def lead(self) -> str:
        """How a tagged-text answer starts; the engine is primed with it (prefill)."""
        first = "user" if self.name == "chat" else self.fields[0]
        return f"{first.capitalize()}:"

    def schema(self, turns: int) -> dict[str, Any]:
        props = {f: (_text(0) if f in self.optional else _text(1, SHORT_FIELDS[f]) if f in SHORT_FIELDS else _text())
                 for f in self.fields}
        return _object(props, list(self.fields))

    def from_text(self, text: str, turns: int) -> dict[str, Any] | None:
        obj: dict[str, Any] = {}
        for name, body in parse_tagged(text, self.aliases):
            obj.setdefault(name, body)
        first, last = self.fields[0], self.fields[-1]
        if last not in obj and "\n" in obj.get(first, ""):  # "Question: ...?\nThe answer is: ..." (untagged)
            head, _, rest = obj[first].partition("\n")
            obj[first], obj[last] = head.strip(), _LEAD_IN.sub("", rest.strip())
        return obj or None

    def check(self, obj: dict[str, Any], turns: int) -> str | None:
        for f in self.fields:
            problem = _field_problem(obj, f, f in self.optional)
            if problem:
                return problem
        values = [str(obj[f]).strip().lower() for f in self.fields if obj.get(f)]
        if len(set(values)) < len(values):
            return "fields repeat each other"
        return None

    def messages(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        if self.name == "qa":
            return [_msg("user", obj["question"]), _msg("assistant", obj["answer"])]
        if self.name == "instruction":
            prompt = obj["instruction"].strip()
            if str(obj.get("input") or "").strip():
                prompt += "\n\n" + obj["input"].strip()
            return [_msg("user", prompt), _msg("assistant", obj["output"])]
        language = str(obj.get("language") or "").strip()
        code = strip_code_fence(obj["solution"])
        return [_msg("user", obj["task"]), _msg("assistant", f"```{language.lower()}\n{code}\n```")]


class ChatFormat(Format):
    def schema(self, turns: int) -> dict[str, Any]:
        turn = _object({"user": _text(), "assistant": _text()}, ["user", "assistant"])
        return _object({"turns": {"type": "array", "items": turn, "minItems": turns, "maxItems": turns}}, ["turns"])

    def from_text(self, text: str, turns: int) -> dict[str, Any] | None:
        pairs: list[dict[str, str]] = []
        for name, body in parse_tagged(text, self.aliases):
            if name == "user":
                pairs.append({"user": body})
            elif pairs and "assistant" not in pairs[-1]:
                pairs[-1]["assistant"] = body
        return {"turns": pairs} if pairs else None

    def check(self, obj: dict[str, Any], turns: int) -> str | None:
        items = obj.get("turns")
        if not isinstance(items, list) or not items:
            return "missing turns"
        if len(items) != turns:
            return f"{len(items)} turns instead of {turns}"
        for item in items:
            if not isinstance(item, dict):
                return "a turn is not an object"
            for role in ("user", "assistant"):
                problem = _field_problem(item, role)
                if problem:
                    return problem
        return None

    def messages(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for item in obj["turns"]:
            out += [_msg("user", item["user"]), _msg("assistant", item["assistant"])]
        return out


class CustomFormatImpl(Format):
    """The user's template + schema + role->field mapping."""

    def __init__(self, spec: CustomFormat) -> None:
        import jsonschema

        try:
            jsonschema.validators.validator_for(spec.json_schema).check_schema(spec.json_schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"generation.custom.json_schema is not a valid JSON Schema: {exc.message}; fix it") \
                from None
        fields = tuple(m.get("field", "") for m in spec.messages)
        for m in spec.messages:
            if set(m) != {"role", "field"} or m["role"] not in ("system", "user", "assistant"):
                raise ConfigError("generation.custom.messages entries must be {role: user|assistant|system, "
                                  f"field: NAME}}, got {m}; fix the mapping")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "_validator", jsonschema.validators.validator_for(spec.json_schema)(spec.json_schema))
        super().__init__("custom", fields, {f.lower(): f for f in fields})

    def schema(self, turns: int) -> dict[str, Any]:
        return self.spec.json_schema  # type: ignore[attr-defined, no-any-return]

    def check(self, obj: dict[str, Any], turns: int) -> str | None:
        error = next(iter(self._validator.iter_errors(obj)), None)  # type: ignore[attr-defined]
        if error is not None:
            return f"schema: {error.message[:80]}"
        return super().check(obj, turns)

    def messages(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        return [_msg(m["role"], str(obj[m["field"]])) for m in self.spec.messages]  # type: ignore[attr-defined]


def _msg(role: str, content: Any) -> dict[str, str]:
    return {"role": role, "content": str(content).strip()}


BUILTIN: dict[str, Format] = {
    "qa": Format("qa", ("question", "answer"), {"question": "question", "q": "question", "answer": "answer",
                                                "answers": "answer", "a": "answer"}),
    "instruction": Format("instruction", ("instruction", "input", "output"),
                          {"instruction": "instruction", "input": "input", "output": "output",
                           "response": "output"}, optional=("input",)),
    "chat": ChatFormat("chat", ("turns",), {"user": "user", "assistant": "assistant"}),
    "code": Format("code", ("task", "language", "solution"),
                   {"task": "task", "language": "language", "solution": "solution", "code": "solution"}),
}


def get_format(name: str, custom: CustomFormat | None = None) -> Format:
    if name == "custom":
        if custom is None:
            raise ConfigError("format 'custom' needs a generation.custom block (template, json_schema, messages)")
        return CustomFormatImpl(custom)
    return BUILTIN[name]
