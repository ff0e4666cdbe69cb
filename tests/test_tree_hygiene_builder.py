"""Tree hygiene inside TreeBuilder (issue 15): a topic appears once in the whole tree, a child that
restates its path or drifts off it is re-asked with the reason, near-synonyms among siblings and
cousins are caught, the re-asks stay one engine call per round for the whole level, and the
per-reason counts survive a resume from tree.jsonl.

The scripted engine answers each node from a script (one answer per round it is asked in); the
embedding checks get hand-made vectors (no MiniLM in the fast tier; the one `slow` test at the end
runs the bundled MiniLM on the issue's examples)."""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from concept_vectors import concept_vectors as concepts_of
from fake_engine import FakeEngine, request_kind
from fake_model import topic_path

from topictree_hf.cli.common import print_tree_summary
from topictree_hf.config import TreeConfig
from topictree_hf.engines import ChatRequest
from topictree_hf.errors import ModelNotFoundError
from topictree_hf.tree.builder import TreeBuilder, embedding_checks
from topictree_hf.tree.drift import DriftChecker, DriftScore
from topictree_hf.tree.hygiene import topic_key
from topictree_hf.tree.model import TopicTree, node_id
from topictree_hf.tree.semantic import SemanticMatcher

Script = dict[str, list[list[str]]]  # topic -> its answer in round 1, 2, ... (the last one repeats)


def scripted(script: Script) -> FakeEngine:
    """An engine that answers a node's n-th request with the n-th answer of its script."""
    asked: Counter[str] = Counter()

    def respond(req: ChatRequest) -> str:
        assert request_kind(req) == "subtopics"
        topic = topic_path(req)[-1]
        answers = script[topic]
        answer = answers[min(asked[topic], len(answers) - 1)]
        asked[topic] += 1
        return json.dumps({"subtopics": answer})

    return FakeEngine(respond)


def children(tree: TopicTree, *path: str) -> list[str]:
    return [tree.nodes[c].topic for c in tree.children[node_id(list(path))]]


def prompt_for(engine: FakeEngine, call: int, topic: str) -> str:
    """The user prompt of the request for `topic` in engine call `call`."""
    for req in engine.calls[call]:
        if topic_path(req)[-1] == topic:
            return req.messages[-1]["content"]
    raise AssertionError(f"{topic} was not asked in call {call}")


def all_keys(tree: TopicTree) -> list[str]:
    return [topic_key(n.topic) for n in tree.nodes.values()]


# --- a topic appears once in the whole tree --------------------------------------------------------

# The issue's "Cultural Heritage" three times: once at level 1, again (plural) under "Border
# Disputes"; and one topic proposed by two parents of the same level.
DUPLICATES: Script = {
    "Historical Events": [["Cultural Heritage", "Border Disputes", "Ancient Egypt"]],
    "Cultural Heritage": [["Heritage Sites", "Oral Traditions", "Folk Dances"]],
    "Border Disputes": [["Cultural Heritages", "Partition of India", "Kashmir Conflict"], ["Boundary Treaties"]],
    "Ancient Egypt": [["Pharaohs", "Partition of India", "Pyramids"], ["Hieroglyphs"]],
}


def test_a_topic_is_kept_once_in_the_whole_tree_and_the_second_is_reasked() -> None:
    engine = scripted(DUPLICATES)
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3)).build("Historical Events")
    keys = all_keys(tree)
    assert len(keys) == len(set(keys)) == 13
    assert children(tree, "Historical Events", "Border Disputes") == [
        "Partition of India", "Kashmir Conflict", "Boundary Treaties"]
    assert children(tree, "Historical Events", "Ancient Egypt") == ["Pharaohs", "Pyramids", "Hieroglyphs"]
    # level 1, level 2, then ONE re-ask call for both short nodes of level 2
    assert [len(c) for c in engine.calls] == [1, 3, 2]
    border = prompt_for(engine, 2, "Border Disputes")
    assert "\"Cultural Heritages\" (duplicate in tree: 'Historical Events > Cultural Heritage')" in border
    egypt = prompt_for(engine, 2, "Ancient Egypt")
    assert ("\"Partition of India\" (duplicate in tree: 'Historical Events > Border Disputes > Partition of India')"
            in egypt)
    assert tree.hygiene == {"duplicate in tree": 2}
    assert tree.stats()["hygiene"] == {"duplicate in tree": 2}
    assert not tree.failures and tree.reasks == 1 and tree.engine_calls == 3


