"""`nn_similarity` and `repeat_count` (dataset/neighbours.py): every row's nearest neighbour in the
whole dataset, all splits together, with the real embedding model; the card shows their spread; the
vectors are handed to the closing evaluation instead of being embedded twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
from corpora import FACTS
from synthetic_run import make_synthetic_run

from topictree_hf import pipeline
from topictree_hf.cli import main
from topictree_hf.config import Config, OutputConfig, SplitConfig
from topictree_hf.dataset import FEATURES, build_dataset
from topictree_hf.dataset.card_context import field_table
from topictree_hf.dataset.neighbours import (
    EMBED_MAX_TOKENS,
    SEMANTIC_THRESHOLD,
    EmbeddingCache,
    nearest,
    text_digest,
)
from topictree_hf.dataset.split import TEST, SplitPlan
from topictree_hf.embeddings import Embedder
from topictree_hf.eval import EvalSettings, sample_text
from topictree_hf.records import turns_text
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

FILLER = [fact for leaves in FACTS.values() for facts in leaves.values() for fact in facts]
COLUMNS = ("nn_similarity", "repeat_count")


class Recording:
    """The real embedder, remembering every text it was asked to embed."""

    dim = 384

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False,
               max_length: int | None = None) -> np.ndarray:
        self.seen += list(texts)
        return Embedder.load().encode(texts, batch_size=batch_size, progress=progress, max_length=max_length)


def crafted_run(path: Path) -> tuple[RunDir, dict[str, str]]:
    """8 samples on 4 leaves (2 of them in test); one train sample and one test sample share a text,
    every other text is unrelated. Returns the run and each sample's assistant text by id."""
    config = Config(output=OutputConfig(split=SplitConfig(test_size=0.5)))
    run = make_synthetic_run(path, depth=1, degree=4, samples_per_leaf=2, config=config)
    plan = SplitPlan.from_tree(TopicTree.load(run.tree_file), config.output.split)
    lines = [json.loads(line) for line in run.sample_shard(0).read_text().splitlines()]
    split = [plan.split_of(line["topic_path"]) for line in lines]
    twin = split.index(TEST)  # the test sample that repeats the first train sample's text
    first = split.index("train")
    texts = {}
    for k, line in enumerate(lines):
        text = FILLER[first * 9] if k == twin else FILLER[k * 9]
        line["messages"] = [{"role": "system", "content": "You write training data."},
                            {"role": "user", "content": "Tell me something."}, {"role": "assistant", "content": text}]
        texts[line["id"]] = text
    run.sample_shard(0).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run, texts


def load_rows(folder: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    ds = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    assert set(ds) == {"train", "test"}
    for split in ds.values():
        assert split.features == FEATURES and list(split.features)[-2:] == list(COLUMNS)
    return {row["id"]: row | {"split": name} for name, split in ds.items() for row in split}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Any, dict[str, str], Recording]:
    run, texts = crafted_run(tmp_path / "run")
    recorder = Recording()
    return build_dataset(run.path, tmp_path / "ds", embedder=recorder), texts, recorder


def test_each_row_carries_its_nearest_neighbour(built: Any, tmp_path: Path) -> None:
    result, texts, _ = built
    rows = load_rows(result.out, tmp_path)
    ids = sorted(rows)
    vectors = Embedder.load().encode([f"Tell me something.\n{texts[i]}" for i in ids], max_length=128)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    twins = [i for i in ids if list(texts.values()).count(texts[i]) == 2]
    assert len(twins) == 2 and {rows[i]["split"] for i in twins} == {"train", "test"}  # across splits
    for k, i in enumerate(ids):
        assert rows[i]["nn_similarity"] == pytest.approx(float(sims[k].max()), abs=2e-3)
        assert rows[i]["repeat_count"] == (1 if i in twins else 0)
    assert all(rows[i]["nn_similarity"] > 0.99 for i in twins)
    assert all(rows[i]["nn_similarity"] < 0.9 for i in ids if i not in twins)


