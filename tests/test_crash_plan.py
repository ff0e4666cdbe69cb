"""SIGKILL during `topictree generate` with generation.plan, right after the first round of leaf plans
was journaled (crash point plan.round), then a rerun: the journaled plan is re-used (no slot is planned
twice), and the plans and samples equal those of a run that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_support import assert_killed, assert_ok, lines, reference, start_from, topictree

PLAN = "\ngeneration: {num_samples: 24, formats: [qa, chat], plan: true}\n"


def plan_config(folder: Path) -> None:
    text = (folder / "c.yaml").read_text().replace("generation: {num_samples: 24, formats: [qa, chat]}\n", "")
    (folder / "c.yaml").write_text(text + PLAN)


def slots(run: Path) -> list[tuple[str, int]]:
    return [(r["leaf_id"], r["index"]) for r in lines(run / "plans.jsonl")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = reference(tmp_path_factory)
    folder = tmp_path_factory.mktemp("plan-ref")
    run = start_from(ref, ref.after_tree, folder)
    plan_config(folder)
    assert_ok(topictree(["generate", "c.yaml", "--run-dir", str(run)], folder))
    return run


def test_a_crash_after_a_plan_round_loses_nothing_and_repeats_no_plan(
        uninterrupted: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    ref = reference(tmp_path_factory)
    run = start_from(ref, ref.after_tree, tmp_path)
    plan_config(tmp_path)
    args = ["generate", "c.yaml", "--run-dir", str(run)]
    assert_killed(topictree(args, tmp_path, crash_at="plan.round:1"))
    before = lines(run / "plans.jsonl")
    assert before and not lines(run / "samples-00000.jsonl"), "killed after planning, before any sample"
    assert_ok(topictree(args, tmp_path))
    after = lines(run / "plans.jsonl")
    assert after[: len(before)] == before, "the journaled plan is kept as it was"
    assert len(slots(run)) == len(set(slots(run))), "no slot planned twice"
    assert sorted(map(str, after)) == sorted(map(str, lines(uninterrupted / "plans.jsonl")))
    key = lambda r: (r["id"], r["planned"], str(r["messages"]))  # noqa: E731
    assert sorted(map(key, lines(run / "samples-00000.jsonl"))) == \
        sorted(map(key, lines(uninterrupted / "samples-00000.jsonl")))
    planned = [r for r in lines(run / "samples-00000.jsonl") if r["planned"]]
    assert len(planned) >= 20 and all(r["planned"] for r in planned)
