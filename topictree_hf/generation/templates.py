"""Prompt templates: Jinja in an immutable sandbox with strict undefined variables.

Built-in templates ship as package data (topictree_hf/resources/templates/<format>.jinja); the
config can point a format at its own file, or give an inline template for `custom`. A template is
rendered once on a probe context before any generation, so a typo fails at start, not mid-run.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from topictree_hf.errors import ConfigError

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
PROBE = {"path": ["Root", "Branch", "Leaf"], "root": "Root", "leaf": "Leaf", "angle": "a probe",
         "instructions": None, "mode": "json", "turns": 2, "language": None, "index": 0,
         "item": None}


def builtin_source(name: str) -> str:
    return resources.files("topictree_hf").joinpath(f"resources/templates/{name}.jinja").read_text(encoding="utf-8")


class Template:
    def __init__(self, name: str, source: str, origin: str) -> None:
        self.name = name
        self.source = source
        self.origin = origin
        try:
            self._tpl = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template {origin} line {exc.lineno}: {exc.message}; fix the template") from None
        probe = self.render(PROBE)
        self.uses_item = "item" in source  # generation.plan: a template without it gets the item appended
        self.static_sentences = _static_sentences(probe)

    @classmethod
    def load(cls, fmt: str, override: str | None = None) -> Template:
        if override is None:
            return cls(fmt, builtin_source(fmt), f"built-in {fmt}")
        path = Path(override)
        try:
            return cls(path.stem, path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise ConfigError(f"template file {path} for format {fmt} does not exist; fix generation.templates")\
                from None
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"cannot read template file {path}; pass a UTF-8 text file") from None

    def render(self, context: dict[str, Any]) -> str:
        try:  # a shared context skips merging the (empty) globals: a third of the render time
            return "".join(self._tpl.root_render_func(self._tpl.new_context(context, shared=True))).strip()
        except jinja2.UndefinedError as exc:
            known = ", ".join(sorted(PROBE))
            raise ConfigError(f"template {self.origin}: {exc.message}; available variables: {known}") from None
        except SecurityError as exc:
            raise ConfigError(f"template {self.origin} tried an unsafe operation ({exc}); templates are sandboxed")\
                from None
        except jinja2.TemplateError as exc:
            raise ConfigError(f"template {self.origin} failed to render ({exc}); fix the template") from None


def _static_sentences(probe: str) -> tuple[str, ...]:
    """Instruction sentences of the template that do not depend on the sample (no probe values):
    a sample that repeats one has copied its instructions."""
    out = []
    for line in probe.lower().splitlines():
        for sentence in re.split(r"(?<=[.;])\s+", line):
            sentence = " ".join(sentence.split()).rstrip(".;")
            if len(sentence) >= 24 and not any(v in sentence for v in ("root", "leaf", "branch", "probe", "{")):
                out.append(sentence)
    return tuple(out)
