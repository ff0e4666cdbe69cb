"""TreeBuilder with the scripted engine: batching per level, cleaning, dedup, re-asks, failures, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engine import FakeEngine, request_kind
from fake_model import subtopic_count, topic_path

from topictree_hf.config import TreeConfig
from topictree_hf.engines import ChatRequest
from topictree_hf.errors import InputFileError
from topictree_hf.tree.builder import TreeBuilder
from topictree_hf.tree.clean import clean_topic, judge, normalize, parse_subtopics
from topictree_hf.tree.io import export_paths, import_outline, import_paths, load_any
from topictree_hf.tree.model import TopicTree, node_id
from topictree_hf.tree.render import render_png, render_text


def topic_of(req: ChatRequest) -> str:
    assert request_kind(req) == "subtopics"
    return topic_path(req)[-1]


def count_of(req: ChatRequest) -> int:
    return subtopic_count(req)


def good(req: ChatRequest) -> str:
    """Distinct, specific children that pass tree hygiene: "Root" -> "Zone A", "Zone B"; "Zone B" ->
    "Zone BA", "Zone BB" (one new code word each, so no key repeats anywhere in the tree)."""
    topic = topic_of(req)
    code = "" if topic == "Root" else topic.split()[-1]
    return json.dumps({"subtopics": [f"Zone {code}{chr(65 + i)}" for i in range(count_of(req))]})


def test_clean_topic_strips_list_markup() -> None:
    assert clean_topic("1. **Roman Empire**") == "Roman Empire"
    assert clean_topic("  - 'World War II'  ") == "World War II"
    assert clean_topic("(a) Ancient   Egypt.") == "Ancient Egypt"
    assert clean_topic("\u2022 \u201cThe Cold War\u201d") == "The Cold War"


def test_normalize_ignores_case_articles_and_plurals() -> None:
    assert normalize("The Roman Empires") == normalize("roman empire")
    assert normalize("World War I") != normalize("World War II")


def test_judge_rejects_with_reasons() -> None:
    verdict = judge(["History", "Roman Empire", "roman empire", "", "subtopic_1_for_x", "x" * 90, "Egypt Egypt now",
                     "Greece"], ["Historical Events", "History"], [], 3, 80, 2)
    assert verdict.accepted == ["Roman Empire", "Greece"]
    reasons = dict(verdict.rejected)
    assert reasons["History"] == "same as parent or ancestor"
    assert reasons["roman empire"] == "duplicate sibling"
    assert reasons[""] == "empty"
    assert reasons["subtopic_1_for_x"] == "placeholder"
    assert reasons["x" * 90].startswith("length")
    assert reasons["Egypt Egypt now"] == "repeated word"


def test_judge_semantic_hook_sees_siblings() -> None:
    seen = []

    def similar(topic: str, others: list[str]) -> str | None:
        seen.append(list(others))
        return "Roman Empire" if topic == "Rome's Empire" else None

    verdict = judge(["Roman Empire", "Rome's Empire", "Greece"], ["Root"], [], 3, 80, 3, similar)
    assert verdict.accepted == ["Roman Empire", "Greece"]
    assert ("Rome's Empire", "too close to 'Roman Empire'") in verdict.rejected
    assert seen[1] == ["Roman Empire"]


def test_parse_subtopics_tolerates_trailing_text() -> None:
    assert parse_subtopics('Sure! {"subtopics": ["A b", "C d"]} hope this helps {') == ["A b", "C d"]
    assert parse_subtopics("no json") is None
    assert parse_subtopics('{"topics": []}') is None


def test_one_engine_call_per_level() -> None:
    engine = FakeEngine(good)
    tree = TreeBuilder(engine, TreeConfig(depth=3, degree=4)).build("Root")
    assert engine.num_calls == 3
    assert [len(c) for c in engine.calls] == [1, 4, 16]
    assert tree.stats()["nodes_per_level"] == [1, 4, 16, 64]
    assert len(tree.leaves()) == 64 and not tree.failures
    assert tree.engine_calls == 3 and tree.reasks == 0


def test_prompt_carries_full_path_and_siblings() -> None:
    engine = FakeEngine(good)
    TreeBuilder(engine, TreeConfig(depth=2, degree=2)).build("Root")
    prompt = engine.calls[1][0].messages[-1]["content"]
    assert "Topic path: Root > Zone A" in prompt
    assert "Zone B" in prompt  # the sibling, so children differ from cousins
    schema = engine.calls[1][0].json_schema
    assert schema["properties"]["subtopics"]["minItems"] == 2 + 2  # the degree plus `tree.spare` candidates


def test_short_nodes_are_reasked_together_and_failures_become_leaves() -> None:
    def responder(req: ChatRequest) -> str:
        topic = topic_of(req)
        if topic == "Zone A":  # always duplicates: never reaches the degree
            return json.dumps({"subtopics": ["Same thing"] * count_of(req)})
        if topic == "Zone B" and count_of(req) == 3:  # short the first time only
            return json.dumps({"subtopics": ["Bronze Tools", "Bronze Tools", "Root"]})
        return good(req)

    engine = FakeEngine(responder)
    # spare=0: each call asks for exactly what is missing; ragged: no last wide try, no pruning
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=3, max_reasks=2, spare=0, ragged=True)).build("Root")
    assert engine.num_calls == 2 + tree.reasks
    assert [len(c) for c in engine.calls] == [1, 3, 2, 1]  # level 2, then re-asks for A+B, then A alone
    a = node_id(["Root", "Zone A"])
    b = node_id(["Root", "Zone B"])
    assert len(tree.children[b]) == 3
    assert [tree.nodes[c].topic for c in tree.children[a]] == ["Same thing"]
    [failure] = tree.failures
    assert failure.node == a and "got 1 of 3" in failure.reason and "duplicate sibling" in failure.reason
    reask = engine.calls[2][1].messages[-1]["content"]
    assert "Already listed (do not repeat): Bronze Tools" in reask and "same as parent or ancestor" in reask


def test_with_ragged_a_node_with_no_valid_children_becomes_a_recorded_leaf() -> None:
    engine = FakeEngine(lambda req: "I cannot answer that" if topic_of(req) == "Zone A" else good(req))
    tree = TreeBuilder(engine, TreeConfig(depth=2, degree=2, max_reasks=1, ragged=True)).build("Root")
    a = node_id(["Root", "Zone A"])
    assert tree.children[a] == []
    assert tree.failures[0].node == a and "not JSON" in tree.failures[0].reason
    assert all("placeholder" not in n.topic for n in tree.nodes.values())
    assert ["Root", "Zone A"] in list(tree.leaf_paths())


def test_resume_after_last_complete_level(tmp_path: Path) -> None:
    journal = tmp_path / "tree.jsonl"
    first = FakeEngine(good)
    TreeBuilder(first, TreeConfig(depth=1, degree=3), journal=journal).build("Root")
    with journal.open("a") as fh:
        fh.write('{"level": 1, "children": [{"parent"')  # a crash mid-write
    second = FakeEngine(good)
    tree = TreeBuilder(second, TreeConfig(depth=2, degree=3), journal=journal).build("Root")
    assert second.num_calls == 1 and len(second.calls[0]) == 3  # only level 2 was asked
    assert tree.stats()["nodes_per_level"] == [1, 3, 9]
    third = FakeEngine(good)
    again = TreeBuilder(third, TreeConfig(depth=2, degree=3), journal=journal).build("Root")
    assert third.num_calls == 0 and again.to_dict()["nodes"] == tree.to_dict()["nodes"]


def test_seeded_requests_are_reproducible() -> None:
    a, b = FakeEngine(good), FakeEngine(good)
    TreeBuilder(a, TreeConfig(depth=2, degree=2), seed=7).build("Root")
    TreeBuilder(b, TreeConfig(depth=2, degree=2), seed=7).build("Root")
    assert [r.sampling.seed for c in a.calls for r in c] == [r.sampling.seed for c in b.calls for r in c]


def test_tree_file_round_trip_and_ids(tmp_path: Path) -> None:
    tree = TreeBuilder(FakeEngine(good), TreeConfig(depth=2, degree=2)).build("Root")
    tree.save(tmp_path / "t.json")
    loaded = TopicTree.load(tmp_path / "t.json")
    assert loaded.to_dict() == tree.to_dict()
    for node in loaded.nodes.values():
        assert node.id == node_id(loaded.path(node.id))


def test_paths_jsonl_and_outline_import_export(tmp_path: Path) -> None:
    tree = TreeBuilder(FakeEngine(good), TreeConfig(depth=2, degree=2)).build("Root")
    n = export_paths(tree, tmp_path / "paths.jsonl")
    assert n == 4
    back = import_paths(tmp_path / "paths.jsonl")
    assert sorted(back.leaf_paths()) == sorted(tree.leaf_paths())
    outline = tmp_path / "o.yaml"
    outline.write_text("Root:\n  - A:\n      - A1\n      - A2\n  - B\n")
    t = import_outline(outline)
    assert sorted(t.leaf_paths()) == [["Root", "A", "A1"], ["Root", "A", "A2"], ["Root", "B"]]
    assert load_any(outline).to_dict() == t.to_dict()


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("dup.jsonl", '{"path": ["R", "A"]}\n{"path": ["R", "A"]}\n', "repeats the path"),
        ("bad.jsonl", '{"path": ["R", "A"]}\nnot json\n', "line 2"),
        ("roots.jsonl", '{"path": ["R", "A"]}\n{"path": ["S", "A"]}\n', "one root"),
        ("empty.jsonl", "\n", "holds no paths"),
        ("two.yaml", "R: [A]\nS: [B]\n", "exactly one root"),
        ("dup.yaml", "R: [A, A]\n", "repeats R > A"),
        ("bad.yaml", "R: [A\n", "neither valid YAML nor JSON"),
        ("bad.json", '{"format": "topictree-hf/tree", "root": "R"}', "not a topictree tree file"),
    ],
)
def test_malformed_tree_files_fail_with_one_line(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputFileError) as exc:
        load_any(path)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_render_text_and_png(tmp_path: Path) -> None:
    tree = TreeBuilder(FakeEngine(good), TreeConfig(depth=3, degree=3)).build("Root")
    text = render_text(tree, max_depth=1)
    assert text.splitlines()[0] == "Root" and "├── Zone A  (+12 below)" in text
    render_png(tree, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
