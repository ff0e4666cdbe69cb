"""datasets and huggingface_hub draw their own progress bars; make them follow our switch
(TOPICTREE_NO_PROGRESS) for the duration of a build or a push, then restore their state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from topictree_hf.progress import bars_disabled


@contextlib.contextmanager
def library_bars() -> Iterator[None]:
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    if not bars_disabled():
        yield
        return
    datasets_was_on = datasets.is_progress_bar_enabled()
    hub_was_on = not are_progress_bars_disabled()
    datasets.disable_progress_bars()
    disable_progress_bars()
    try:
        yield
    finally:
        if datasets_was_on:
            datasets.enable_progress_bars()
        if hub_was_on:
            enable_progress_bars()
