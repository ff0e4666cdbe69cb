"""`compare` (pipeline.compare, eval/compare.py): the equal-N rule with its one seeded sampler
(`eval.text.equal_size`), owned by the library, not the CLI."""

from __future__ import annotations

import random
from pathlib import Path

from corpora import templated_records, tree_records, write_run_dir

from topictree_hf import pipeline
from topictree_hf.eval import EvalSettings
from topictree_hf.eval.compare import at_equal_n
from topictree_hf.eval.text import equal_size

FAST = EvalSettings(embed_sample=24)


def test_two_sets_of_different_sizes_are_measured_at_the_smaller_n(tmp_path: Path) -> None:
    small = write_run_dir(tmp_path / "small", tree_records(3))  # 36 samples
    big = write_run_dir(tmp_path / "big", templated_records(60), tree=False)
    measured = pipeline.compare(small, big, settings=FAST)
    assert measured.result["samples"] == measured.baseline_result["samples"] == 36
    assert measured.result["equal_n"] == 60 and "equal_n" not in measured.baseline_result
    assert measured.names == ("small", "big") and measured.card is None  # a run dir has no card
    assert "Both sets are measured at N = 36 (the larger cut by a seeded pick from 60)" in measured.notes()
    unequal = pipeline.compare(small, big, settings=FAST, equal_n=False)
    assert unequal.baseline_result["samples"] == 60 and "equal_n" not in unequal.result
    alone = pipeline.compare(big, settings=FAST)
    assert alone.result["samples"] == 60 and alone.baseline is None and alone.names == ("big", "baseline")


def test_the_equal_n_pick_is_the_one_sampler() -> None:
    small, big = tree_records(1), templated_records(40)
    (kept_small, kept_big), cut_from = at_equal_n([small, big])
    assert cut_from == 40 and len(kept_small) == len(kept_big) == len(small) == 12
    assert kept_big == equal_size(big, 12) and [r["id"] for r in kept_big] == sorted(r["id"] for r in kept_big)
    shuffled = big[:]
    random.Random(1).shuffle(shuffled)
    assert equal_size(shuffled, 12) == kept_big, "the pick does not depend on the order the files were read in"
    assert at_equal_n([small, small]) == ([small, small], None)
