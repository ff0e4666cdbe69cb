"""Where a Ray worker journals: the run dir itself when its node sees the driver's, else a scratch
folder on its own node whose records travel back to the driver through Ray.

The driver writes a marker with a random token into the run dir (`mark_run_dir`) and hands the token
to every worker. A worker that finds the marker with that token at the same path shares the driver's
disk (NFS, a mounted bucket, or simply the same machine) and journals there, as before. Any other
worker (no such path, another disk mounted at it, or `RayOptions.share_run_dir=False`) journals in
`<tmp>/topictree-ray/<token>/<worker>` on its node: a block re-run there after the worker died still
finds what it journaled, and the block's records go back in its result; the driver writes them into
the run dir's block shards (`runners/blocks.receive_block`), each id once. So no node but the driver's
has to mount the run dir; what a lost node held of an unfinished block is generated again.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from pathlib import Path

from topictree_hf.rundir import RunDir

MARK = ".ray-run-dir"  # the driver's token; a worker that reads the same token shares the run dir


def mark_run_dir(run_dir: RunDir) -> str:
    """The run dir's token (made once, kept across stages and reruns), written where workers look."""
    mark = run_dir.path / MARK
    token = mark.read_text(encoding="utf-8").strip() if mark.exists() else ""
    if not token:
        token = secrets.token_hex(8)
        mark.write_text(token + "\n", encoding="utf-8")
    return token


def sees_run_dir(path: Path, token: str) -> bool:
    """True when the marker at `path` holds `token`: this node sees the driver's run dir."""
    try:
        return (path / MARK).read_text(encoding="utf-8").strip() == token
    except OSError:
        return False


def scratch_root(token: str) -> Path:
    return Path(tempfile.gettempdir()) / "topictree-ray" / token


def worker_run_dir(path: str, token: str, worker: str, share: bool | None = None) -> tuple[RunDir, bool]:
    """The run dir a worker journals in and whether it is the driver's: the driver's when it is seen
    here (and `share` is not False), else this worker's scratch folder on this node."""
    if share is not False and sees_run_dir(Path(path), token):
        return RunDir(Path(path)), True
    scratch = scratch_root(token) / worker
    scratch.mkdir(parents=True, exist_ok=True)
    return RunDir(scratch), False


def drop_scratch(run_dir: RunDir, shared: bool) -> None:
    """Remove a worker's scratch folder (never the driver's run dir), and the run's scratch folder on
    this node once no other worker has one there."""
    if not shared:
        shutil.rmtree(run_dir.path, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: another worker of the run is still here
            run_dir.path.parent.rmdir()
