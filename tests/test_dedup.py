"""Dedup on the generation side: one interface, one normalisation shared by the tree and eval; the
semantic check scoped to a branch, naming the kept text a rejected one is too close to."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from topictree_hf.config import GenerationConfig
from topictree_hf.dedup import (
    ExactDeduper,
    KeptText,
    NearDeduper,
    NoDeduper,
    make_deduper,
    normalize_text,
    snippet,
    text_key,
)
from topictree_hf.eval.lexical import exact_duplicate_flags
from topictree_hf.records import DUPLICATE, NEAR_DUPLICATE, SEMANTIC_DUPLICATE, failure_reason, reason_key
from topictree_hf.tree.clean import normalize

VARIANTS = ["The Roman Empire, in 27 BC!", "the  roman empire in 27 bc", "THE ROMAN EMPIRE — IN 27 BC."]


def test_one_normalisation_for_every_exact_duplicate_check() -> None:
    assert len({normalize_text(v) for v in VARIANTS}) == 1 and len({text_key(v) for v in VARIANTS}) == 1
    exact = ExactDeduper()
    assert [exact.check_and_add(v) for v in VARIANTS] == [None, DUPLICATE, DUPLICATE]
    assert exact_duplicate_flags(VARIANTS).tolist() == [False, True, True]
    assert len({normalize(v) for v in VARIANTS}) == 1  # the tree's key builds on it ...
    assert normalize("The Roman Empires") == normalize("roman empire")  # ... and also ignores articles, plurals
    assert normalize_text("The Roman Empires") != normalize_text("roman empire")


@pytest.mark.parametrize(("kind", "cls"), [("none", NoDeduper), ("exact", ExactDeduper), ("near", NearDeduper),
                                           ("semantic", NearDeduper)])
def test_make_deduper_follows_the_config(kind: str, cls: type) -> None:
    assert isinstance(make_deduper(GenerationConfig(dedup=kind)), cls)


def test_near_dedup_gives_record_reasons_and_remembers_journaled_texts() -> None:
    dedup = NearDeduper(0.8)
    text = "the legions marched along the roads from britain to syria every spring for many long years"
    dedup.remember([text])
    assert dedup.check_and_add(text.upper() + "!") == DUPLICATE
    assert dedup.check_and_add(text.replace("years", "decades")) == NEAR_DUPLICATE
    assert dedup.check_and_add("an entirely different sentence about bread and yeast and ovens") is None
    assert NoDeduper().check_and_add(text) is None


class Themes:
    """A stand-in embedder: every text that names a volcano points one way, any other text a random
    way of its own (seeded by the text). Records the size of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            if "volcano" in text.lower():
                out[i, 0] = 1.0
            else:
                v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(64)
                out[i] = v / np.linalg.norm(v)
        return out


ISLANDS, MOUNTAINS = ("Geology", "Islands"), ("Geology", "Mountains")
VOLCANO = "Why did the volcano above the old harbour town erupt in the spring of that year?"
PARAPHRASES = ["What made that volcano near the harbour blow up one spring?",
               "Which causes lay behind the volcano eruption that hit the coastal settlement?"]


def test_semantic_dedup_is_scoped_to_the_branch_and_names_the_near_sample() -> None:
    dedup = NearDeduper(0.8, semantic_threshold=0.9, embedder=Themes())
    assert dedup.embeds and not NearDeduper(0.8).embeds and not ExactDeduper().embeds
    assert dedup.check_and_add(VOLCANO + " Lava.", ISLANDS, label=VOLCANO) is None
    assert dedup.check_and_add(PARAPHRASES[0], MOUNTAINS) is None, "a near sample in another branch is kept"
    reason = dedup.check_and_add(PARAPHRASES[1], ISLANDS)
    assert reason == f'{SEMANTIC_DUPLICATE}: cosine 1.00 with a kept sample; different from: "{VOLCANO}"'
    assert reason_key(reason) == failure_reason(reason) == SEMANTIC_DUPLICATE, "one bucket in the counts"
    assert dedup.check_and_add(PARAPHRASES[1], ("Geology", "Rivers")) is None
    assert dedup.check_and_add((VOLCANO + " Lava.").upper(), MOUNTAINS) == DUPLICATE, "exact: across branches"
    assert dedup.check_and_add("an unrelated text about bread", ISLANDS) is None
    assert dedup.check_and_add(PARAPHRASES[1] + " Indeed.", None) is not None, "no branch: compared with all"


def test_a_semantic_reason_quotes_a_short_single_line() -> None:
    long_turn = 'He said "volcano"\n\n' + "lava flows and ash clouds " * 400
    dedup = NearDeduper(0.8, semantic_threshold=0.9, embedder=Themes())
    assert dedup.check_and_add(long_turn + " answer", ("R", "A"), label=long_turn) is None
    reason = dedup.check_and_add("a volcano again", ("R", "A"))
    assert reason is not None and len(reason) < 240 and "\n" not in reason
    quoted = reason.split('different from: "', 1)[1]
    assert quoted.endswith('..."') and '"' not in quoted[:-1] and quoted.startswith("He said 'volcano' lava")
    assert snippet("short  text\n") == "short text" and len(snippet("word " * 100, 40)) <= 43


def test_remember_puts_journaled_texts_in_their_branches_in_one_pass() -> None:
    embedder = Themes()
    dedup = NearDeduper(0.8, semantic_threshold=0.9, embedder=embedder)
    dedup.remember([KeptText(VOLCANO, ISLANDS, VOLCANO), KeptText("bread and ovens and yeast", MOUNTAINS)])
    assert embedder.calls == [2]
    assert dedup.check_and_add(PARAPHRASES[0], MOUNTAINS) is None
    assert "different from" in (dedup.check_and_add(PARAPHRASES[1], ISLANDS) or "")
    legacy = NearDeduper(0.8, semantic_threshold=0.9, embedder=Themes())
    legacy.remember([VOLCANO])  # a plain text (no branch) counts in every branch
    assert reason_key(legacy.check_and_add(PARAPHRASES[0], MOUNTAINS) or "") == SEMANTIC_DUPLICATE


def test_semantic_branches_with_the_real_model() -> None:
    dedup = NearDeduper(0.8, semantic_threshold=0.85)
    first = "How do black holes form from dying stars?"
    assert dedup.check_and_add(first, ("Science", "Astronomy"), label=first) is None
    vectors = dedup.embed(["How do dying stars turn into black holes?"] * 2 + ["How do I knead bread dough?"])
    assert dedup.check_and_add("How do dying stars turn into black holes?", ("Science", "Physics"),
                               vector=vectors[0]) is None
    reason = dedup.check_and_add("How do dying stars become black holes?", ("Science", "Astronomy"))
    assert reason is not None and reason.startswith(SEMANTIC_DUPLICATE) and f'"{first}"' in reason
    assert dedup.check_and_add("How do I knead bread dough?", ("Science", "Astronomy"), vector=vectors[2]) is None
