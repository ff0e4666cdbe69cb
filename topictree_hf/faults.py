"""Test-only crash points, so tests can kill a real `topictree` process at an exact place.

    TOPICTREE_CRASH_AT=<point>:<n>   the process kills itself (SIGKILL) the n-th time it passes <point>

Points (each stage has at least three; tests/test_crash_*.py kill at every one and rerun):

    tree.level      a tree level was journaled in tree.jsonl (before the next level starts)
    plan.round      a round of leaf plans (generation.plan) was journaled in plans.jsonl
    gen.generated   the engine stream handed back one sample completion; it is not judged or journaled yet
    gen.batch       a flush group of judged samples was journaled (samples and failures)
    journal.torn    a journal batch is half written (last line torn mid-record) and made durable
    build.rows      the dataset builder yielded its n-th row (parquet files half written)
    build.staged    the dataset folder is complete in its temp sibling, not yet renamed into place
    build.swap      `--overwrite`: the old dataset folder is moved aside, the new one not yet in place

The variable is read once, at the first crash point a process passes (never at import: importing the
package reads no environment); unset (always, outside tests) every later check is one comparison.
A malformed value fails at the first crash point passed, as a one-line error.
"""

from __future__ import annotations

import os
import signal
from typing import BinaryIO

from topictree_hf.errors import ConfigError

ENV = "TOPICTREE_CRASH_AT"
POINTS = ("tree.level", "plan.round", "gen.generated", "gen.batch", "journal.torn", "build.rows", "build.staged",
          "build.swap")


def _parse(spec: str | None) -> tuple[str, int] | str | None:
    """(point, n); None when unset; a message when malformed (raised at the first crash point)."""
    if not spec:
        return None
    point, _, count = spec.rpartition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        return f"{ENV}={spec!r} is malformed; use <point>:<n> with a point among {', '.join(POINTS)}, or unset it"
    return point, int(count)


_UNREAD = "unread"  # _armed before the first crash point: the variable is not read yet
_armed: tuple[str, int] | str | None = _UNREAD
_passes = 0


def hit(point: str) -> bool:
    """Count a pass of `point`; True exactly at the armed pass (the caller then crashes)."""
    global _armed, _passes
    if _armed is None:
        return False
    if _armed is _UNREAD:
        _armed = _parse(os.environ.get(ENV))
        return hit(point)
    if isinstance(_armed, str):
        raise ConfigError(_armed)
    if _armed[0] != point:
        return False
    _passes += 1
    return _passes == _armed[1]


def crash_point(point: str) -> None:
    """Die here, like a `kill -9` from outside, at the armed pass of `point`."""
    if hit(point):
        die()


def torn_write(fh: BinaryIO, data: bytes) -> None:
    """At the armed pass of `journal.torn`: write the first half of `data` (never ending on a line
    break), make it durable, and die, leaving a torn last line as a power cut or SIGKILL does."""
    if not hit("journal.torn"):
        return
    half = max(1, len(data) // 2)
    if data[half - 1 : half] == b"\n":
        half += 1
    fh.write(data[:half])
    fh.flush()
    os.fsync(fh.fileno())
    die()


def die() -> None:
    sigkill = getattr(signal, "SIGKILL", None)
    if sigkill is not None:
        os.kill(os.getpid(), sigkill)
    os._exit(137)  # pragma: no cover  (no SIGKILL on Windows)