def test_what_is_history_and_what_history_is_collapse() -> None:
    engine = scripted({"Humanities": [["What is History?", "What History is?", "Philosophy"], ["Linguistics"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=1, degree=3)).build("Humanities")
    assert children(tree, "Humanities") == ["What is History?", "Philosophy", "Linguistics"]
    assert "\"What History is?\" (duplicate in tree: 'Humanities > What is History?')" in prompt_for(
        engine, 1, "Humanities")
    assert tree.hygiene == {"duplicate in tree": 1}


# --- restating the path ----------------------------------------------------------------------------


def test_history_under_historical_events_is_reasked_as_restating_the_root() -> None:
    engine = scripted({
        "Historical Events": [["History", "Cold War", "Space Race"], ["Industrial Revolution"]],
        "Cold War": [["Types of Cold War", "Berlin Wall", "Cuban Missile Crisis"], ["Arms Race"]],
        "Space Race": [["Moon Landing", "Sputnik", "Vostok Program"]],
        "Industrial Revolution": [["Steam Engines", "Textile Mills", "Railways"]],
    })
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3)).build("Historical Events")
    assert children(tree, "Historical Events") == ["Cold War", "Space Race", "Industrial Revolution"]
    assert "\"History\" (restates root: 'Historical Events')" in prompt_for(engine, 1, "Historical Events")
    assert children(tree, "Historical Events", "Cold War") == ["Berlin Wall", "Cuban Missile Crisis", "Arms Race"]
    assert "\"Types of Cold War\" (restates parent: 'Cold War')" in prompt_for(engine, 3, "Cold War")
    assert [len(c) for c in engine.calls] == [1, 1, 3, 1]
    assert tree.hygiene == {"restates parent": 1, "restates root": 1}
    assert "History" not in {n.topic for n in tree.nodes.values()}


# --- drift, batched per round ----------------------------------------------------------------------

# One dimension per concept; a text has the concepts whose stems it contains, plus a small shared
# dimension, so unrelated texts sit at a low cosine rather than zero.
_CONCEPTS = {
    "cuisine": ("cuisine", "food", "cook", "sushi", "curry", "stew", "kimchi"),
    "music": ("music",),
    "sport": ("sport",),
    "asia": ("asia", "japan", "thai", "korea"),
    "africa": ("afric", "morocc", "ethiopi", "nigeria"),
    "australia": ("australia", "vegemite"),
    "method": ("method", "technique"),
    "fry": ("fry", "frying"),
}


def concept_vectors(texts: Sequence[str]) -> np.ndarray:
    return concepts_of(_CONCEPTS, texts)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def concept_encode(texts: Sequence[str]) -> np.ndarray:
    return unit(concept_vectors(texts))


