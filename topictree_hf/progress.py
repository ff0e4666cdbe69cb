"""Progress bars for every long step; `TOPICTREE_NO_PROGRESS=1` (or HF_HUB_DISABLE_PROGRESS_BARS=1)
switches them off. Bars go to stderr and never carry secrets."""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def bars_disabled() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("TOPICTREE_NO_PROGRESS", "HF_HUB_DISABLE_PROGRESS_BARS"))


def progress_bar(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=bars_disabled(), dynamic_ncols=True, leave=False,
                **kwargs)
