"""The diversity ablation: does the tree (and not the dedup stage or the angles) make the data
diverse? Runs the arms of `topictree baseline --variant` with ONE engine, the same model, sampling,
format, sample count and de-duplication (`none` while generating), then evaluates every arm with
`topictree eval` twice -- as generated (dedup none) and after the default de-duplication (MinHash,
`near`) applied to the same samples -- at equal N (the smallest arm's count, a seeded pick by id).

    python scripts/ablation.py --out runs/ablation-qwen --backend vllm \\
        --model ~/.cache/topictree_models/qwen2.5-coder-0.5b-instruct.gguf \\
        --root "Programming Concepts" --depth 2 --degree 4 --samples 200
    python scripts/ablation.py --out runs/ablation-smollm --temperature 0.2 --samples 54   # bundled model

Resumable: each arm is a run dir under --out (a rerun finishes what is missing and re-evaluates);
the table goes to OUT/ablation.md and every figure to OUT/ablation.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from topictree_hf.config import Config, GenerationConfig
from topictree_hf.dedup import make_deduper
from topictree_hf.engines import create_engine
from topictree_hf.eval.text import equal_size, sample_text
from topictree_hf.pipeline import run_baseline
from topictree_hf.records import messages_text
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

ARMS = ("tree+angles", "tree", "flat", "naive+angles", "naive")  # tree+angles first: the others reuse its tree
DEDUPS = ("none", "near")
COLUMNS = [  # (header, group, key, kind)
    ("N", None, "samples", "int"), ("words", None, "mean_words", "f1"),
    ("exact dup", "diversity", "exact_duplicate_rate", "pct"), ("near dup", "diversity", "near_duplicate_rate", "pct"),
    ("sem. dup", "diversity", "semantic_duplicate_rate", "pct"), ("distinct-2", "diversity", "distinct_2", "f3"),
    ("self-BLEU", "diversity", "self_bleu", "f3"), ("Vendi", "diversity", "vendi_score", "f1"),
    ("mean cos", "diversity", "mean_pairwise_cosine", "f3"), ("leaf cov.", "tree", "leaf_coverage", "pct"),
    ("valid", "quality", "valid_rate", "pct"), ("on-topic", "quality", "on_topic_rate", "pct"),
    ("on-topic near dup", "on_topic", "near_duplicate_rate", "pct"),
    ("on-topic sem. dup", "on_topic", "semantic_duplicate_rate", "pct"),
    ("on-topic Vendi", "on_topic", "vendi_score", "f1"),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--root", default="Historical Events")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--degree", type=int, default=3)
    p.add_argument("--samples", type=int, default=54)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--format", default="qa")
    p.add_argument("--backend", default="transformers")
    p.add_argument("--model", default="bundled:smollm2-135m-instruct")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tree-dedup", choices=("exact", "semantic"), default="semantic",
                   help="tree.dedup (exact: resume run dirs made before semantic became the default)")
    p.add_argument("--no-drift", action="store_true", help="tree.drift off (run dirs made before it existed)")
    p.add_argument("--arms", default=",".join(ARMS), help="comma list, a subset of " + ", ".join(ARMS))
    return p.parse_args()


def base_config(a: argparse.Namespace) -> Config:
    tree = {"depth": a.depth, "degree": a.degree, "dedup": a.tree_dedup, "drift": not a.no_drift}
    return Config(root=a.root, tree=tree,
                  generation={"num_samples": a.samples, "temperature": a.temperature, "formats": [a.format],
                              "dedup": "none", "max_tokens": a.max_tokens, "seed": a.seed},
                  engine={"backend": a.backend, "model": a.model, "batch_size": a.batch_size})


def run_arms(config: Config, out: Path, arms: list[str]) -> dict[str, float]:
    """Generate every arm with one engine; seconds per arm (0 for an arm that was already complete)."""
    seconds: dict[str, float] = {}
    engine = create_engine(config.engine)
    try:
        tree_file = out / "tree+angles" / "topic_tree.json"
        for arm in arms:
            if arm in ("tree", "flat") and not tree_file.exists():
                raise SystemExit(f"arm {arm} needs the tree of arm tree+angles: run that arm first")
            leaves = len(TopicTree.load(tree_file).leaves()) if tree_file.exists() else None
            start = time.perf_counter()
            run_dir = RunDir(out / arm)
            run_dir.path.mkdir(parents=True, exist_ok=True)
            output = config.output.model_copy(update={"run_dir": run_dir.path})
            run_baseline(config.model_copy(update={"output": output}), run_dir, lambda: nullcontext(engine),
                         variant=arm, flat_size=leaves,
                         tree_file=tree_file if arm == "tree" else None)
            seconds[arm] = round(time.perf_counter() - start, 1)
            print(f"{arm}: {len(list(run_dir.iter_samples()))} samples in {seconds[arm]} s", flush=True)
    finally:
        engine.close()
    return seconds


def kept(records: list[dict[str, Any]], dedup: str) -> list[dict[str, Any]]:
    """The samples the `dedup` setting keeps, judged in id order (the order a resume replays)."""
    deduper = make_deduper(GenerationConfig(dedup=dedup))
    return [r for r in records if deduper.check_and_add(messages_text(r["messages"])) is None]


def eval_arm(out: Path, arm: str, dedup: str, records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Write the equal-N pick (the seeded pick `topictree eval --baseline` makes) as a run dir and
    measure it with `topictree eval`."""
    pick = equal_size(records, n)
    folder = out / "eval" / f"{arm}.{dedup}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "samples-00000.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pick))
    for name in ("topic_tree.json", "failures.jsonl"):
        if (out / arm / name).exists():
            shutil.copy(out / arm / name, folder / name)
    result_file = out / "eval" / f"{arm}.{dedup}.json"
    cli = "import sys; from topictree_hf.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", cli, "eval", str(folder), "--json", str(result_file), "--no-card"],
                   check=True, stdout=subprocess.DEVNULL)
    result = json.loads(result_file.read_text())["set"]
    result["mean_words"] = sum(len(sample_text(r).split()) for r in pick) / len(pick)
    return result


def cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    return {"int": f"{value}", "f1": f"{value:.1f}", "f3": f"{value:.3f}", "pct": f"{100 * value:.1f}%"}[kind]


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = "| arm | dedup | " + " | ".join(c[0] for c in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for dedup in DEDUPS:
        for arm, by_dedup in results.items():
            r = by_dedup[dedup]
            vals = [cell(r.get(key) if group is None else r.get(group, {}).get(key), kind)
                    for _, group, key, kind in COLUMNS]
            rows.append(f"| {arm} | {dedup} | " + " | ".join(vals) + " |")
    return "\n".join(rows)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `kill PID` unwinds like Ctrl-C: the engine is closed, no vLLM process left behind


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    a = parse_args()
    arms = [arm for arm in a.arms.split(",") if arm]
    a.out.mkdir(parents=True, exist_ok=True)
    config = base_config(a)
    seconds = run_arms(config, a.out, arms)
    samples = {arm: sorted((s.to_json() for s in RunDir(a.out / arm).iter_samples()), key=lambda r: r["id"])
               for arm in arms}
    results: dict[str, dict[str, dict[str, Any]]] = {arm: {} for arm in arms}
    for dedup in DEDUPS:
        pools = {arm: kept(records, dedup) for arm, records in samples.items()}
        n = min(len(p) for p in pools.values())
        for arm in arms:
            results[arm][dedup] = eval_arm(a.out, arm, dedup, pools[arm], n)
            results[arm][dedup]["pool"] = len(pools[arm])
    text = table(results)
    (a.out / "ablation.md").write_text(text + "\n")
    (a.out / "ablation.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                      "seconds": seconds, "results": results}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
