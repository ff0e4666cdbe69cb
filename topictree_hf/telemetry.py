"""No telemetry by default: the settings that keep vLLM (and libraries that read DO_NOT_TRACK) quiet.

Kept apart from the vLLM backend so that the CLI and the Ray runner can apply them without
importing that backend. Nothing here runs at import; callers decide when.
"""

from __future__ import annotations

import os

USAGE_STATS_VARS = ("VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK", "DO_NOT_TRACK")


def usage_stats_choice() -> dict[str, str]:
    """What the user set about usage stats (any of USAGE_STATS_VARS), or {} when they set nothing."""
    return {name: os.environ[name] for name in USAGE_STATS_VARS if name in os.environ}


def usage_stats_off() -> None:
    """vLLM sends usage stats unless told not to: tell it, unless the user already chose (set any of
    USAGE_STATS_VARS, to anything: VLLM_NO_USAGE_STATS=0 alone turns them on, so nothing else is set)."""
    if not usage_stats_choice():
        os.environ["VLLM_NO_USAGE_STATS"] = "1"
        os.environ["DO_NOT_TRACK"] = "1"