def test_the_card_lists_the_columns_and_shows_their_spread(built: Any) -> None:
    result, _, _ = built
    assert [f["name"] for f in field_table()][-2:] == list(COLUMNS)
    card = (result.out / "README.md").read_text()
    assert "| `repeat_count` | int32 | how many other samples have cosine >= 0.9 with this one (0: none) |" in card
    assert "| rows with `repeat_count` > 0 (another row at cosine >= 0.9) | 2 of 8 (25.0%) |" in card
    assert "| highest `repeat_count` | 1 |" in card
    assert "| median |" in card and "| maximum | 1.000 |" in card
    schema = card.split("dataset_info:")[1].split("---")[0]
    assert "- name: nn_similarity\n    dtype: float64" in schema and "- name: repeat_count\n    dtype: int32" in schema


def test_the_closing_evaluation_reuses_the_build_vectors(built: Any) -> None:
    result, texts, recorder = built
    sample_texts = {f"Tell me something.\n{t}" for t in texts.values()}
    assert sample_texts <= set(recorder.seen)
    built_calls = len(recorder.seen)
    figures = pipeline.eval_stage(result.out, embedder=result.embeddings)
    asked_again = recorder.seen[built_calls:]
    assert asked_again and not sample_texts & set(asked_again)  # only topic labels, never a sample twice
    semantic = figures["repeats"]["semantic"]
    assert semantic["pairs"] == semantic["sibling_leaves"] == 1  # two leaves of a depth-1 tree: siblings
    assert "duplicate pairs: where the two samples sit" in (result.out / "README.md").read_text()


def test_without_the_search_the_columns_are_null(tmp_path: Path) -> None:
    run, _ = crafted_run(tmp_path / "run")
    assert build_dataset(run.path, tmp_path / "lib", neighbours=False).embeddings is None
    assert main(["build", str(run.path), "--out", str(tmp_path / "ds"), "--no-neighbours"]) == 0
    rows = load_rows(tmp_path / "ds", tmp_path)
    assert {(r["nn_similarity"], r["repeat_count"]) for r in rows.values()} == {(None, None)}
    assert "this build skipped the neighbour search" in (tmp_path / "ds" / "README.md").read_text()


def test_nearest_on_known_vectors() -> None:
    diagonal = np.sqrt(0.5)
    vectors = np.array([[1, 0], [1, 0], [0, 1], [diagonal, diagonal]], dtype=np.float32)
    best, counts = nearest(vectors)
    np.testing.assert_allclose(best, [1.0, 1.0, diagonal, diagonal], atol=1e-6)
    assert counts.tolist() == [1, 1, 0, 0]
    lone_best, lone_count = nearest(vectors[:1])
    assert np.isnan(lone_best[0]) and lone_count.tolist() == [0]


def test_the_cache_answers_what_it_holds_and_asks_for_the_rest() -> None:
    recorder = Recording()
    held = recorder.encode(["a held text"], max_length=EMBED_MAX_TOKENS)
    cache = EmbeddingCache(recorder, {text_digest("a held text"): 0}, held)
    recorder.seen.clear()
    out = cache.encode(["a held text", "a new text"], max_length=EMBED_MAX_TOKENS)
    assert recorder.seen == ["a new text"]
    np.testing.assert_allclose(out[0], held[0])
    cache.encode(["a held text"], max_length=64)  # another cut: not what the cache holds
    assert recorder.seen[-1] == "a held text"


def test_the_same_threshold_cut_and_text_as_eval() -> None:
    settings = EvalSettings()
    assert (SEMANTIC_THRESHOLD, EMBED_MAX_TOKENS) == (settings.semantic_threshold, settings.embed_max_tokens)
    record = {"id": "a", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                      {"role": "assistant", "content": ""}, {"role": "user", "content": "q2"},
                                      {"role": "assistant", "content": "a2"}]}
    assert turns_text(record["messages"]) == sample_text(record) == "q\nq2\na2"
