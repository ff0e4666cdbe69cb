"""Tree hygiene cost inside TreeBuilder (docs/quality.md, "Tree hygiene cost"):

    python scripts/bench_hygiene_builder.py

 CPU ms of the hygiene work (drift batch, near-synonym
priming, per-candidate checks) of the FIRST round of each level (N = every child of the level),
median of reps; the fake engine's own time is excluded."""

import itertools
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
from fake_engine import FakeEngine
from fake_model import subtopic_count

from topictree_hf.config import TreeConfig
from topictree_hf.tree import builder as B
from topictree_hf.tree.drift import DriftChecker
from topictree_hf.tree.semantic import SemanticMatcher

REGIONS = [
    "Andean",
    "Baltic",
    "Balkan",
    "Nordic",
    "Persian",
    "Mughal",
    "Ottoman",
    "Aztec",
    "Mayan",
    "Khmer",
    "Zulu",
    "Celtic",
    "Iberian",
    "Anatolian",
    "Bengal",
    "Swahili",
]
ERAS = ["Bronze Age", "Iron Age", "Medieval", "Early Modern", "Colonial", "Victorian", "Interwar", "Postwar"]
EVENTS = ["Wars", "Trade", "Treaties", "Dynasties", "Revolts", "Migrations", "Famines", "Reforms"]
COMBOS = [" ".join(c) for c in itertools.product(REGIONS, ERAS, EVENTS)]


def make_engine(offset):
    state = {"i": offset}

    def respond(req):
        out = []
        for _ in range(subtopic_count(req)):
            out.append(COMBOS[(state["i"] * 389) % len(COMBOS)])
            state["i"] += 1
        return json.dumps({"subtopics": out})

    return FakeEngine(respond, record=False)


def run(variant, offset):
    from topictree_hf.embeddings import Embedder

    enc = Embedder.load().encode
    drift = similar = None
    if "drift" in variant:
        drift = DriftChecker(encode=enc)
        drift.vectors(list(drift.anchors))  # anchors: once per process
    if "semantic" in variant:
        similar = SemanticMatcher(0.88, encode=drift.vectors if drift else enc)
    b = B.TreeBuilder(make_engine(offset), TreeConfig(depth=4, degree=4), similar=similar, drift=drift)
    rounds = []  # (level size of first round?, candidates, seconds)
    cur = {"t": 0.0, "n": 0}

    def timed(name):
        orig = getattr(b, name)

        def f(*a, **k):
            c = time.process_time()
            r = orig(*a, **k)
            cur["t"] += time.process_time() - c
            return r

        setattr(b, name, f)

    for n in ("_score_drift", "_prime_similar", "_absorb"):
        timed(n)
    orig_gen = b.engine.generate

    def gen(reqs, progress=None):
        if cur["n"]:
            rounds.append((cur["n"], cur["t"], cur["first"]))
        cur["t"] = 0.0
        cur["n"] = sum(subtopic_count(r) for r in reqs)
        cur["first"] = cur.pop("new", False)
        return orig_gen(reqs, progress)

    b.engine.generate = gen
    orig_exp = b._expand_level

    def exp(*a):
        cur["new"] = True
        return orig_exp(*a)

    b._expand_level = exp
    tree = b.build("World History")
    rounds.append((cur["n"], cur["t"], cur["first"]))
    return rounds, tree


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    c = time.process_time()
    w = time.perf_counter()
    from topictree_hf.embeddings import Embedder

    Embedder.load()
    print(
        f"Embedder.load(): {time.process_time() - c:.2f} CPU s, {time.perf_counter() - w:.2f} wall s; "
        f"load avg {os.getloadavg()[0]:.1f}"
    )
    c = time.process_time()
    d = DriftChecker()
    d.vectors(list(d.anchors))
    print(f"anchors: {1000 * (time.process_time() - c):.0f} CPU ms once per process")
    variants = ["words", "drift", "semantic", "drift+semantic"]
    per = {v: {} for v in variants}
    off = 0
    for r in range(reps):
        for v in variants:
            off += 1
            rounds, tree = run(v, off * 97)
            firsts = [(n, t) for n, t, first in rounds if first]
            for lvl, (n, t) in enumerate(firsts):
                per[v].setdefault(lvl, []).append((n, t))
            if r == 0:
                print(
                    f"  {v}: rounds {[n for n, _, _ in rounds]} hygiene {tree.hygiene} "
                    f"nodes {tree.stats()['nodes_per_level']}"
                )
    print(
        "level  "
        + " ".join(f"{v:>22}" for v in variants)
        + "   (N children asked in the first round: CPU ms of hygiene, median)"
    )
    for lvl in range(4):
        cells = []
        for v in variants:
            runs = per[v].get(lvl, [])
            n = statistics.median(x[0] for x in runs)
            t = statistics.median(x[1] for x in runs) * 1000
            cells.append(f"N={n:>3.0f}: {t:7.1f} ({t / n:4.1f}/ch)")
        print(f"{lvl + 1:>5}  " + " ".join(f"{c:>22}" for c in cells))
    print(f"load avg at end {os.getloadavg()[0]:.1f}")
