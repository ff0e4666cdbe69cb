"""Every row's `messages` goes through the bundled model's chat template (what SFT training does)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from synthetic_run import append_records, make_synthetic_run, synthetic_record

from topictree_hf.dataset import build_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tokenizer() -> object:
    from transformers import AutoTokenizer

    from topictree_hf.engines.models import converted_gguf, resolve_model

    source = resolve_model("bundled:smollm2-135m-instruct")  # scripts/setup.sh installs it
    cached = converted_gguf(source)
    if cached is not None:
        return AutoTokenizer.from_pretrained(cached)
    return AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)


def test_every_row_passes_apply_chat_template(tokenizer: object, tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=2, degree=3, samples_per_leaf=2)
    chat = synthetic_record(["Historical Events", "Historical Events / topic 1.0"], 7, 0, 80, fmt="chat")
    chat["messages"] = [{"role": "system", "content": "You are a concise tutor."},
                        {"role": "user", "content": "Who crossed the Rubicon?"},
                        {"role": "assistant", "content": "Julius Caesar, in 49 BC."},
                        {"role": "user", "content": "Why did it matter?"},
                        {"role": "assistant", "content": "It started a civil war: ünïcode, `code`, | pipes |."}]
    append_records(run, [chat])
    folder = build_dataset(run.path, tmp_path / "ds").out
    ds = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "c"))
    rows = [row for split in ds.values() for row in split]
    assert len(rows) == 19
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)  # type: ignore[attr-defined]
        for message in row["messages"]:
            assert message["content"] in text
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True)  # type: ignore[attr-defined]
        assert len(ids) > 0
