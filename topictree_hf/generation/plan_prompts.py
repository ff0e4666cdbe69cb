"""What a leaf's plan request asks (generation.plan): the k distinct things the leaf's next samples will
be about, one per slot, each slot with the angle (and format) its sample will have, in one answer.

The request shows the leaf's path, the sibling leaves (covered elsewhere), what this leaf already
planned and what was rejected before and why; the answer is JSON `{"items": [...]}` with exactly k
strings (schema-guided where the engine supports it, parsed leniently either way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from topictree_hf.engines.base import ChatRequest, SamplingParams
from topictree_hf.textparse import valid_unicode

SYSTEM = ("You plan a set of training examples. You list distinct, specific items, one per numbered slot, so that "
          "no two examples cover the same point. Answer with JSON only.")
# what one planned item is, per format: (the noun, what it must be)
KINDS = {
    "qa": ("question", "one specific question a learner could ask (8 to 30 words)"),
    "instruction": ("task", "one specific task a user could give an assistant (8 to 30 words)"),
    "chat": ("scenario", "one specific situation a user brings to an assistant, in one sentence"),
    "code": ("programming task", "one specific, self-contained programming task (8 to 30 words)"),
    "custom": ("item", "one specific point for one example (8 to 30 words)"),
}
MIN_CHARS, MAX_CHARS = 12, 240
MAX_SLOTS = 10  # slots per request: a small model lists 10 distinct items far better than 25
SHOWN = 30  # planned items shown back to the model at most (the leaf's own), newest last
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s*")


@dataclass(frozen=True, slots=True)
class Slot:
    """One sample-to-be at a leaf: its index (the task index), format and angle."""

    index: int
    format: str
    angle: str


def kind_of(formats: Sequence[str]) -> tuple[str, str]:
    """The item noun and its description for a set of slots (one format: that format's; mixed: generic)."""
    kinds = {KINDS.get(f, KINDS["custom"]) for f in formats}
    return kinds.pop() if len(kinds) == 1 else ("item", "one specific point for one example (8 to 30 words)")


def plan_schema(count: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "minItems": count, "maxItems": count,
                                 "items": {"type": "string", "minLength": MIN_CHARS, "maxLength": MAX_CHARS,
                                           "pattern": r"^[^\n\r\"\\{}]*$"}}},
        "required": ["items"],
        "additionalProperties": False,
    }


def plan_messages(path: Sequence[str], slots: Sequence[Slot], siblings: Sequence[str], have: Sequence[str],
                  rejected: Sequence[tuple[str, str]], instructions: str | None, spares: int = 0,
                  near: Sequence[str] = ()) -> list[dict[str, str]]:
    """The plan request for `slots` at the leaf at `path`, then `spares` more items on other points;
    `near`: items the sibling leaves planned (not to be repeated here)."""
    leaf = path[-1]
    noun, what = kind_of([s.format for s in slots])
    within = f", as part of {' > '.join(path[:-1])}" if len(path) > 1 else ""
    lines = [f"Topic path: {' > '.join(path)}",
             f"Plan {len(slots)} training examples about \"{leaf}\"{within}: for each numbered slot write {what}, "
             f"specifically about \"{leaf}\". Every {noun} covers a different point; none repeats another.",
             "The slots (fit each item to its slot):"]
    lines += [f"{i}. {_slot_text(slot, len({s.format for s in slots}) > 1)}" for i, slot in enumerate(slots, 1)]
    lines += [f"{i}. spare: any other point of \"{leaf}\"" for i in range(len(slots) + 1, len(slots) + spares + 1)]
    if siblings:
        lines.append(f"Other parts of \"{path[-2]}\" are covered elsewhere; do not plan items about: "
                     f"{'; '.join(siblings)}.")
    if have:
        lines.append("Already planned for this topic (cover other points): " + " | ".join(have[-SHOWN:]))
    if near:
        lines.append("Planned for the other parts (do not repeat): " + " | ".join(near))
    if rejected:
        lines.append("Rejected before: " + "; ".join(f"\"{t[:80]}\" ({why})" for t, why in rejected[-6:]) + ".")
    if instructions:
        lines.append(instructions)
    lines.append(f'Answer as JSON with exactly {len(slots) + spares} strings, in slot order: {{"items": ["...", ...]}}')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _slot_text(slot: Slot, mixed: bool) -> str:
    return f"a {KINDS.get(slot.format, KINDS['custom'])[0]}, {slot.angle}" if mixed else slot.angle


def plan_request(messages: list[dict[str, str]], count: int, temperature: float, seed: int) -> ChatRequest:
    """`count` items at most 60 tokens each, JSON-guided."""
    params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=24 + 60 * count, seed=seed)
    return ChatRequest(messages, params, plan_schema(count))


def parse_items(text: str) -> list[str] | None:
    """The `items` strings of an answer (text after the JSON ignored), or None when there are none."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(valid_unicode(text)[start:])
    except (json.JSONDecodeError, RecursionError):
        return None
    items = obj.get("items") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        return None
    return [clean_item(str(i)) for i in items if isinstance(i, str)]


def clean_item(text: str) -> str:
    """One line, no numbering or bullet, no surrounding quotes."""
    text = " ".join(_NUMBERING.sub("", text).split())
    return text.strip("\"'` ")
