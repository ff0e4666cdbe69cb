"""Reading model text, for the tree builder and the sample generator alike: valid Unicode, JSON
(models add trailing text, so `raw_decode` from the first brace) or tagged text (`Question:` /
`Answer:` sections, tolerant of markdown, case and aliases)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_DECODER = json.JSONDecoder()


def valid_unicode(text: str) -> str:
    """Model text as valid Unicode: lone surrogates (a server can send them as JSON escapes) become
    U+FFFD, since they can be written neither as UTF-8 (journals) nor into Parquet."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _valid_strings(obj: Any) -> Any:
    """Every string in a decoded JSON value as valid Unicode: a "\\ud800" escape decodes to a lone surrogate."""
    if isinstance(obj, str):
        return valid_unicode(obj)
    if isinstance(obj, list):
        return [_valid_strings(v) for v in obj]
    if isinstance(obj, dict):
        return {valid_unicode(str(k)): _valid_strings(v) for k, v in obj.items()}
    return obj


def parse_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        except RecursionError:  # "[[[[..." nested thousands deep: degenerate output, not a sample
            return None
        return _valid_strings(obj) if isinstance(obj, dict) else None  # type: ignore[no-any-return]
    return None


@lru_cache(maxsize=64)
def _tag_regex_for(tags: tuple[str, ...]) -> re.Pattern[str]:
    return _tag_regex(dict.fromkeys(tags, ""))


def _tag_regex(aliases: dict[str, str]) -> re.Pattern[str]:
    names = "|".join(sorted((re.escape(a) for a in aliases), key=len, reverse=True))
    words = "|".join(sorted((re.escape(a) for a in aliases if len(a) > 2), key=len, reverse=True))
    # "**Question:**", "### Answer:", "Q:" at the start of a line, or "... ? Answer: ..." inline
    return re.compile(rf"(?:^[ \t]*(?:[#>*_\-]+[ \t]*)?({names})|(?<=[.?!:\s])[ \t]*\**({words}))"
                      rf"[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*",
                      re.IGNORECASE | re.MULTILINE)


def parse_tagged(text: str, aliases: dict[str, str]) -> list[tuple[str, str]]:
    """Sections in order as (field, body); `aliases` maps a lower-case tag to its field name."""
    regex = _tag_regex_for(tuple(aliases))
    marks = list(regex.finditer(text))
    out: list[tuple[str, str]] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end():end].strip().strip("*_").strip()
        out.append((aliases[(m.group(1) or m.group(2)).lower()], body))
    return out


def strip_code_fence(text: str) -> str:
    m = re.search(r"```[\w+#.-]*\n(.*?)(?:```|$)", text, re.DOTALL)
    return m.group(1).rstrip() if m else text.strip()
