"""Tree expansion cost with the scripted engine: engine calls and host time for depth 4, degree 8
(585 internal nodes, 4096 leaves). On a GPU box, pass --backend vllm --model DIR to time the real
expansion against one flat `generate` call over the same number of prompts.

    python scripts/bench_tree.py [--depth 4] [--degree 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted engine is test support
from fake_engine import FakeEngine

from topictree_hf.config import EngineConfig, TreeConfig
from topictree_hf.engines import ChatRequest, create_engine
from topictree_hf.tree.builder import TreeBuilder


def fake_answer(req: ChatRequest) -> str:
    content = req.messages[-1]["content"]
    topic = re.search(r'subtopics of "([^"]+)"', content).group(1)
    count = int(re.search(r"List (\d+) distinct", content).group(1))
    return json.dumps({"subtopics": [f"{topic[-20:]} part {i}" for i in range(count)]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--degree", type=int, default=8)
    ap.add_argument("--backend", default="fake")
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    config = TreeConfig(depth=args.depth, degree=args.degree, max_chars=120)
    if args.backend == "fake":
        engine = FakeEngine(fake_answer)
    else:
        engine = create_engine(EngineConfig(backend=args.backend, model=args.model, batch_size=1 << 20))
    start = time.perf_counter()
    tree = TreeBuilder(engine, config).build("Historical Events")
    seconds = time.perf_counter() - start
    stats = tree.stats()
    internal = stats["nodes"] - stats["leaves"]
    result = {"depth": args.depth, "degree": args.degree, "backend": args.backend, "nodes": stats["nodes"],
              "internal_nodes": internal, "leaves": stats["leaves"], "engine_calls": stats["engine_calls"],
              "reasks": stats["reasks"], "seconds": round(seconds, 3),
              "host_us_per_node": round(seconds / max(1, internal) * 1e6, 1)}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
