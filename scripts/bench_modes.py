"""JSON-guided vs tagged-text output on one model: valid rate and on-topic rate of the same Q&A
requests in both modes (issue 4: pick the better one as the default for small models).

    python scripts/bench_modes.py [--model bundled:smollm2-135m-instruct] [--samples 24] [--temperature 0.3 0.8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from topictree_hf.config import Config
from topictree_hf.engines import create_engine
from topictree_hf.eval.report import evaluate
from topictree_hf.pipeline import generate_stage
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

OUTLINE = {
    "Ancient History": ["Roman Empire", "Ancient Egypt", "Classical Greece"],
    "World Wars": ["World War I", "World War II", "Interwar Period"],
    "Age of Exploration": ["Voyages of Columbus", "Silk Road Trade", "Circumnavigation of the Globe"],
    "Revolutions": ["French Revolution", "American Revolution", "Industrial Revolution"],
}


def tree() -> TopicTree:
    t = TopicTree.new("Historical Events")
    for branch, leaves in OUTLINE.items():
        b = t.add_child(t.root_id, branch).id
        for leaf in leaves:
            t.add_child(b, leaf)
    return t


def measure(engine, model: str, mode: str, temperature: float, samples: int) -> dict:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(generation={"num_samples": samples, "mode": mode, "temperature": temperature,
                                    "max_retries": 0, "dedup": "exact", "max_tokens": 192},
                        engine={"model": model, "batch_size": samples})
        run = RunDir(Path(tmp))
        start = time.perf_counter()
        summary = generate_stage(config, engine, run, tree())
        seconds = time.perf_counter() - start
        records = [s.to_json() for s in run.iter_samples()]
        report = evaluate(records, failures=summary.failed) if records else None
    on_topic = report["quality"]["on_topic_rate"] if report else 0.0
    return {"mode": mode, "temperature": temperature, "requests": samples, "valid": summary.valid,
            "valid_rate": round(summary.valid / samples, 3), "on_topic_rate_of_valid": on_topic,
            "valid_and_on_topic": round(summary.valid / samples * (on_topic or 0.0), 3),
            "rejections": dict(summary.rejections), "seconds": round(seconds, 1),
            "output_tok_s": summary.to_dict()["output_tokens_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--temperature", type=float, nargs="+", default=[0.3, 0.8])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    engine = create_engine(Config(engine={"backend": args.backend, "model": args.model}).engine)
    rows = [measure(engine, args.model, mode, t, args.samples) for t in args.temperature for mode in ("json", "text")]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
