"""What the model is asked when a node is expanded, and the JSON schema of its answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SYSTEM = ("You are an expert curriculum designer. You split a topic into distinct, specific subtopics. "
          "Answer with JSON only.")

# Printable text without markup or template syntax: small models otherwise emit "{{x}}", "**x**", URLs.
TOPIC_PATTERN = r"^[A-Za-z0-9][^\"\\{}\[\]<>|#*_=~^$@;\n\r\t]*$"
# One worked example: tiny models follow a shown answer far better than a described one.
EXAMPLE = [
    {"role": "user",
     "content": 'Topic path: Cooking > Baking\nList 3 distinct subtopics of "Baking" within "Cooking".'},
    {"role": "assistant", "content": '{"subtopics": ["Sourdough Bread Making", "French Pastry Techniques", '
                                     '"Cake Decorating"]}'},
]


def expansion_schema(count: int, min_chars: int, max_chars: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "subtopics": {
                "type": "array",
                "items": {"type": "string", "minLength": min_chars, "maxLength": max_chars,
                          "pattern": TOPIC_PATTERN},
                "minItems": count,
                "maxItems": count,
            }
        },
        "required": ["subtopics"],
        "additionalProperties": False,
    }


def expansion_messages(path: list[str], count: int, siblings: list[str], have: list[str],
                       rejected: list[tuple[str, str]], taken: Sequence[str] = (),
                       wide: bool = False) -> list[dict[str, str]]:
    """Ask for `count` subtopics of the last topic of `path`.

    `siblings` are the node's own siblings (their children would be the new children's cousins);
    `have` are children already accepted (on a re-ask); `rejected` are (topic, reason) pairs;
    `taken` are topics the rest of the level already holds (on a re-ask: the whole level, not only
    the siblings, so the model stops proposing them). `wide`: the last try for a node every re-ask
    left short, which names the kinds of subtopic it may give instead of repeating the rejections."""
    topic = path[-1]
    lines = [f"Topic path: {' > '.join(path)}",
             f"List {count} distinct subtopics of \"{topic}\"" + (f" within \"{path[0]}\"." if len(path) > 1 else ".")]
    lines.append("Each subtopic is a short, specific noun phrase (2 to 6 words), clearly part of "
                 f"\"{topic}\", and different from the others.")
    if wide:
        lines.append(f"Any part of \"{topic}\" will do: its kinds, techniques, tools, ingredients or materials, "
                     "examples, history, places, people or common problems.")
    if len(path) > 1:
        lines.append(f"Each is a part or a kind of \"{topic}\" itself, never another topic like it.")
    if siblings:
        lines.append(f"Other parts of \"{path[-2]}\" are covered elsewhere; do not overlap with: "
                     f"{'; '.join(siblings)}.")
    if taken:
        lines.append(f"Already taken elsewhere in the tree (do not use): {'; '.join(taken)}.")
    if have:
        lines.append(f"Already listed (do not repeat): {'; '.join(have)}.")
    if rejected and not wide:
        lines.append("Rejected before: " + "; ".join(f"\"{t}\" ({why})" for t, why in rejected[-8:]) + ".")
    lines.append(f'Answer as JSON with exactly {count} strings: {{"subtopics": ["...", ...]}}')
    return [{"role": "system", "content": SYSTEM}, *EXAMPLE, {"role": "user", "content": "\n".join(lines)}]
