"""Packaging a run as a Hugging Face dataset: the builder, the folder layout, the card, the push.

    build_dataset(run_dir, out=None, overwrite=False, neighbours=True) -> BuildResult
    push_dataset(folder, repo_id, private=None, revision=None, dry_run=False) -> PushResult
    replace_section(card_text, name, new_body) -> str      (the card's rewritable parts)

Importing this package imports `datasets`; the CLI imports it only inside the commands that
need it, so `HF_HUB_OFFLINE` is decided before huggingface_hub reads it.
"""

from __future__ import annotations

from topictree_hf.dataset.builder import TopicTreeBuilder, TopicTreeBuilderConfig
from topictree_hf.dataset.card import read_section, replace_section
from topictree_hf.dataset.features import FEATURES
from topictree_hf.dataset.layout import BuildResult, build_dataset, default_out_dir
from topictree_hf.dataset.push import PushResult, push_dataset
from topictree_hf.dataset.verify import check_dataset_folder

__all__ = [
    "FEATURES",
    "BuildResult",
    "PushResult",
    "TopicTreeBuilder",
    "TopicTreeBuilderConfig",
    "build_dataset",
    "check_dataset_folder",
    "default_out_dir",
    "push_dataset",
    "read_section",
    "replace_section",
]
