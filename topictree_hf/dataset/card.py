"""The dataset card: YAML the Hub validates, and a body rendered from a Jinja template.

The YAML is written with datasets' own `MetadataConfigs` / `DatasetInfosDict`, so `configs:` and
`dataset_info:` are exactly what `push_to_hub` would write and what `load_dataset` reads back
(features applied on load; only `data/` read as data). The body template ships as package data in
`topictree_hf.dataset_cards` (the repo's top-level `dataset_cards/` folder).

Parts of the body that other commands rewrite later sit between markers
`<!-- topictree:NAME:start -->` and `<!-- topictree:NAME:end -->`; `replace_section` swaps one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from datasets import DatasetInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from topictree_hf.errors import InputFileError
from topictree_hf.licenses import HUB_LICENSES, SIZE_CATEGORIES, check_languages, check_license  # noqa: F401

TEMPLATE = "dataset_card.md.jinja"
TAGS = ["synthetic", "topic-tree", "topictree-hf"]



def size_category(rows: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "n>1T"


def card_data(*, license_id: str, languages: list[str], pretty_name: str, info: DatasetInfo,
              splits: list[str], tags: list[str]) -> DatasetCardData:
    """The card's YAML: Hub metadata plus `configs` (data/ only) and `dataset_info` (features, sizes)."""
    data = DatasetCardData(
        license=check_license(license_id),
        language=check_languages(languages) or None,
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality=(["monolingual" if len(languages) == 1 else "multilingual"] if languages else None),
        size_categories=[size_category(sum(s.num_examples for s in info.splits.values()))],
        source_datasets=["original"],
        task_categories=["text-generation"],
        pretty_name=pretty_name,
        tags=[*TAGS, *[t for t in tags if t not in TAGS]],
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    configs = {"default": {"data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}}
    MetadataConfigs(configs).to_dataset_card_data(data)
    return data


def template_text(name: str = TEMPLATE) -> str:
    """A card template from the installed package data; in a source checkout that was not
    installed, from the repo's dataset_cards/ folder next to the package."""
    try:
        return resources.files("topictree_hf.dataset_cards").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        local = Path(__file__).resolve().parents[2] / "dataset_cards" / name
        if local.is_file():
            return local.read_text(encoding="utf-8")
        raise InputFileError(f"the dataset card template {name} is missing from the installation; "
                             "reinstall topictree-hf (pip install --force-reinstall topictree-hf)") from None


def render_card(data: DatasetCardData, context: Mapping[str, Any], template: str = TEMPLATE) -> DatasetCard:
    """Render the template with the YAML and the body facts; the result parses as a DatasetCard."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(md=md_inline, fence=fence, num=_num)
    text = env.from_string(template_text(template)).render(card_data=data.to_yaml(), **context)
    return DatasetCard(text)


def md_inline(value: Any) -> str:
    """Text that stays inside one markdown table cell and renders no HTML (model output can hold
    anything: pipes, newlines, angle brackets)."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def fence(value: Any, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run in the text, so generated
    content cannot close it early."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{lang}\n{text.rstrip()}\n{marks}"


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- topictree:{name}:start -->", f"<!-- topictree:{name}:end -->"


def replace_section(card_text: str, name: str, new_body: str) -> str:
    """`card_text` with the body between the `name` markers replaced by `new_body` (markers kept).
    Raises InputFileError when the markers are missing or repeated (a hand-edited card)."""
    start, end = _markers(name)
    i, j = card_text.find(start), card_text.find(end)
    if i < 0 or j < i or card_text.count(start) != 1 or card_text.count(end) != 1:
        raise InputFileError(f"the dataset card has no single {start} ... {end} section; rebuild it "
                             "with `topictree build RUN_DIR --out DIR --overwrite`")
    return f"{card_text[:i + len(start)]}\n{new_body.strip()}\n{card_text[j:]}"


def read_section(card_text: str, name: str) -> str | None:
    """The body between the `name` markers, or None when the card has no such section."""
    start, end = _markers(name)
    i, j = card_text.find(start), card_text.find(end)
    if i < 0 or j < i:
        return None
    return card_text[i + len(start):j].strip()


def load_snippet(target: str | None) -> str:
    """How to load the set: the Hub repo id once known, else the local folder."""
    if target:
        head = f"ds = load_dataset({json.dumps(target)})"
    else:
        head = '# the folder this card is in, or "user/repo" once pushed\nds = load_dataset("path/to/folder")'
    return fence(f'from datasets import load_dataset\n\n{head}\nprint(ds["train"][0]["messages"])', "python")
