"""The scripted model of the test suite: it answers by request kind (`fake_engine.request_kind`: tree
expansions, samples of every built-in format, in JSON and tagged-text mode) from the request's topic
path, schema and seed alone, so two runs of one config give byte-identical results.

LLM judge requests (kind "judge") get a JSON score: 4, or with `flaky` 2 for about a quarter of the
examples (by a hash of the example), so a judged run sees rejections, retries and top-ups.

The topic path is read from the "Topic path: A > B" line that every tree and sample prompt starts
with (the product's contract: the path reaches every prompt); the number of subtopics from the
request's JSON schema. Nothing else of the prompt wording is read.

    FakeModel(flaky=True)    a third of the answers (by seed) are junk: re-asks, retries and a few
                             samples that fail for good, as a real small model gives
    FakeModel(delay=0.05)    sleep that long per request (time to kill a run from outside)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time

from fake_engine import FakeEngine, request_kind

from topictree_hf.engines import ChatRequest, register_backend

ADJECTIVES = ("Ancient", "Coastal", "Northern", "Rural", "Urban", "Royal", "Maritime", "Sacred", "Early", "Late",
              "Southern", "Imperial", "Frontier", "Civic", "Colonial", "Nomadic", "Alpine")  # 17: prime
NOUNS = ("Trade", "Warfare", "Law", "Farming", "Music", "Medicine", "Architecture", "Diplomacy", "Religion",
         "Navigation", "Metallurgy", "Pottery", "Astronomy", "Writing", "Festivals", "Coinage", "Textiles", "Roads",
         "Schools")
WORDS = ("river", "harbour", "grain", "tax", "council", "bridge", "scroll", "temple", "market", "bronze", "horse",
         "canal", "census", "garrison", "ledger", "lamp", "orchard", "quarry", "treaty", "well", "kiln", "loom",
         "salt", "copper", "archive", "festival", "oath", "harvest", "caravan", "lighthouse", "mint", "forum")


def topic_path(req: ChatRequest) -> list[str]:
    """The request's topic path, from the "Topic path: A > B" line its prompt carries ([] if none)."""
    prompt = next((m["content"] for m in reversed(req.messages) if m["role"] == "user"), "")
    match = re.search(r"^Topic path: (.*)$", prompt, re.MULTILINE)
    return match.group(1).split(" > ") if match else []


def subtopic_count(req: ChatRequest) -> int:
    """How many subtopics a tree request asks for (its schema's exact array length)."""
    assert req.json_schema is not None, "tree requests carry a schema"
    return int(req.json_schema["properties"]["subtopics"]["maxItems"])


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


class FakeModel:
    def __init__(self, flaky: bool = False, delay: float = 0.0) -> None:
        self.flaky = flaky
        self.delay = delay

    def __call__(self, req: ChatRequest) -> str:
        if self.delay:
            time.sleep(self.delay)
        if request_kind(req) == "subtopics":
            return self.subtopics(req)
        if request_kind(req) == "judge":
            return self.judgement(req)
        if request_kind(req) == "plan":
            return self.plan(req)
        return self.sample(req)

    def plan(self, req: ChatRequest) -> str:
        """A leaf plan's items (generation.plan): one question a slot, words drawn from the seed."""
        rng = random.Random(req.sampling.seed or 0)
        leaf, count = topic_path(req)[-1], int(req.json_schema["properties"]["items"]["minItems"])
        return json.dumps({"items": [f"How does the {rng.choice(WORDS)} {rng.choice(WORDS)} of {leaf} shape "
                                     f"{rng.choice(WORDS)} {rng.choice(WORDS)}?" for _ in range(count)]})

    def judgement(self, req: ChatRequest) -> str:
        """The LLM judge's answer: 4, or (flaky) 2 for about a quarter of the examples (by their text)."""
        example = req.messages[-1]["content"]
        if self.flaky and _hash(example) % 4 == 0:
            return json.dumps({"score": 2, "reason": "vague and partly off topic"})
        return json.dumps({"score": 4, "reason": "specific and on topic"})

    def subtopics(self, req: ChatRequest) -> str:
        seed = req.sampling.seed or 0
        if self.flaky and seed % 5 == 0:
            return "Sure! Here are some ideas for you."
        topic, count = topic_path(req)[-1], subtopic_count(req)
        h = _hash(topic, seed)
        names = [f"{ADJECTIVES[(h + 7 * i) % len(ADJECTIVES)]} {NOUNS[(h // 31 + i) % len(NOUNS)]}"
                 for i in range(count)]
        return json.dumps({"subtopics": names})

    def sample(self, req: ChatRequest) -> str:
        seed = req.sampling.seed or 0
        if self.flaky and seed % 3 == 0:
            return "I am sorry, I cannot help with that."
        leaf = (topic_path(req) or ["the topic"])[-1]
        rng = random.Random(seed)

        def text(kind: str) -> str:
            return f"{kind} on {leaf}: " + " ".join(rng.choice(WORDS) for _ in range(14)) + "."

        if req.json_schema is not None:
            props = req.json_schema["properties"]
            if "turns" in props:
                n = props["turns"]["minItems"]
                return json.dumps({"turns": [{"user": text("Ask") + "?", "assistant": text("Reply")}
                                             for _ in range(n)]})
            return json.dumps({k: ("python" if k == "language" else text(k.capitalize())) for k in props})
        lead = req.messages[-1]["content"]
        if lead == "Question:":
            return f" {text('Question')}?\nAnswer: {text('Answer')}"
        if lead == "Instruction:":
            return f" {text('Task')}\nInput:\nOutput: {text('Output')}"
        if lead == "User:":
            return f" {text('Ask')}?\nAssistant: {text('Reply')}\nUser: {text('More')}?\nAssistant: {text('Then')}"
        return f" {text('Task')}\nLanguage: Python\nSolution:\n```python\nprint({seed})\n```"


def register_fake(flaky: bool = False, delay: float = 0.0, name: str = "fake") -> FakeEngine:
    """Register a FakeModel engine as backend `name` through the real registry; returns the engine."""
    engine = FakeEngine(FakeModel(flaky, delay), model_name="fake-model")
    register_backend(name, lambda _cfg: engine)
    return engine
