"""Dedup on the generation side: one interface, one normalisation shared by the tree and eval."""

from __future__ import annotations

import pytest

from topictree_hf.config import GenerationConfig
from topictree_hf.dedup import ExactDeduper, NearDeduper, NoDeduper, make_deduper, normalize_text, text_key
from topictree_hf.eval.lexical import exact_duplicate_flags
from topictree_hf.records import DUPLICATE, NEAR_DUPLICATE
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
