"""What the Ray runner costs on top of the single-process runner, per sample, with the scripted engine
(no model: what is measured is the runner, not generation).

The fake engine is registered as backend "fake" through the real registry, in this process and in
every actor. Both runners get the same tree (512 leaves), the same config (exact dedup, so the cost
of near-dup checks does not hide the runner's) and the same answers; each run writes a fresh run dir.

    python scripts/bench_ray.py [--samples 10000] [--workers 1 2] [--cpus 2] [--json out.json]

Reported: Ray start-up (ray.init of a local cluster), each run's wall time (actor start-up included),
samples/s, and the overhead per sample against the local runner: overall, and split into a fixed
part (actor start-up, first blocks) and a marginal part per sample, from a second run at 1/5 the size.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted engine is test support
import fake_engine  # noqa: E402

WORDS = [f"{a}{b}{c}" for a in "bdfgklmnprstvz" for b in "aeiou" for c in "nrsl"]


def answer(req: Any) -> str:
    rng = random.Random(req.sampling.seed)
    return json.dumps({k: " ".join(rng.choices(WORDS, k=12)) + "." for k in req.json_schema["properties"]})


def scripted_engine(config: Any) -> Any:
    """Engine factory for the actors: register the scripted backend there, then go through the registry.
    The actors get tests/fake_engine.py by value (`register_pickle_by_value`): tests/ is not on their path."""
    from topictree_hf.engines import create_engine, register_backend

    register_backend("fake", lambda _cfg: fake_engine.FakeEngine(answer))
    return create_engine(config)


def make_tree() -> Any:
    from topictree_hf.tree.model import synthetic_tree

    return synthetic_tree("Root", depth=3, degree=8)  # 512 leaves


def make_config(run: Path, samples: int, batch_size: int) -> Any:
    from topictree_hf.config import Config

    return Config(generation={"num_samples": samples, "formats": ["qa"], "dedup": "exact"},
                  engine={"backend": "fake", "batch_size": batch_size}, output={"run_dir": str(run)})


def run_local(tmp: Path, samples: int, batch_size: int) -> dict[str, Any]:
    from topictree_hf.pipeline import generate_stage
    from topictree_hf.rundir import RunDir

    config = make_config(tmp / f"local{samples}", samples, batch_size)
    run_dir = RunDir(config.run_dir)
    run_dir.prepare(config)
    start = time.perf_counter()
    engine = scripted_engine(config.engine)
    summary = generate_stage(config, engine, run_dir, make_tree())
    seconds = time.perf_counter() - start
    return {"runner": "local", "workers": 1, "samples": samples, "valid": summary.valid,
            "seconds": round(seconds, 2), "samples_per_s": round(samples / seconds)}


def run_ray(tmp: Path, samples: int, batch_size: int, workers: int, block_size: int | None) -> dict[str, Any]:
    from topictree_hf.pipeline import generate_stage
    from topictree_hf.rundir import RunDir
    from topictree_hf.runners.ray_runner import RayOptions, RayRunner

    config = make_config(tmp / f"ray{workers}-{samples}", samples, batch_size)
    run_dir = RunDir(config.run_dir)
    run_dir.prepare(config)
    options = RayOptions(workers=workers, block_size=block_size, engine_factory=scripted_engine)
    start = time.perf_counter()
    summary = generate_stage(config, RayRunner(options), run_dir, make_tree())
    seconds = time.perf_counter() - start
    shards = len(list(run_dir.path.glob("samples-ray-*.jsonl")))
    return {"runner": "ray", "workers": workers, "samples": samples, "valid": summary.valid,
            "seconds": round(seconds, 2), "samples_per_s": round(samples / seconds), "blocks": shards}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--batch-size", type=int, default=32, help="engine.batch_size (requests per engine call)")
    ap.add_argument("--block-size", type=int, default=None, help="tasks per Ray block (default 4 x batch size)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
    from topictree_hf.engines import register_backend

    register_backend("fake", lambda _cfg: fake_engine.FakeEngine(answer))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        small = max(1, args.samples // 5)
        for n in (args.samples, small):
            rows.append(run_local(tmp, n, args.batch_size))
            print(json.dumps(rows[-1]), flush=True)
        import ray

        ray.cloudpickle.register_pickle_by_value(fake_engine)
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        rows.append({"runner": "ray.init", "cpus": args.cpus, "seconds": round(time.perf_counter() - start, 2)})
        print(json.dumps(rows[-1]), flush=True)
        try:
            for workers in args.workers:
                for n in (args.samples, small):
                    rows.append(run_ray(tmp, n, args.batch_size, workers, args.block_size))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            ray.shutdown()
    report(rows, args.samples, small)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def report(rows: list[dict[str, Any]], big: int, small: int) -> None:
    seconds = {(r["runner"], r.get("workers"), r.get("samples")): r["seconds"] for r in rows}
    local, local_small = seconds[("local", 1, big)], seconds[("local", 1, small)]
    local_marginal = (local - local_small) / (big - small)
    init = next(r["seconds"] for r in rows if r["runner"] == "ray.init")
    for row in rows:
        if row["runner"] != "ray" or row["samples"] != big:
            continue
        total, part = row["seconds"], seconds[("ray", row["workers"], small)]
        marginal = (total - part) / (big - small)
        fixed = total - marginal * big
        row["overhead_ms_per_sample"] = round(1000 * (total - local) / big, 3)
        row["marginal_ms_per_sample"] = round(1000 * marginal, 3)
        row["local_marginal_ms_per_sample"] = round(1000 * local_marginal, 3)
        row["fixed_s"] = round(fixed, 2)
        print(f"ray, {row['workers']} worker(s), {big:,} samples: {total} s vs local {local} s = "
              f"{row['overhead_ms_per_sample']:+.3f} ms per sample overall; marginal {1000 * marginal:.3f} ms per "
              f"sample (local {1000 * local_marginal:.3f}) + {fixed:.1f} s fixed (actor start-up); "
              f"ray.init {init} s not included")


if __name__ == "__main__":
    main()
