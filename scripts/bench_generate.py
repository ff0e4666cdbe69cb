"""Host-side cost of sample generation (rendering, validation, journaling) with the scripted
engine, so the pipeline never starves a GPU: samples/s, and peak RSS at two sizes (each size in its
own process) to show memory does not grow with the number of samples.

    python scripts/bench_generate.py [--sizes 10000 500000] [--mode json|text] [--dedup exact|near] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(n: int, mode: str, dedup: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted engine is test support
    from fake_engine import FakeEngine

    from topictree_hf.config import Config
    from topictree_hf.engines import ChatRequest
    from topictree_hf.pipeline import generate_stage
    from topictree_hf.rundir import RunDir
    from topictree_hf.tree.model import synthetic_tree

    counter = iter(range(10**9))
    vocab = [f"w{i:x}" for i in range(5000)]  # distinct texts, so near-duplicate checks keep them

    def answer(req: ChatRequest) -> str:
        k = next(counter)
        words = " ".join(vocab[(k * 7919 + i * 104729) % 5000] for i in range(14))
        if mode == "json":
            return f'{{"question": "What is fact number {k} here?", "answer": "Fact {k}: {words}."}}'
        return f" What is fact number {k} here?\nAnswer: Fact {k}: {words}."

    tree = synthetic_tree("Root", depth=3, degree=8)  # 512 leaves
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(generation={"num_samples": n, "mode": mode, "dedup": dedup}, engine={"batch_size": 1024})
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        engine = FakeEngine(answer, record=False)
        start = time.perf_counter()
        summary = generate_stage(config, engine, RunDir(Path(tmp)), tree)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.jsonl"))
    return {"samples": n, "mode": mode, "dedup": dedup, "valid": summary.valid, "seconds": round(seconds, 2),
            "samples_per_s": round(n / seconds), "peak_rss_mb": round(peak / 1024, 1),
            "rss_growth_mb": round((peak - base) / 1024, 1), "journal_mb": round(size / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 500_000])
    ap.add_argument("--mode", default="json", choices=["json", "text"])
    ap.add_argument("--dedup", default="exact", choices=["none", "exact", "near"])
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.mode, args.dedup)))
        return
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--mode", args.mode, "--dedup", args.dedup],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    if len(rows) > 1:
        print(f"peak RSS growth from {rows[0]['samples']:,} to {rows[-1]['samples']:,} samples: "
              f"{rows[-1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:.1f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