class CountingDrift(DriftChecker):
    """The real checker on concept vectors, recording each `score_level` batch."""

    def __init__(self) -> None:
        super().__init__(encode=concept_encode, anchors=("Music", "Sports", "Food and Cooking"))
        self.batches: list[list[str]] = []

    def score_level(self, items: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> list[DriftScore]:
        self.batches.append([child for child, _, _ in items])
        return super().score_level(items)


CUISINE: Script = {
    "World Cuisine": [["Asia", "Africa", "Australia"]],
    "Asia": [["Japanese Sushi", "African Stews", "Thai Curry"], ["Korean Kimchi"]],
    "Africa": [["Moroccan Tagine", "Ethiopian Injera", "Nigerian Jollof"]],
    "Australia": [["Bush Tucker", "Australia's Famous Music", "Meat Pies"], ["Vegemite on Toast"]],
}


def test_drifting_children_are_reasked_with_the_reason_in_one_batch_per_round() -> None:
    engine = scripted(CUISINE)
    drift = CountingDrift()
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3), drift=drift).build("World Cuisine")
    assert children(tree, "World Cuisine", "Asia") == ["Japanese Sushi", "Thai Curry", "Korean Kimchi"]
    assert children(tree, "World Cuisine", "Australia") == ["Bush Tucker", "Meat Pies", "Vegemite on Toast"]
    assert children(tree, "World Cuisine", "Africa") == ["Moroccan Tagine", "Ethiopian Injera", "Nigerian Jollof"]
    assert "\"African Stews\" (drift: belongs under 'Africa', not 'Asia')" in prompt_for(engine, 2, "Asia")
    assert ("\"Australia's Famous Music\" (drift: closer to 'Music' than to 'World Cuisine')"
            in prompt_for(engine, 2, "Australia"))
    assert [len(c) for c in engine.calls] == [1, 3, 2]  # the two drifting nodes re-asked in one call
    # one drift batch per round, each holding the whole level's candidates (all nodes together)
    assert [len(b) for b in drift.batches] == [3, 9, 2]
    assert sorted(drift.batches[2]) == ["Korean Kimchi", "Vegemite on Toast"]
    assert tree.hygiene == {"drift": 2}


def test_drift_and_near_synonyms_share_one_embedding_call_per_round() -> None:
    encode = CountingEncode()
    drift = DriftChecker(encode=encode, anchors=("Music", "Sports", "Food and Cooking"))
    similar = SemanticMatcher(0.88, encode=drift.vectors)  # what embedding_checks makes for both
    engine = scripted({**CUISINE, "Asia": [["Ramen Bowls", "African Stews", "Dim Sum"], ["Bibimbap"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3), similar=similar, drift=drift).build("World Cuisine")
    assert tree.hygiene == {"drift": 2}
    assert len(encode.calls) == engine.num_calls == 3  # not one per node, not one per check


def test_drift_is_not_checked_without_a_checker() -> None:
    tree = TreeBuilder(scripted(CUISINE), TreeConfig(depth=2, degree=3)).build("World Cuisine")
    assert "Australia's Famous Music" in children(tree, "World Cuisine", "Australia")
    assert tree.hygiene == {}


def test_candidates_the_word_checks_reject_are_not_embedded() -> None:
    drift = CountingDrift()
    TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3), drift=drift).build("Historical Events")
    assert "Cultural Heritages" not in drift.batches[1]  # a duplicate of a level-1 topic: never embedded
    assert "Partition of India" in drift.batches[1]


# --- near-synonyms among siblings and cousins ------------------------------------------------------


def synonym_encode(texts: Sequence[str]) -> np.ndarray:
    """Concepts plus one small dimension per word (32 hashed buckets): texts with the same concepts
    are near-synonyms ("Cooking Methods" / "Cooking Techniques" 0.96), texts without a shared
    concept are not (two concept-free texts ~0.3)."""
    words = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            words[row, zlib.crc32(word.encode()) % 32] += 0.3
    return unit(np.hstack([concept_vectors(texts), words]))


class CountingEncode:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return synonym_encode(texts)


def test_near_synonyms_of_siblings_and_cousins_are_reasked_with_one_embedding_call_per_round() -> None:
    engine = scripted({
        "World Cuisine": [["Asia", "Europe"]],
        "Asia": [["Cooking Methods", "Cooking Techniques"], ["Rice Dishes"]],
        "Europe": [["Stir Frying", "Cheese Making"]],
    })
    encode = CountingEncode()
    similar = SemanticMatcher(0.88, encode=encode)
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2), similar=similar).build("World Cuisine")
    assert children(tree, "World Cuisine", "Asia") == ["Cooking Methods", "Rice Dishes"]
    assert "\"Cooking Techniques\" (near-synonym: 'Cooking Methods')" in prompt_for(engine, 2, "Asia")
    assert children(tree, "World Cuisine", "Europe") == ["Stir Frying", "Cheese Making"]
    assert tree.hygiene == {"near-synonym": 1}
    # batched: one embedding call per round, the whole level's candidates in it
    assert len(encode.calls) == len(engine.calls) == 3
    assert {"Cooking Methods", "Cooking Techniques", "Stir Frying", "Cheese Making"} <= set(encode.calls[1])


