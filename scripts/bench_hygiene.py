"""Cost of tree hygiene per level: what checking N new children of one level adds to a tree build.

    python scripts/bench_hygiene.py                     # levels of 4, 16, 64, 256 children
    python scripts/bench_hygiene.py --sizes 4 16 --repeat 5

Per level size it times, with the embedder already loaded (its one-off load is printed apart):
  keys     topic_key + GlobalTopicIndex.check_and_add + restates for every child (pure Python)
  synonym  SemanticMatcher (tree/semantic.py) against siblings and cousins, as the builder calls it
           (one embedding call per child); "batched" (as tree/builder.py does): the level's children embedded
           in one call first
  drift    DriftChecker.score_level (root, parent, parent's siblings, domain anchors)
Each level uses fresh topic texts (nothing cached from the level before), as in a real build; the
drift anchors are embedded once per process (before the table). The median of --repeat runs, in
CPU milliseconds (process_time, all threads): on a shared machine the wall time depends on the others.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time

ADJ = ["Ancient", "Modern", "Regional", "Coastal", "Urban", "Rural", "Royal", "Medieval", "Northern", "Southern",
       "Traditional", "Colonial", "Industrial", "Maritime", "Imperial", "Nomadic"]
NOUN = ["Trade Routes", "Festivals", "Architecture", "Cuisine", "Warfare", "Religion", "Music", "Farming",
        "Literature", "Law", "Medicine", "Astronomy", "Textiles", "Pottery", "Navigation", "Coinage"]


def _clock() -> float:
    """CPU seconds of this process (all threads): on a shared machine, the cost an idle one would
    see; the wall time is printed too, for the load while it ran."""
    return time.process_time()


def level(n: int, seed: int) -> list[tuple[str, list[str], list[str]]]:
    """n children (degree 4) of n/4 parents, each a fresh phrase, with a 2-deep path and the
    parent's siblings."""
    names = [f"{a} {b}" for a, b in itertools.product(ADJ, NOUN)]
    start = (seed * 97) % len(names)
    pick = [f"{names[(start + i) % len(names)]} {seed}-{i}" for i in range(n + n // 4)]
    parents, children = pick[:max(1, n // 4)], pick[n // 4:]
    items = []
    for i, child in enumerate(children[:n]):
        parent = parents[i // 4 % len(parents)]
        items.append((child, ["World History", parent], [p for p in parents[:8] if p != parent]))
    return items


def time_level(items, matcher, checker) -> dict[str, float]:
    from topictree_hf.tree.hygiene import GlobalTopicIndex, near_synonym, restates

    out = {}
    start = _clock()
    index = GlobalTopicIndex()
    for child, path, _ in items:
        index.check_and_add(child) or restates(child, path)
    out["keys"] = _clock() - start
    start = _clock()
    kept: list[str] = []
    for i, (child, _path, _) in enumerate(items):
        family = i // 4 * 4
        near_synonym(matcher, child, kept[family:], kept[:family])
        kept.append(child)
    out["synonym"] = _clock() - start
    fresh = type(matcher)(matcher.threshold)  # the same, with the level's texts embedded in one batch first
    start = _clock()
    fresh._vectors([child for child, _, _ in items])
    kept = []
    for i, (child, _path, _) in enumerate(items):
        family = i // 4 * 4
        near_synonym(fresh, child, kept[family:], kept[:family])
        kept.append(child)
    out["synonym_batched"] = _clock() - start
    start = _clock()
    checker.score_level(items)
    out["drift"] = _clock() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64, 256])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from topictree_hf.embeddings import Embedder
    from topictree_hf.tree.drift import DriftChecker
    from topictree_hf.tree.semantic import SemanticMatcher

    start = _clock()
    wall = time.perf_counter()
    Embedder.load()
    cpu = platform.processor() or platform.machine()
    print(f"embedder load: {_clock() - start:.2f} CPU s, {time.perf_counter() - wall:.2f} wall s  "
          f"({cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()})")
    checker = DriftChecker()
    checker.vectors(list(checker.anchors))  # once per process
    print(f"{'children':>8} {'keys ms':>9} {'synonym ms':>11} {'batched ms':>11} {'drift ms':>9} "
          f"{'total* ms':>10} {'ms/child*':>10}   (* keys + batched synonym + drift)")
    seed = 0
    wall = time.perf_counter()
    for n in args.sizes:
        runs = []
        for _ in range(args.repeat):
            seed += 1
            runs.append(time_level(level(n, seed), SemanticMatcher(0.88), checker))
        med = {k: statistics.median(r[k] for r in runs) * 1000 for k in runs[0]}
        total = med["keys"] + med["synonym_batched"] + med["drift"]
        print(f"{n:>8} {med['keys']:>9.2f} {med['synonym']:>11.1f} {med['synonym_batched']:>11.1f} "
              f"{med['drift']:>9.1f} {total:>10.1f} {total / n:>10.2f}")
    load = os.getloadavg()[0]
    print(f"all times are CPU ms (process_time); wall {time.perf_counter() - wall:.1f} s for the table, "
          f"load average {load:.1f} at the end")


if __name__ == "__main__":
    main()
