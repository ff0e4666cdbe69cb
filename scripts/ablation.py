"""The diversity ablation: does the tree (and not the dedup stage or the angles) make the data
diverse? Runs the arms of `topictree baseline --variant` with ONE engine, the same model, sampling,
format, sample count and de-duplication (`none` while generating), then evaluates every arm with
`topictree eval` twice -- as generated (dedup none) and after the default de-duplication (MinHash,
`near`) applied to the same samples -- at equal N (the smallest arm's count, a seeded pick by id).

    python scripts/ablation.py --out runs/ablation-qwen --backend vllm \\
        --model ~/.cache/topictree_models/qwen2.5-coder-0.5b-instruct.gguf \\
        --root "Programming Concepts" --depth 2 --degree 4 --samples 200
    python scripts/ablation.py --out runs/ablation-smollm --temperature 0.2 --samples 54   # bundled model

An arm is a baseline variant (naive, naive+angles, flat, tree, tree+angles) with optional modifiers:
`+plan` (generation.plan: each leaf's samples planned first), `+auto` (the tree's shape chosen from the
sample count at --target-per-leaf instead of --depth/--degree) and `+sem` (generation.dedup semantic
while generating, re-asking a sample too close to a kept one of its branch):

    python scripts/ablation.py --out runs/abl400-pc --backend vllm --model bundled:qwen2.5-coder-0.5b-instruct \
        --root "Programming Concepts" --depth 2 --degree 4 --samples 400 \
        --arms tree+angles,naive,naive+angles,tree+angles+plan,tree+angles+auto,tree+angles+plan+auto

Resumable: each arm is a run dir under --out (a rerun finishes what is missing and re-evaluates);
what an arm cost (wall seconds, generated tokens, plan tokens) is added up over sittings in
OUT/ARM/ablation_cost.json; the table goes to OUT/ablation.md and every figure to OUT/ablation.json.
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

from topictree_hf.config import Config, GenerationConfig, auto_shape
from topictree_hf.dedup import make_deduper
from topictree_hf.engines import create_engine
from topictree_hf.eval.text import equal_size, sample_text
from topictree_hf.pipeline import run_baseline
from topictree_hf.records import messages_text
from topictree_hf.rundir import RunDir
from topictree_hf.tree.model import TopicTree

ARMS = ("tree+angles", "tree", "flat", "naive+angles", "naive")  # tree+angles first: the others reuse its tree
MODIFIERS = ("plan", "auto", "sem")
DEDUPS = ("none", "near")
COLUMNS = [  # (header, group, key, kind)
    ("N", None, "samples", "int"), ("words", None, "mean_words", "f1"),
    ("tok/sample", None, "tokens_per_sample", "f1"), ("wall s", None, "wall_seconds", "int"),
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
    p.add_argument("--target-per-leaf", type=float, default=4.0, help="generation.target_per_leaf of the +auto arms")
    p.add_argument("--arms", default=",".join(ARMS),
                   help="comma list: " + ", ".join(ARMS) + ", each optionally with +" + ", +".join(MODIFIERS))
    return p.parse_args()


def split_arm(arm: str) -> tuple[str, set[str]]:
    """("tree+angles", {"plan", "auto"}) for "tree+angles+plan+auto"."""
    parts = arm.split("+")
    mods = set()
    while parts and parts[-1] in MODIFIERS:
        mods.add(parts.pop())
    variant = "+".join(parts)
    if variant not in ARMS:
        raise SystemExit(f"unknown arm {arm!r}: a variant ({', '.join(ARMS)}) with modifiers +{', +'.join(MODIFIERS)}")
    return variant, mods


def arm_config(config: Config, arm: str) -> Config:
    """The base config with the arm's modifiers applied."""
    _, mods = split_arm(arm)
    gen, tree = config.generation, config.tree
    gen = gen.model_copy(update={"plan": "plan" in mods, "dedup": "semantic" if "sem" in mods else "none"})
    if "auto" in mods:
        depth, degree = auto_shape(gen.num_samples, gen.target_per_leaf)
        tree = tree.model_copy(update={"depth": depth, "degree": degree})
    return config.model_copy(update={"generation": gen, "tree": tree})