def test_a_cousin_near_synonym_is_caught() -> None:
    engine = scripted({
        "World Cuisine": [["Asia", "Europe"]],
        "Asia": [["Stir Frying", "Rice Dishes"]],
        "Europe": [["Pan Frying", "Cheese Making"], ["Bread Baking"]],
    })
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2),
                       similar=SemanticMatcher(0.88, encode=synonym_encode)).build("World Cuisine")
    assert children(tree, "World Cuisine", "Europe") == ["Cheese Making", "Bread Baking"]
    assert "\"Pan Frying\" (near-synonym: 'Stir Frying')" in prompt_for(engine, 2, "Europe")
    assert tree.hygiene == {"near-synonym": 1}


# --- counts: journal, resume, tree file, summary ---------------------------------------------------


def test_counts_and_the_global_index_survive_a_resume_from_tree_jsonl(tmp_path: Path) -> None:
    whole = TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3)).build("Historical Events")
    journal = tmp_path / "tree.jsonl"
    TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=1, degree=3), journal=journal).build("Historical Events")
    engine = scripted(DUPLICATES)
    resumed = TreeBuilder(engine, TreeConfig(depth=2, degree=3), journal=journal).build("Historical Events")
    assert [len(c) for c in engine.calls] == [3, 2]  # level 1 replayed, not asked
    # "Cultural Heritages" is caught against a replayed level-1 node: the index was rebuilt
    assert "duplicate in tree: 'Historical Events > Cultural Heritage'" in prompt_for(engine, 1, "Border Disputes")
    assert resumed.to_dict() == whole.to_dict() and resumed.hygiene == {"duplicate in tree": 2}
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["hygiene"] for r in records] == [{}, {"duplicate in tree": 2}]
    # a third run replays both levels and asks nothing, with the same counts
    third = scripted(DUPLICATES)
    again = TreeBuilder(third, TreeConfig(depth=2, degree=3), journal=journal).build("Historical Events")
    assert third.num_calls == 0 and again.hygiene == {"duplicate in tree": 2}


def test_counts_accumulate_across_levels_in_a_resumed_build(tmp_path: Path) -> None:
    journal = tmp_path / "tree.jsonl"
    script: Script = {
        "Historical Events": [["History", "Cold War", "Space Race"], ["Industrial Revolution"]],
        **{t: [["Moon Landing", "Sputnik", "Vostok Program"]] for t in ("Cold War", "Space Race")},
        "Industrial Revolution": [["Steam Engines", "Textile Mills", "Railways"]],
    }
    TreeBuilder(scripted(script), TreeConfig(depth=1, degree=3), journal=journal).build("Historical Events")
    tree = TreeBuilder(scripted(script), TreeConfig(depth=2, degree=3, max_reasks=0, ragged=True),
                       journal=journal).build("Historical Events")
    # level 1: "History" restates the root; level 2: Space Race repeats Cold War's three (no re-asks left)
    assert tree.hygiene == {"restates root": 1, "duplicate in tree": 3}
    [failure] = tree.failures
    assert failure.path == ["Historical Events", "Space Race"] and "duplicate in tree" in failure.reason


def test_tree_file_keeps_the_counts_and_old_files_still_load(tmp_path: Path) -> None:
    tree = TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3)).build("Historical Events")
    tree.save(tmp_path / "topic_tree.json")
    loaded = TopicTree.load(tmp_path / "topic_tree.json")
    assert loaded.hygiene == {"duplicate in tree": 2} and loaded.stats() == tree.stats()
    data = json.loads((tmp_path / "topic_tree.json").read_text())
    del data["stats"]["hygiene"]  # a file written before the counts existed
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = TopicTree.load(tmp_path / "old.json")
    assert old.hygiene == {} and old.stats()["hygiene"] == {} and len(old.nodes) == len(tree.nodes)


