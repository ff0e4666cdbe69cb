"""Looping at max_tokens on the bundled model: truncated rate and valid rate of the same 54 text-mode
Q&A requests (seeds fixed, no retries, no top-up) with and without a repetition penalty, through the
vllm backend; docs/quality.md has the figures. One line of JSON per setting:

    python scripts/bench_looping.py gen=p:1.0 gen=p:1.05 gen=p:1.1 judge=p:1.05,n:27
    TREE=runs/x/topic_tree.json python scripts/bench_looping.py gen=p:1.0   # a model-built tree
"""

import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_modes import tree as clean_tree  # scripts/ is on sys.path when run as a script

from topictree_hf.config import Config
from topictree_hf.engines import create_engine
from topictree_hf.generation.allocate import allocate
from topictree_hf.generation.generator import SampleGenerator
from topictree_hf.journal import Journal
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree


def tree() -> TopicTree:
    """The clean history tree of bench_modes.py, or the tree in $TREE (a model-built one)."""
    if os.environ.get("TREE"):
        return TopicTree.load(Path(os.environ["TREE"]))
    return clean_tree()


def measure(engine, n, penalty, judge=False, temperature=0.2, fmt="qa"):
    with tempfile.TemporaryDirectory() as tmp:
        gen = {
            "num_samples": n,
            "formats": [fmt],
            "mode": "text",
            "temperature": temperature,
            "max_retries": 0,
            "repetition_penalty": penalty,
        }
        if judge:
            gen["judge"] = {}
        config = Config(generation=gen, engine={"batch_size": 32})
        run = RunDir(Path(tmp))
        g = SampleGenerator(engine, config, run)
        tasks = list(allocate(tree(), config.generation))
        start = time.perf_counter()
        with Journal(run.sample_shard(0)) as s, Journal(run.failures) as f:
            summary = g.generate_tasks(tasks, s, f)
        summary.asked = n
        secs = time.perf_counter() - start
        fails = list(run.iter_failures())
        samples = list(run.iter_samples())
    return {
        "penalty": penalty,
        "judge": judge,
        "fmt": fmt,
        "temperature": temperature,
        "requests": n,
        "valid": summary.valid,
        "truncated": summary.rejections.get("truncated", 0),
        "rejections": dict(summary.rejections),
        "output_tokens": summary.output_tokens,
        "seconds": round(secs, 1),
        "summary": summary.to_dict() if judge else None,
        "details": dict(Counter(x.detail for x in fails)),
        "examples_truncated": [x.raw[-200:] for x in fails if x.reason == "truncated"][:3],
        "examples_valid": [s.messages for s in samples[:2]],
    }


def main():
    t = time.perf_counter()
    engine = create_engine(Config(engine={"backend": "vllm", "batch_size": 32, "max_model_len": 2048}).engine)
    print(json.dumps({"load_s": round(time.perf_counter() - t, 1)}), flush=True)
    for arg in sys.argv[1:]:
        kind, _, value = arg.partition("=")
        fields = dict(kv.split(":") for kv in value.split(",")) if value else {}
        pen = float(fields.get("p", 1.0))
        res = measure(engine, int(fields.get("n", 54)), pen, judge=kind == "judge", fmt=fields.get("fmt", "qa"))
        print(json.dumps(res), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
