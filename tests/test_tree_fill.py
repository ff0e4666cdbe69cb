"""Filling a level and pruning what stops early (issue 22, part 8): every tree call asks for
`tree.spare` more candidates than needed and keeps the first valid ones; a re-ask names the topics
the whole level already holds; a node still short gets one last, wider prompt; a node left without
children (a leaf above the depth asked) is pruned, its parent too if that empties it, unless
`tree.ragged` keeps it. Pruned nodes are journaled, replayed on resume, saved in topic_tree.json and
counted (`TopicTree.pruned`, `stats()["pruned"]`); the sample allocation spreads over what remains."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from fake_engine import FakeEngine, request_kind
from fake_model import subtopic_count, topic_path

from topictree_hf.config import GenerationConfig, TreeConfig
from topictree_hf.engines import ChatRequest
from topictree_hf.generation.allocate import leaf_order
from topictree_hf.tree.builder import TreeBuilder
from topictree_hf.tree.model import TopicTree, node_id

Script = dict[str, list[list[str]]]  # topic -> its answer in round 1, 2, ... (the last one repeats)


def scripted(script: Script, default: bool = True) -> FakeEngine:
    """Answers a node's n-th request with the n-th answer of its script; a topic not in the script
    (when `default`) gets distinct children coded after it ("Zone A" -> "Zone AA", "Zone AB", ...)."""
    asked: Counter[str] = Counter()

    def respond(req: ChatRequest) -> str:
        assert request_kind(req) == "subtopics"
        topic = topic_path(req)[-1]
        if topic not in script:
            assert default, topic
            code = topic.split()[-1]
            return json.dumps({"subtopics": [f"Zone {code}{chr(65 + i)}" for i in range(subtopic_count(req))]})
        answers = script[topic]
        answer = answers[min(asked[topic], len(answers) - 1)]
        asked[topic] += 1
        return json.dumps({"subtopics": answer})

    return FakeEngine(respond)


def prompt_for(engine: FakeEngine, call: int, topic: str) -> str:
    for req in engine.calls[call]:
        if topic_path(req)[-1] == topic:
            return req.messages[-1]["content"]
    raise AssertionError(f"{topic} was not asked in call {call}")


def children(tree: TopicTree, *path: str) -> list[str]:
    return [tree.nodes[c].topic for c in tree.children[node_id(list(path))]]


# --- more candidates than needed; the level's topics in a re-ask ------------------------------------


def test_each_call_asks_for_spare_candidates_and_keeps_the_first_valid_ones() -> None:
    engine = scripted({"Ancient Egypt": [["Pharaohs", "Ancient Egypt", "Pyramids", "Pharaohs", "Hieroglyphs"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=1, degree=3, spare=2)).build("Ancient Egypt")
    assert children(tree, "Ancient Egypt") == ["Pharaohs", "Pyramids", "Hieroglyphs"]
    assert engine.num_calls == 1 and tree.reasks == 0  # two bad candidates, still no re-ask
    schema = engine.calls[0][0].json_schema
    assert schema["properties"]["subtopics"]["minItems"] == schema["properties"]["subtopics"]["maxItems"] == 5
    assert "List 5 distinct subtopics" in engine.calls[0][0].messages[-1]["content"]


def test_surplus_valid_candidates_are_dropped_in_order() -> None:
    engine = scripted({"Root": [["Alpha Topic", "Beta Topic", "Gamma Topic", "Delta Topic"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=1, degree=2, spare=2)).build("Root")
    assert children(tree, "Root") == ["Alpha Topic", "Beta Topic"]
    assert tree.hygiene == {}  # a surplus candidate is not a rejection


def test_a_reask_names_the_topics_the_whole_level_holds() -> None:
    engine = scripted({
        "Historical Events": [["Cold War", "Space Race", "Industrial Revolution"]],
        "Cold War": [["Berlin Wall", "Cuban Missile Crisis", "Arms Race"]],
        "Space Race": [["Moon Landing", "Berlin Wall", "Sputnik"], ["Vostok Program"]],
        "Industrial Revolution": [["Steam Engines", "Textile Mills", "Railways"]],
    })
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3, spare=0)).build("Historical Events")
    assert children(tree, "Historical Events", "Space Race") == ["Moon Landing", "Sputnik", "Vostok Program"]
    first = prompt_for(engine, 1, "Space Race")
    assert "Already taken elsewhere" not in first  # the first round: nothing of the level is taken yet
    reask = prompt_for(engine, 2, "Space Race")
    taken = reask.split("Already taken elsewhere in the tree (do not use): ")[1].splitlines()[0]
    # the cousins' topics, not only the siblings' (named on their own line), and not its own children
    for topic in ("Berlin Wall", "Cuban Missile Crisis", "Steam Engines"):
        assert topic in taken
    assert "do not overlap with: Cold War; Industrial Revolution" in reask
    assert "Moon Landing" not in taken and "Already listed (do not repeat): Moon Landing; Sputnik" in reask
    assert "duplicate in tree: 'Historical Events > Cold War > Berlin Wall'" in reask


# --- the last wide try, then pruning -----------------------------------------------------------------

STOPS: Script = {
    "Root": [["Zone A", "Zone B", "Zone C"]],
    "Zone B": [["Root"]],  # never a valid child: every re-ask and the wide try fail
}


def test_a_node_left_without_children_is_pruned_after_one_wider_try() -> None:
    engine = scripted(STOPS)
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3, max_reasks=1)).build("Root")
    # level 2: the first ask, one re-ask, then the wide try, each with Zone B alone
    assert [len(c) for c in engine.calls] == [1, 3, 1, 1]
    wide = prompt_for(engine, 3, "Zone B")
    assert "Any part of \"Zone B\" will do" in wide and "Rejected before" not in wide
    assert "Any part of" not in prompt_for(engine, 2, "Zone B")
    assert node_id(["Root", "Zone B"]) not in tree.nodes
    assert children(tree, "Root") == ["Zone A", "Zone C"]
    assert all(len(path) == 3 for path in tree.leaf_paths())  # every path has the depth asked
    [pruned] = tree.pruned
    assert pruned.path == ["Root", "Zone B"] and pruned.reason.startswith("stopped above the depth asked: got 0 of 3")
    assert tree.stats()["pruned"] == 1 and tree.stats()["nodes_per_level"] == [1, 2, 6]
    assert all(f.node != pruned.node for f in tree.failures)  # the pruned node is not also "short"
    assert tree.reasks == 2 and tree.engine_calls == 4


def test_ragged_keeps_the_short_branch_without_the_wide_try() -> None:
    engine = scripted(STOPS)
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3, max_reasks=1, ragged=True)).build("Root")
    assert [len(c) for c in engine.calls] == [1, 3, 1]
    assert ["Root", "Zone B"] in list(tree.leaf_paths()) and not tree.pruned
    assert tree.stats()["pruned"] == 0 and [f.path for f in tree.failures] == [["Root", "Zone B"]]


def test_a_parent_emptied_by_pruning_is_pruned_too() -> None:
    engine = scripted({
        "Root": [["Zone A", "Zone B"]],
        "Zone B": [["Bronze Tools", "Root"]],  # one valid child only: short, not pruned at level 2
        "Bronze Tools": [["Root"]],  # no child at all: pruned at level 3, and Zone B with it
    })
    tree = TreeBuilder(engine, TreeConfig(depth=3, degree=2, max_reasks=0)).build("Root")
    assert [p.path for p in tree.pruned] == [["Root", "Zone B", "Bronze Tools"], ["Root", "Zone B"]]
    assert tree.pruned[1].reason == "every child pruned"
    assert children(tree, "Root") == ["Zone A"]
    assert all(len(path) == 4 for path in tree.leaf_paths())
    assert not any(f.node == node_id(["Root", "Zone B"]) for f in tree.failures)


def test_the_root_is_never_pruned() -> None:
    engine = scripted({"Root": [["Root"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2, max_reasks=0)).build("Root")
    assert list(tree.nodes) == [tree.root_id] and not tree.pruned
    assert [f.path for f in tree.failures] == [["Root"]]


def test_a_root_emptied_by_pruning_stays_and_says_why() -> None:
    engine = scripted({"Root": [["Zone A", "Zone B"]], "Zone A": [["Root"]], "Zone B": [["Root"]]})
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2, max_reasks=0)).build("Root")
    assert [p.path for p in tree.pruned] == [["Root", "Zone A"], ["Root", "Zone B"]]
    assert list(tree.nodes) == [tree.root_id]
    assert [(f.path, f.reason) for f in tree.failures] == [(["Root"], "every child pruned")]


# --- journal, resume, tree file, allocation ----------------------------------------------------------


def test_pruned_nodes_are_journaled_and_replayed_on_resume(tmp_path: Path) -> None:
    whole = TreeBuilder(scripted(STOPS), TreeConfig(depth=3, degree=3, max_reasks=1)).build("Root")
    journal = tmp_path / "tree.jsonl"
    TreeBuilder(scripted(STOPS), TreeConfig(depth=2, degree=3, max_reasks=1), journal=journal).build("Root")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [len(r["pruned"]) for r in records] == [0, 1]
    assert records[1]["pruned"][0]["path"] == ["Root", "Zone B"]
    assert any(r["topic"] == "Root" and r["parent"] == node_id(["Root", "Zone B"]) for r in records[1]["rejected"])
    engine = scripted(STOPS)
    resumed = TreeBuilder(engine, TreeConfig(depth=3, degree=3, max_reasks=1), journal=journal).build("Root")
    assert [len(c) for c in engine.calls] == [6]  # level 3 only, for the six nodes that remain
    assert resumed.to_dict() == whole.to_dict() and resumed.stats()["pruned"] == 1


def test_the_tree_file_keeps_the_pruned_nodes_and_old_files_still_load(tmp_path: Path) -> None:
    tree = TreeBuilder(scripted(STOPS), TreeConfig(depth=2, degree=3, max_reasks=1)).build("Root")
    tree.save(tmp_path / "topic_tree.json")
    data = json.loads((tmp_path / "topic_tree.json").read_text())
    assert data["pruned"] == [{"node": node_id(["Root", "Zone B"]), "path": ["Root", "Zone B"],
                               "reason": tree.pruned[0].reason}]
    assert data["stats"]["pruned"] == 1
    loaded = TopicTree.load(tmp_path / "topic_tree.json")
    assert loaded.to_dict() == tree.to_dict() and len(loaded.pruned) == 1
    del data["pruned"], data["stats"]["pruned"]  # a file written before issue 22
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = TopicTree.load(tmp_path / "old.json")
    assert old.pruned == [] and old.stats()["pruned"] == 0


def test_the_samples_of_a_pruned_branch_go_to_the_other_leaves() -> None:
    tree = TreeBuilder(scripted(STOPS), TreeConfig(depth=2, degree=3, max_reasks=1)).build("Root")
    order = leaf_order(tree, GenerationConfig(num_samples=60))
    assert len(order) == 6 and sum(count for *_, count in order) == 60
    assert all(len(path) == 3 for _, path, _ in order)  # no sample is built on the short path