def base_config(a: argparse.Namespace) -> Config:
    tree = {"depth": a.depth, "degree": a.degree, "dedup": a.tree_dedup, "drift": not a.no_drift}
    return Config(root=a.root, tree=tree,
                  generation={"num_samples": a.samples, "temperature": a.temperature, "formats": [a.format],
                              "dedup": "none", "max_tokens": a.max_tokens, "seed": a.seed,
                              "target_per_leaf": a.target_per_leaf},
                  engine={"backend": a.backend, "model": a.model, "batch_size": a.batch_size})


def run_arms(config: Config, out: Path, arms: list[str]) -> dict[str, float]:
    """Generate every arm with one engine; seconds per arm in this sitting (about 0 for a complete arm).
    Each arm's cost is added to OUT/ARM/ablation_cost.json (wall seconds, tokens generated for samples
    and for plans), so an arm finished over several sittings reports its whole cost."""
    seconds: dict[str, float] = {}
    engine = create_engine(config.engine)
    try:
        tree_file = out / "tree+angles" / "topic_tree.json"
        for arm in arms:
            variant, mods = split_arm(arm)
            shared = tree_of(out, arm)
            if shared is not None and not shared.exists():  # e.g. a second root run on fewer arms
                print(f"{arm}: arm {shared.parent.name} was not run here, so {arm} grows its own tree", flush=True)
                shared = None
            leaves = len(TopicTree.load(tree_file).leaves()) if tree_file.exists() else None
            start = time.perf_counter()
            run_dir = RunDir(out / arm)
            run_dir.path.mkdir(parents=True, exist_ok=True)
            output = config.output.model_copy(update={"run_dir": run_dir.path})
            summary = run_baseline(arm_config(config, arm).model_copy(update={"output": output}), run_dir,
                                   lambda: nullcontext(engine), variant=variant, flat_size=leaves,
                                   tree_file=shared if variant != "flat" else None)
            seconds[arm] = round(time.perf_counter() - start, 1)
            add_cost(run_dir.path / "ablation_cost.json", seconds[arm], summary.output_tokens,
                     summary.plan_output_tokens)
            print(f"{arm}: {len(list(run_dir.iter_samples()))} samples in {seconds[arm]} s", flush=True)
    finally:
        engine.close()
    return seconds


def tree_of(out: Path, arm: str) -> Path | None:
    """The tree an arm shares (None: it builds its own): the tree arms (with or without +plan/+sem) use
    the tree of tree+angles, the +auto arms the tree of tree+angles+auto, so that within each group only
    the arm's own change differs. An arm whose tree owner was not run grows its own (run_arms)."""
    variant, mods = split_arm(arm)
    if variant == "flat" or variant.startswith("naive"):
        return out / "tree+angles" / "topic_tree.json" if variant == "flat" else None
    owner = "tree+angles+auto" if "auto" in mods else "tree+angles"
    return None if arm == owner else out / owner / "topic_tree.json"


def add_cost(path: Path, seconds: float, tokens: int, plan_tokens: int) -> None:
    cost = json.loads(path.read_text()) if path.exists() else {"seconds": 0.0, "output_tokens": 0, "plan_tokens": 0}
    cost["seconds"] += seconds
    cost["output_tokens"] += tokens
    cost["plan_tokens"] += plan_tokens
    path.write_text(json.dumps(cost) + "\n")


def arm_cost(out: Path, arm: str, delivered: int) -> dict[str, float | None]:
    path = out / arm / "ablation_cost.json"
    if not path.exists() or not delivered:
        return {"tokens_per_sample": None, "wall_seconds": None}
    cost = json.loads(path.read_text())
    return {"tokens_per_sample": (cost["output_tokens"] + cost["plan_tokens"]) / delivered,
            "wall_seconds": cost["seconds"]}


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
    for arm in arms:
        split_arm(arm)
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
            results[arm][dedup].update(arm_cost(a.out, arm, len(samples[arm])))
    text = table(results)
    (a.out / "ablation.md").write_text(text + "\n")
    (a.out / "ablation.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                      "seconds": seconds, "results": results}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
