"""Benchmark `topictree eval` on a synthetic run dir of N samples (default 10,000).

    python scripts/bench_eval.py [--samples 10000] [--embed-sample 2000] [--compare-datasketch]

Samples are Q&A records over the 12-leaf tree of tests/corpora.py with answers of 8-12
sentences (about 150-200 words, like a generated answer), written as a real run dir and read back
the way the CLI reads it. Prints the time of each part and of the whole evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the constructed corpora are test support

from corpora import FACTS, NAMES, QUESTIONS, leaf_paths, record, write_run_dir  # noqa: E402

from topictree_hf.dedup.minhash import MinHasher  # noqa: E402
from topictree_hf.eval import EvalSettings, evaluate, format_table, read_source  # noqa: E402
from topictree_hf.eval.text import Corpus, sample_text  # noqa: E402


def long_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    paths = leaf_paths()
    out = []
    for i in range(n):
        path = paths[i % len(paths)]
        branch = [f for leaf in FACTS[path[1]].values() for f in leaf]
        sentences = rng.sample(FACTS[path[1]][path[2]], 4) + rng.sample(branch, rng.randint(2, 5))
        sentences += [f"{rng.choice(NAMES)} wrote about this in {rng.randint(1500, 2025)}, in chapter "
                      f"{rng.randint(1, 40)} of a book on {path[-1].lower()}." for _ in range(rng.randint(2, 3))]
        rng.shuffle(sentences)
        out.append(record(path, rng.choice(QUESTIONS).format(leaf=path[-1]), " ".join(sentences), i, "bench"))
    return out


def timed(label: str, fn, results: dict):
    """Wall time, and this process's CPU time: on a shared machine the CPU time shows the work
    done, the wall time also shows what others took (the load average is printed with it)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    results[label] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_avg_1m": os.getloadavg()[0]}
    print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU (load average {os.getloadavg()[0]:.1f})", flush=True)
    return value


class TimedEmbedder:
    """The real embedder, timing its `encode` calls (to split evaluate's time)."""

    def __init__(self, embedder) -> None:
        self.embedder, self.wall, self.cpu, self.texts = embedder, 0.0, 0.0, 0

    def encode(self, texts, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        out = self.embedder.encode(texts, **kwargs)
        self.wall += time.perf_counter() - start
        self.cpu += time.process_time() - cpu
        self.texts += len(texts)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--embed-sample", type=int, default=2000)
    ap.add_argument("--compare-datasketch", action="store_true", help="also time datasketch's MinHash.bulk")
    ap.add_argument("--json", help="write the timings here")
    args = ap.parse_args()
    times: dict = {}
    records = long_records(args.samples)
    words = sum(len(sample_text(r).split()) for r in records) / len(records)
    print(f"{len(records):,} samples, {words:.0f} words each on average")
    with tempfile.TemporaryDirectory() as tmp:
        write_run_dir(Path(tmp), records)
        from topictree_hf.embeddings import Embedder

        embedder = TimedEmbedder(timed("load the embedding model", Embedder.load, times))
        source = timed("read the run dir", lambda: read_source(tmp), times)
        settings = EvalSettings(embed_sample=args.embed_sample)
        result = timed("evaluate (everything, embeddings included)", lambda: evaluate(
            source.records, tree_leaves=source.tree_leaves, failures=source.failures, settings=settings,
            embedder=embedder), times)
    times["of which embedding"] = {"wall_s": round(embedder.wall, 2), "cpu_s": round(embedder.cpu, 2),
                                   "texts": embedder.texts}
    print(f"  of which embedding {embedder.texts:,} texts: {embedder.wall:.2f} s wall, {embedder.cpu:.2f} s CPU")
    corpus = timed("parts: split into words", lambda: Corpus.from_texts(sample_text(r) for r in records), times)
    timed("parts: MinHash signatures (numpy, 128 permutations)", lambda: MinHasher().signatures(corpus), times)
    if args.compare_datasketch:
        timed("parts: MinHash signatures (datasketch MinHash.bulk)", lambda: _datasketch(corpus), times)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps({"timings_s": times, "result": result}, indent=1) + "\n")


def _datasketch(corpus: Corpus) -> None:
    from datasketch import MinHash

    docs = []
    for text in corpus.texts:
        w = text.lower().split()
        docs.append([" ".join(w[i:i + 5]).encode() for i in range(max(1, len(w) - 4))])
    MinHash.bulk(docs, num_perm=128)


if __name__ == "__main__":
    main()
