"""One summary: `Summary.to_dict` is what summary.json holds and what a Ray block sends, `from_dict`
reads it back (also an old summary.json, which calls `asked` `requested`), `merge` adds one to another."""

from __future__ import annotations

from collections import Counter

import pytest

from topictree_hf.cli.common import print_generation_summary
from topictree_hf.generation.summary import Summary


def counted() -> Summary:
    return Summary(asked=18, resumed=2, valid=12, failed=3, retried=4, rejections=Counter({"empty": 5, "judge: x": 2}),
                   failures=Counter({"empty": 3}), output_tokens=900, engine_calls=2, seconds=1.25, mode="text",
                   requests=25, topups=3, budget=54, delivered=14, budget_spent=True, judge_requests=9,
                   judge_prompt_tokens=300, judge_output_tokens=40, judge_seconds=0.5, judge_unparsed=1,
                   judge_scores=Counter({4: 6, 2: 2}))


def test_to_dict_and_from_dict_round_trip() -> None:
    summary = counted()
    data = summary.to_dict()
    assert "requested" not in data and data["asked"] == 18 and data["missing"] == 4
    assert Summary.from_dict(data) == summary


def test_an_old_summary_json_with_requested_still_reads(capsys: pytest.CaptureFixture[str]) -> None:
    old = counted().to_dict()
    old["requested"] = old.pop("asked")
    assert Summary.from_dict(old).asked == 18
    print_generation_summary(old)
    assert "delivered 14 of 18 samples (78%)" in capsys.readouterr().err


def test_from_dict_is_tolerant_and_merge_adds_up() -> None:
    assert Summary.from_dict({"asked": "many", "rejections": ["x"], "judge_scores": {"x": 1}}) == Summary()
    total = Summary(asked=18, mode="")
    total.merge(counted())
    total.merge(counted())
    assert (total.asked, total.valid, total.mode, total.budget_spent) == (18 + 36, 24, "text", True)
    assert total.rejections == {"empty": 10, "judge: x": 4} and total.judge_scores == {4: 12, 2: 4}
