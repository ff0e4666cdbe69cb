"""Cost of `generation.dedup: semantic` per sample: what the Dedup step (generation/steps.py) spends on
a new sample with 400 or 4,000 samples kept before, embedding one sample at a time or a group at once.

    python scripts/bench_dedup_semantic.py                       # kept 400 and 4000, 128 new samples
    python scripts/bench_dedup_semantic.py --kept 400 --new 64 --groups 16

Per kept size and mode it times the step's own calls on fresh new samples (~130 words, English, from
the constructed corpora of tests/corpora.py; MiniLM on the CPU):
  one-by-one  `check_and_add(text, branch)`: each sample embedded on its own, then checked
  group N     `embed(texts of N samples)` in one pass, then `check_and_add(..., vector=...)` for each
              (what the step does per flush group; N = 16 is the stream's group at engine.batch_size >= 16)
and splits a grouped run into its embedding pass and its checks (exact, MinHash and the cosine against
the kept vectors of the sample's branch). The kept samples are spread over `--branches` depth-1
branches (1: every sample compared with all kept ones, the cost before branch scoping); their
vectors are random unit vectors (no new sample is near one, so every new sample takes the full path
and is kept), which costs the same per comparison as real ones and spares embedding thousands of
texts first. Times are CPU milliseconds per sample (process_time: all threads of this process, what an
idle machine would see), medians of --repeat runs; the wall time is printed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the constructed corpora are test support

from corpora import FACTS, NAMES, QUESTIONS  # noqa: E402

from topictree_hf.dedup import NearDeduper  # noqa: E402
from topictree_hf.threads import passive_omp_wait  # noqa: E402

ROOT = "Science and Everyday Life"


def new_samples(n: int, seed: int) -> list[tuple[str, tuple[str, str], str]]:
    """n (text, branch, user turn) of about 130 words: a question and facts of its branch, in a
    random order, with a name and a year."""
    rng = random.Random(seed)
    branches = list(FACTS)
    out = []
    for i in range(n):
        branch = branches[i % len(branches)]
        facts = [f for leaf in FACTS[branch].values() for f in leaf]
        leaf = rng.choice(list(FACTS[branch]))
        question = rng.choice(QUESTIONS).format(leaf=leaf) + f" (case {seed}-{i})"
        body = rng.sample(facts, 8)
        body.insert(rng.randrange(len(body)), f"{rng.choice(NAMES)} wrote about it in {rng.randint(1800, 2025)}.")
        out.append((f"{question}\n{' '.join(body)}", (ROOT, branch), question))
    return out


def filled(kept: int, branches: int, seed: int) -> NearDeduper:
    """A semantic deduper holding `kept` texts (distinct words, random unit vectors), over `branches`."""
    rng = np.random.default_rng(seed)
    dedup = NearDeduper(0.8, semantic_threshold=0.9)
    words = [f"w{i}" for i in range(5000)]
    for i in range(kept):
        text = " ".join(words[j] for j in rng.integers(0, len(words), 60))
        vector = rng.standard_normal(384).astype(np.float32)
        assert dedup.check_and_add(text, (ROOT, f"branch {i % branches}"), label=text[:40],
                                   vector=vector / np.linalg.norm(vector)) is None
    return dedup


def one_by_one(dedup: NearDeduper, samples: list[tuple[str, tuple[str, str], str]]) -> dict[str, float]:
    start = time.process_time()
    for text, branch, user in samples:
        dedup.check_and_add(text, branch, label=user)
    return {"total": time.process_time() - start}


def grouped(size: int) -> Callable[[NearDeduper, list[tuple[str, tuple[str, str], str]]], dict[str, float]]:
    def run(dedup: NearDeduper, samples: list[tuple[str, tuple[str, str], str]]) -> dict[str, float]:
        embed = check = 0.0
        for at in range(0, len(samples), size):
            group = samples[at:at + size]
            start = time.process_time()
            vectors = dedup.embed([text for text, _, _ in group])
            middle = time.process_time()
            for (text, branch, user), vector in zip(group, vectors, strict=True):
                dedup.check_and_add(text, branch, label=user, vector=vector)
            embed, check = embed + middle - start, check + time.process_time() - middle
        return {"total": embed + check, "embed": embed, "check": check}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kept", type=int, nargs="+", default=[400, 4000])
    parser.add_argument("--new", type=int, default=128, help="new samples checked per run")
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--branches", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    passive_omp_wait()  # before torch loads, as the embedder does (spinning OpenMP workers stall a shared CPU)
    import torch

    from topictree_hf.embeddings import Embedder

    if args.threads:
        torch.set_num_threads(args.threads)

    start, wall = time.process_time(), time.perf_counter()
    embedder = Embedder.load()
    words = statistics.mean(len(t.split()) for t, _, _ in new_samples(64, 0))
    pieces = statistics.mean(len(ids) for ids in embedder.tokenizer([t for t, _, _ in new_samples(64, 0)],
                                                                    truncation=True, max_length=256)["input_ids"])
    print(f"embedder load: {time.process_time() - start:.2f} CPU s, {time.perf_counter() - wall:.2f} wall s  "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}); new samples: {words:.0f} words, {pieces:.0f} word pieces on average")
    modes = {"one-by-one": one_by_one} | {f"group {n}": grouped(n) for n in args.groups}
    print(f"{'kept':>6} {'branches':>8} {'mode':>11} {'ms/sample':>10} {'embed':>7} {'check':>7} {'wall ms/s':>10}")
    seed = 0
    for kept in args.kept:
        for branches in args.branches:
            for name, mode in modes.items():
                runs, walls = [], []
                for _ in range(args.repeat):
                    seed += 1
                    dedup, samples = filled(kept, branches, seed), new_samples(args.new, seed)
                    wall = time.perf_counter()
                    runs.append(mode(dedup, samples))
                    walls.append(time.perf_counter() - wall)
                med = {k: statistics.median(r[k] for r in runs) * 1000 / args.new for k in runs[0]}
                parts = f"{med['embed']:>7.2f} {med['check']:>7.2f}" if "embed" in med else f"{'':>7} {'':>7}"
                print(f"{kept:>6} {branches:>8} {name:>11} {med['total']:>10.2f} {parts} "
                      f"{statistics.median(walls) * 1000 / args.new:>10.2f}", flush=True)
    print(f"CPU ms per new sample (process_time, all threads), medians of {args.repeat}; load average "
          f"{os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
