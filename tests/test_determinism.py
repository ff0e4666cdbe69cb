"""The same config and seed give the identical tree and dataset on the transformers backend: two
fresh processes run `topictree run` with the bundled model (tiny sizes, marked slow), and the trees,
the journals and the Parquet rows must match exactly. What is and is not reproducible, here and on
vLLM, is in docs/reproducibility.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from crash_support import read_dataset

pytestmark = pytest.mark.slow

CONFIG = """\
root: Ancient Egypt
tree: {depth: 1, degree: 2}
generation: {num_samples: 4, formats: [qa], max_tokens: 64, seed: 7}
engine: {backend: transformers, model: bundled:smollm2-135m-instruct, batch_size: 4}
"""


def run(tmp: Path, name: str) -> Path:
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-m", "topictree_hf", "run", "c.yaml", "--run-dir", name],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return tmp / name


def test_same_config_and_seed_give_the_same_tree_and_dataset(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CONFIG)
    first, second = run(tmp_path, "first"), run(tmp_path, "second")

    trees = [json.loads((r / "topic_tree.json").read_text()) for r in (first, second)]
    assert trees[0]["nodes"] == trees[1]["nodes"] and len(trees[0]["nodes"]) > 1
    assert trees[0]["failures"] == trees[1]["failures"] and trees[0]["stats"] == trees[1]["stats"]
    for journal in ("tree.jsonl", "samples-00000.jsonl", "failures.jsonl"):
        a, b = first / journal, second / journal
        assert a.exists() == b.exists() and (not a.exists() or a.read_bytes() == b.read_bytes()), journal
    rows = read_dataset(first / "dataset")
    assert rows and rows == read_dataset(second / "dataset")
    assert len({r["seed"] for r in rows}) == len(rows), "every request has its own seed"
