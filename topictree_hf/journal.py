"""Append-only JSONL journals: one record per line, flushed and fsynced per batch.

A crash can leave a torn last line; `read_jsonl` drops it with a warning (and `Journal` cuts it
off before appending), so a rerun sees every complete record exactly once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from topictree_hf import faults
from topictree_hf.errors import RunDirError

logger = logging.getLogger(__name__)


def read_jsonl(path: Path, *, strict_middle: bool = True) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal. A bad last line (torn write) is dropped with a warning;
    a bad line in the middle means the file was edited or corrupted, and raises `RunDirError`."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        pending: tuple[int, bytes] | None = None
        for lineno, raw in enumerate(fh, 1):
            if pending is not None:
                _fail_middle(path, pending[0], strict_middle)
                pending = None
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                pending = (lineno, raw)
                continue
            if not raw.endswith(b"\n"):
                pending = (lineno, raw)  # complete JSON but no newline: the write may not have finished
                continue
            if not isinstance(record, dict):
                pending = (lineno, raw)
                continue
            yield record
        if pending is not None:
            logger.warning("%s: dropped a torn last line (%d bytes) left by an interrupted write",
                           path, len(pending[1]))


def _fail_middle(path: Path, lineno: int, strict: bool) -> None:
    if strict:
        raise RunDirError(f"{path} line {lineno} is not valid JSON (edited or corrupted); "
                          "restore the file or delete that line")
    logger.warning("%s: skipped unreadable line %d", path, lineno)


def valid_length(path: Path) -> int:
    """Byte length of the file up to and including its last complete line."""
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        data = fh.read()
    end = data.rfind(b"\n") + 1
    return end


class Journal:
    """Appends records to a JSONL file; `write_batch` makes a batch durable before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = valid_length(path)
        if path.exists() and path.stat().st_size != keep:
            logger.warning("%s: cut a torn last line left by an interrupted write", path)
            with path.open("r+b") as fh:
                fh.truncate(keep)
        self._fh = path.open("ab")

    def write_batch(self, records: Iterable[dict[str, Any]]) -> int:
        data = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)
        if data:
            faults.torn_write(self._fh, data)
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return data.count(b"\n")

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
