"""The dataset row's `datasets.Features`, derived from the `Sample` record (records.py).

The row is what TRL's SFTTrainer reads (`messages`) plus everything needed to trace a sample back to
its place in the tree and the settings that made it (`Sample.to_row`), then the two columns the
build adds from the whole dataset (`nn_similarity`, `repeat_count`: neighbours.py). Columns are fixed
by the types, declared in the card's `dataset_info`, and applied on load, so every build of every
run has the same schema.
"""

from __future__ import annotations

from typing import Any

from datasets import Features, List, Value

from topictree_hf.dataset.neighbours import COLUMNS as NEIGHBOUR_COLUMNS
from topictree_hf.records import row_columns

MESSAGE = {"role": Value("string"), "content": Value("string")}
_ARROW = {"messages": List(MESSAGE), "list[string]": List(Value("string"))}


def _feature(arrow: str) -> Any:
    return _ARROW.get(arrow) or Value(arrow)


def dataset_columns() -> list[tuple[str, str, str, str]]:
    """(name, Arrow type, card type, meaning) of every column: the `Sample` fields marked as columns,
    in field order (see records.py), then the neighbour columns."""
    return [*row_columns(), *NEIGHBOUR_COLUMNS]


FEATURES = Features({name: _feature(arrow) for name, arrow, _card, _doc in dataset_columns()})


class PreEncodedFeatures(Features):
    """FEATURES for writing rows made by `Sample.to_row` and the neighbour columns: those are already
    plain Python values of exactly these types (no images, audio or class labels to encode), so
    datasets' recursive per-row `encode_example`, half of the build time at a million rows, has
    nothing to do. The values are still checked against the schema when each batch becomes an Arrow table."""

    def encode_example(self, example: dict[str, Any]) -> dict[str, Any]:
        return example