def test_a_journal_written_before_the_counts_still_resumes(tmp_path: Path) -> None:
    journal = tmp_path / "tree.jsonl"
    TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=1, degree=3), journal=journal).build("Historical Events")
    [record] = [json.loads(line) for line in journal.read_text().splitlines()]
    del record["hygiene"]
    journal.write_text(json.dumps(record) + "\n")
    tree = TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3), journal=journal).build("Historical Events")
    assert tree.hygiene == {"duplicate in tree": 2} and len(tree.nodes) == 13


def test_summary_prints_one_hygiene_line_only_when_something_was_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    tree = TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3)).build("Historical Events")
    tree.hygiene["restates root"] = 1
    tree.hygiene["drift"] = 1
    print_tree_summary(tree.stats(), tree.failures)
    lines = capsys.readouterr().err.splitlines()
    assert "hygiene: re-asked 4 topics (2 duplicate in tree, 1 drift, 1 restates root)" in lines
    clean = TreeBuilder(scripted({"Humanities": [["Philosophy", "Linguistics"]]}),
                        TreeConfig(depth=1, degree=2)).build("Humanities")
    print_tree_summary(clean.stats(), clean.failures)
    assert not any(line.startswith("hygiene") for line in capsys.readouterr().err.splitlines())


# --- what the config turns on ----------------------------------------------------------------------


def test_embedding_checks_follow_the_config(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    def no_load() -> None:
        raise AssertionError("making the checks must not load the embedder (it loads on first use)")

    monkeypatch.setattr("topictree_hf.embeddings.Embedder.load", no_load)
    assert embedding_checks(TreeConfig(dedup="exact", drift=False)) == (None, None)
    similar, drift = embedding_checks(TreeConfig(dedup="exact", drift=True))
    assert similar is None and drift is DriftChecker.shared()  # one per process: anchors embedded once
    similar, drift = embedding_checks(TreeConfig(dedup="semantic", semantic_threshold=0.9, drift=False))
    assert isinstance(similar, SemanticMatcher) and similar.threshold == 0.9 and drift is None
    similar, drift = embedding_checks(TreeConfig(dedup="semantic", drift=True))
    assert isinstance(similar, SemanticMatcher) and drift is DriftChecker.shared()
    assert similar._encode == drift.vectors  # a text is embedded once for both checks

    def missing() -> Path:
        raise ModelNotFoundError("the bundled embedding model is not installed")

    monkeypatch.setattr("topictree_hf.embeddings.model_dir", missing)
    with caplog.at_level(logging.WARNING):
        assert embedding_checks(TreeConfig(dedup="semantic", drift=True)) == (None, None)
    assert "without embeddings" in caplog.text


def test_word_checks_never_load_an_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object) -> Callable[..., object]:
        raise AssertionError("the word checks must not embed")

    monkeypatch.setattr("topictree_hf.embeddings.Embedder.load", boom)
    tree = TreeBuilder(scripted(DUPLICATES), TreeConfig(depth=2, degree=3)).build("Historical Events")
    assert tree.hygiene == {"duplicate in tree": 2}


# --- the bundled MiniLM on the issue's examples ----------------------------------------------------


@pytest.mark.slow
def test_minilm_drift_and_duplicates_on_the_issue_examples() -> None:
    engine = scripted({
        "World Cuisine": [["Asia", "Africa", "Australia"]],
        "Asia": [["Japanese Cuisine", "African Cuisine", "Thai Street Food"], ["Korean Kimchi"]],
        "Africa": [["Moroccan Tagine", "Ethiopian Injera", "Nigerian Jollof Rice"]],
        "Australia": [["Bush Tucker", "Australia's Famous Music", "Meat Pies"], ["Vegemite on Toast"]],
    })
    similar, drift = SemanticMatcher(0.88), DriftChecker.shared()
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3), similar=similar, drift=drift).build("World Cuisine")
    assert "African Cuisine" not in children(tree, "World Cuisine", "Asia")
    assert "Australia's Famous Music" not in children(tree, "World Cuisine", "Australia")
    assert tree.hygiene == {"drift": 2} and not tree.failures
    assert [len(c) for c in engine.calls] == [1, 3, 2]
