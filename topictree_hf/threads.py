"""Process settings a torch user needs before torch loads, applied when an engine or the embedder is
created (never at import). Below both engines/ and embeddings.py, which call it."""

from __future__ import annotations

import os
import sys


def passive_omp_wait() -> None:
    """torch's OpenMP workers spin while they wait; when other processes share the cores (CI boxes,
    shared machines) that stalls CPU generation 10-20x (docs/benchmarks.md). libgomp reads
    OMP_WAIT_POLICY once, when torch loads, so this only has an effect before the first `import torch`:
    `create_engine` and the embedder call it before they import a torch backend. A user's own value wins."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
