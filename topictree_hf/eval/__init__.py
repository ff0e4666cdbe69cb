"""Measure the diversity a sample set has, next to quality guards that keep garbage from scoring well.

    evaluate(records, tree_leaves=None, failures=None, settings=EvalSettings()) -> dict
    read_source(path) -> EvalSource                # a run dir or a built dataset folder
    format_table(result, baseline=None) -> str     # Markdown, for the terminal and the card
    full_table(result, baseline=None) -> str       # the same, then the duplicate pairs by place in the tree

Modules: text (what is measured), lexical, semantic, topicality, coverage, repeats (the metrics),
report (`evaluate`), readers, table. MinHash and the dedup filter live in `topictree_hf.dedup`.
"""

from __future__ import annotations

from topictree_hf.eval.readers import EvalSource, read_source
from topictree_hf.eval.report import EvalSettings, evaluate
from topictree_hf.eval.table import card_body, format_table, full_table, table_notes, write_card_section
from topictree_hf.eval.text import sample_text

__all__ = [
    "EvalSettings",
    "EvalSource",
    "card_body",
    "evaluate",
    "format_table",
    "full_table",
    "read_source",
    "sample_text",
    "table_notes",
    "write_card_section",
]
