"""What a sample request is: the prompt for a task (its template rendered with the FULL root-to-leaf
path, the task's angle, and the reason a previous attempt was rejected), the sampling parameters
seeded from the task id and the attempt, and the layout the answer must have (a JSON schema, or
tagged text primed with the format's lead). Model-size defaults (`mode: auto`, the repetition
penalty) are decided here too, from the engine's parameter count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from topictree_hf.config import GenerationConfig
from topictree_hf.engines.base import ChatRequest, Engine, SamplingParams
from topictree_hf.generation.allocate import Task
from topictree_hf.generation.formats import Format, get_format
from topictree_hf.generation.stream import Job
from topictree_hf.generation.templates import Template

GEN_SYSTEM = "You write accurate, specific training examples. Follow the requested layout exactly."
SMALL_MODEL_PARAMS = 1_000_000_000
# generation.repetition_penalty: None under SMALL_MODEL_PARAMS: on the bundled 135M model it nearly doubled the
# valid share on model-built trees, 1.1 made it loop more (docs/quality.md, "Looping at max_tokens")
SMALL_MODEL_REPETITION_PENALTY = 1.05
NAIVE_ANGLE = "any aspect of the topic"


def resolve_mode(mode: str, engine: Engine) -> str:
    """`auto`: tagged text for small models (they write worse text under a JSON grammar), JSON otherwise."""
    if mode != "auto":
        return mode
    params = engine.parameter_count
    return "text" if params is not None and params < SMALL_MODEL_PARAMS else "json"


def resolve_repetition_penalty(value: float | None, engine: Engine) -> float | None:
    """`generation.repetition_penalty`; None: SMALL_MODEL_REPETITION_PENALTY for a model under 1B
    parameters, none otherwise (and for a model of unknown size). 1.0 means none (None)."""
    if value is None:
        params = engine.parameter_count
        value = SMALL_MODEL_REPETITION_PENALTY if params is not None and params < SMALL_MODEL_PARAMS else 1.0
    return None if value == 1.0 else value


def check_generation(gen: GenerationConfig) -> None:
    """Load every format and template once, so a bad template or schema fails before a model loads."""
    for fmt in gen.formats:
        get_format(fmt, gen.custom)
        load_template(gen, fmt)


def load_template(gen: GenerationConfig, fmt: str) -> Template:
    if fmt == "custom":
        assert gen.custom is not None
        return Template("custom", gen.custom.template, "generation.custom.template")
    return Template.load(fmt, gen.templates.get(fmt))


def seed_of(key: str) -> int:
    """A request's seed, from a stable key (task id and attempt)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


class Prompts:
    """The sample requests of one config on one engine. `generation.angles: false` gives every sample
    one fixed angle, as repeated prompting does."""

    def __init__(self, gen: GenerationConfig, engine: Engine) -> None:
        self.gen = gen
        self.mode = resolve_mode(gen.mode, engine)
        self.formats: dict[str, Format] = {f: get_format(f, gen.custom) for f in gen.formats}
        self.templates = {f: load_template(gen, f) for f in gen.formats}
        self.schemas = {f: fmt.schema(gen.chat_turns) for f, fmt in self.formats.items()}
        self.fixed_angle = not gen.angles
        self.repetition_penalty = resolve_repetition_penalty(gen.repetition_penalty, engine)
        self.items: Callable[[str, int], str | None] | None = None  # a task's planned item (generation.plan)

    def angle(self, task: Task) -> str:
        return NAIVE_ANGLE if self.fixed_angle else task.angle

    def item(self, task: Task) -> str | None:
        return self.items(task.leaf_id, task.index) if self.items is not None else None

    def messages(self, task: Task, reason: str | None = None) -> list[dict[str, str]]:
        item = self.item(task)
        context = {"path": list(task.path), "root": task.path[0], "leaf": task.path[-1], "angle": self.angle(task),
                   "instructions": self.gen.instructions, "mode": self.mode, "turns": self.gen.chat_turns,
                   "language": None, "index": task.index, "item": item}
        template = self.templates[task.format]
        text = template.render(context)
        if item and not template.uses_item:  # a custom template that does not place the item itself
            text += f"\nWrite it about this: {item}"
        if reason:
            text += f"\nA previous attempt was rejected ({reason}); write a better one."
        messages = [{"role": "system", "content": GEN_SYSTEM}, {"role": "user", "content": text}]
        if self.mode == "text":  # prime the layout: small models follow a started answer far better
            messages.append({"role": "assistant", "content": self.formats[task.format].lead})
        return messages

    def request(self, job: Job) -> ChatRequest:
        """The sample request for attempt `job.attempt` at `job.task`, seeded from both."""
        gen = self.gen
        params = SamplingParams(gen.temperature, gen.top_p, gen.max_tokens, seed_of(f"{job.task.id}|{job.attempt}"),
                                repetition_penalty=self.repetition_penalty)
        schema = self.schemas[job.task.format] if self.mode == "json" else None
        return ChatRequest(self.messages(job.task, job.reason), params, schema)
