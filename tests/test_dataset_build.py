"""`build_dataset`: a run dir becomes a folder that `load_dataset` reads, split by topic, sorted by id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from synthetic_run import append_records, make_synthetic_run, synthetic_record

from topictree_hf.config import Config, OutputConfig, SplitConfig, load_config
from topictree_hf.dataset import FEATURES, build_dataset, default_out_dir
from topictree_hf.errors import ConfigError, InputFileError, RunDirError
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import node_id


def load(folder: Path, tmp_path: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))


def config(**split: object) -> Config:
    return Config(output=OutputConfig(split=SplitConfig(**split)))


@pytest.fixture
def run(generated_run: RunDir) -> RunDir:
    """What the real generator writes (16 leaves, 3 samples each): see tests/generated_run.py."""
    return generated_run


def test_folder_layout_and_load_dataset(run: RunDir, tmp_path: Path) -> None:
    result = build_dataset(run.path, tmp_path / "ds")
    files = sorted(p.relative_to(result.out).as_posix() for p in result.out.rglob("*") if p.is_file())
    assert files == ["README.md", "assets/topic_tree.png", "data/test-00000-of-00001.parquet",
                     "data/train-00000-of-00001.parquet", "generation.yaml", "topic_tree.json"]
    assert (result.out / "topic_tree.json").read_bytes() == run.tree_file.read_bytes()
    ds = load(result.out, tmp_path)
    assert set(ds) == {"train", "test"}
    for split in ds.values():
        assert split.features == FEATURES
        ids = split["id"]
        assert ids == sorted(ids)
    assert result.rows == {"train": ds["train"].num_rows, "test": ds["test"].num_rows}
    assert result.total_rows == 48
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_rows_are_the_journaled_samples(run: RunDir, tmp_path: Path) -> None:
    ds = load(build_dataset(run.path, tmp_path / "ds").out, tmp_path)
    rows = {r["id"]: r for split in ds.values() for r in split}
    expected = {sample.id: sample.to_row() for sample in run.iter_samples()}
    neighbours = {i: (r.pop("nn_similarity"), r.pop("repeat_count")) for i, r in rows.items()}
    assert rows == expected  # then the two neighbour columns (tests/test_dataset_neighbours.py)
    assert all(-1 <= sim <= 1 and count >= 0 for sim, count in neighbours.values())


def test_no_leaf_in_two_splits(run: RunDir, tmp_path: Path) -> None:
    ds = load(build_dataset(run.path, tmp_path / "ds").out, tmp_path)
    leaves = {name: {node_id(p) for p in split["topic_path"]} for name, split in ds.items()}
    assert leaves["train"] and leaves["test"]
    assert not leaves["train"] & leaves["test"]
    assert len(leaves["test"]) == 2  # round(0.1 * 16 leaves)


def test_split_by_subtree_keeps_branches_whole(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=2, degree=4, config=config(test_size=0.25, by="subtree"))
    ds = load(build_dataset(run.path, tmp_path / "ds").out, tmp_path)
    branches = {name: {p[1] for p in split["topic_path"]} for name, split in ds.items()}
    assert len(branches["test"]) == 1 and len(branches["train"]) == 3
    assert not branches["train"] & branches["test"]


@pytest.mark.parametrize("split", [{"test_size": 0.0}, {"test_size": 0.1, "by": "subtree"}])
def test_train_only_when_no_test_or_too_few_groups(tmp_path: Path, split: dict) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=2, degree=4, config=config(**split))
    result = build_dataset(run.path, tmp_path / "ds")
    assert list(result.rows) == ["train"] and result.total_rows == 32
    assert list(load(result.out, tmp_path)) == ["train"]


def test_shards_by_size_are_complete_and_globally_sorted(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=2, degree=4, samples_per_leaf=8, content_chars=1500)
    result = build_dataset(run.path, tmp_path / "ds", max_shard_size=30_000, writer_batch_size=8)
    train = sorted((result.out / "data").glob("train-*.parquet"))
    assert len(train) > 2
    assert [p.name for p in train] == [f"train-{i:05d}-of-{len(train):05d}.parquet" for i in range(len(train))]
    ids = [i for p in train for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == result.rows["train"]
    assert load(result.out, tmp_path)["train"]["id"] == ids


def test_repeated_ids_keep_the_first_and_bad_records_are_counted(run: RunDir, tmp_path: Path) -> None:
    first = next(run.iter_samples()).to_json()
    changed = dict(first, messages=[{"role": "user", "content": "a later copy"}])
    bad = [
        {k: v for k, v in first.items() if k != "messages"} | {"id": "bad-1"},
        first | {"id": "bad-2", "messages": [{"role": "user", "content": None}]},
        first | {"id": "bad-3", "topic_path": "not a list"},
    ]
    append_records(run, [changed, *bad], shard=1)  # a second journal shard, read after the first
    result = build_dataset(run.path, tmp_path / "ds")
    assert result.stats.duplicates == 1
    assert dict(result.stats.dropped) == {"no messages": 1, "message content is not text": 1, "bad topic_path": 1}
    rows = {r["id"]: r for split in load(result.out, tmp_path).values() for r in split}
    assert rows[first["id"]]["messages"] == first["messages"]
    assert not {"bad-1", "bad-2", "bad-3"} & set(rows)
    card = (result.out / "README.md").read_text()
    assert "| dropped at build: no messages | 1 |" in card
    assert "| repeated sample ids dropped at build | 1 |" in card


def test_samples_outside_the_tree_go_to_train_and_are_counted(run: RunDir, tmp_path: Path) -> None:
    stray = synthetic_record(["Historical Events", "Elsewhere", "Unknown leaf"], 0, 1, 50)
    append_records(run, [stray])
    result = build_dataset(run.path, tmp_path / "ds")
    assert result.stats.unknown_groups == 1
    assert stray["id"] in load(result.out, tmp_path)["train"]["id"]


def test_default_out_dir_comes_from_the_config(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run")
    assert default_out_dir(run.path) == run.path / "dataset"
    assert build_dataset(run.path).out == run.path / "dataset"
    other = make_synthetic_run(tmp_path / "run2", config=Config(output=OutputConfig(dataset_dir=tmp_path / "x")))
    assert build_dataset(other.path).out == tmp_path / "x"


def test_overwrite_rules(run: RunDir, tmp_path: Path) -> None:
    out = build_dataset(run.path, tmp_path / "ds").out
    with pytest.raises(InputFileError, match="already exists; pass --overwrite"):
        build_dataset(run.path, out)
    (out / "stale.txt").write_text("from the old build")
    assert build_dataset(run.path, out, overwrite=True).out == out
    assert not (out / "stale.txt").exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(InputFileError, match="refusing to replace"):
        build_dataset(run.path, foreign, overwrite=True)
    assert (foreign / "holiday.jpg").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_dataset(run.path, empty, overwrite=True).total_rows == 48
    for inside in (run.path, run.path.parent):
        with pytest.raises(InputFileError, match="would contain the run dir"):
            build_dataset(run.path, inside, overwrite=True)
    assert run.sample_shards()


def test_a_failed_build_leaves_the_old_folder_and_no_temp_files(run: RunDir, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = build_dataset(run.path, tmp_path / "ds").out
    before = (out / "README.md").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("topictree_hf.dataset.layout.write_generation_yaml", boom)
    with pytest.raises(OSError):
        build_dataset(run.path, out, overwrite=True)
    assert (out / "README.md").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "run"]


def test_bad_license_fails_before_anything_is_placed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Hub license identifier"):
        load_config(None, {"output.license": "my-own-license"})
    run = make_synthetic_run(tmp_path / "run")
    manifest = json.loads(run.manifest.read_text())
    manifest["config"]["output"]["license"] = "my-own-license"  # a hand-edited or older run dir
    run.manifest.write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="output.license"):
        build_dataset(run.path, tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_tree_picture_is_copied_drawn_or_skipped(run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    run.tree_png.write_bytes(b"\x89PNG not really")
    out = build_dataset(run.path, tmp_path / "a").out
    assert (out / "assets" / "topic_tree.png").read_bytes() == b"\x89PNG not really"
    run.tree_png.unlink()

    def broken(tree: object, path: Path) -> None:
        raise RuntimeError("no display")

    monkeypatch.setattr("topictree_hf.tree.render.render_png", broken)
    out = build_dataset(run.path, tmp_path / "b").out
    assert not (out / "assets").exists()
    assert "assets/topic_tree.png" not in (out / "README.md").read_text()
    assert "drawing failed (RuntimeError: no display)" in caplog.text


def test_generation_yaml_is_rerunnable_and_has_no_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-" + "A1b2C3d4" * 5
    cfg = load_config(overrides={"engine.backend": "openai", "engine.base_url": "http://bob:pw@127.0.0.1:8000/v1",
                                 "engine.options": {"api_key": secret, "timeout": 5, "note": f"key {secret}"},
                                 "output.run_dir": str(tmp_path / "run")})
    run = make_synthetic_run(tmp_path / "run", config=cfg)
    out = build_dataset(run.path, tmp_path / "ds").out
    text = (out / "generation.yaml").read_text()
    assert secret not in text and "bob" not in text and "pw@" not in text
    assert secret not in (out / "README.md").read_text()
    assert secret not in caplog.text
    again = load_config(out / "generation.yaml")
    assert again.engine.base_url == "http://127.0.0.1:8000/v1"
    assert again.engine.options == {"timeout": 5, "note": "key <removed>"}
    assert again.output.run_dir is None and again.root == cfg.root
    assert again.generation == cfg.generation and again.tree == cfg.tree


def test_run_dir_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        build_dataset(tmp_path / "missing")
    run = make_synthetic_run(tmp_path / "run")
    run.tree_file.unlink()
    with pytest.raises(RunDirError, match="has no topic_tree.json"):
        build_dataset(run.path)
    run = make_synthetic_run(tmp_path / "run2")
    for shard in run.sample_shards():
        shard.unlink()
    with pytest.raises(RunDirError, match="has no samples"):
        build_dataset(run.path)
    run.sample_shard(0).write_text(json.dumps({"id": "x"}) + "\n")
    with pytest.raises(RunDirError, match=r"no usable samples \(1 bad topic_path\)"):
        build_dataset(run.path)
    assert not (run.path / "dataset").exists()


def test_builder_on_its_own(run: RunDir, tmp_path: Path) -> None:
    from builders import TopicTreeBuilder

    work = tmp_path / "work"
    builder = TopicTreeBuilder(run_dir=str(run.path), cache_dir=str(tmp_path / "cache"), work_dir=str(work),
                               spill_bytes=2_000)
    builder.download_and_prepare()
    ds = builder.as_dataset()
    assert ds["train"].num_rows + ds["test"].num_rows == 48
    assert ds["train"]["id"] == sorted(ds["train"]["id"])
    assert list(work.iterdir()) == []  # sorted runs are removed once merged


def test_build_does_not_keep_old_state_between_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The builder cache is keyed on config kwargs; a rebuilt run at the same path must not come back stale."""
    caplog.set_level(logging.WARNING)
    run = make_synthetic_run(tmp_path / "run", samples_per_leaf=1)
    assert build_dataset(run.path, tmp_path / "a").total_rows == 9
    run = make_synthetic_run(tmp_path / "run", samples_per_leaf=2)
    assert build_dataset(run.path, tmp_path / "b").total_rows == 18


def test_a_run_made_with_a_plugin_backend_still_builds(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=1, degree=2, samples_per_leaf=1)
    manifest = json.loads(run.manifest.read_text())
    manifest["config"]["engine"]["backend"] = "my-plugin"  # registered in the generating process only
    run.manifest.write_text(json.dumps(manifest))
    result = build_dataset(run.path, tmp_path / "ds")
    assert result.total_rows == 2
