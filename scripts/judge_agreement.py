"""Agreement of the LLM judge (generation/judge.py) with the hand labels of the check set, and of
the rule checks, on a real model: the bundled SmolLM2-135M-Instruct on CPU by default.

    python scripts/judge_agreement.py                              # tests/data/quality_labels.jsonl
    python scripts/judge_agreement.py --model /models/Qwen2.5-7B-Instruct --backend vllm --threshold 3

One batched engine call scores every labelled sample 1-5 under the judge's JSON schema; a sample
"passes" when score >= threshold. Prints the confusion against the labels ("bad" is positive),
the score histogram per label, and the judge's cost (tokens and seconds per sample).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from topictree_hf.config import SMOLLM2, EngineConfig
from topictree_hf.engines.registry import create_engine
from topictree_hf.generation.judge import judge_request, parse_judgement, rule_reject

LABELS = Path(__file__).resolve().parent.parent / "tests" / "data" / "quality_labels.jsonl"


def confusion(flags: list[bool], bad: list[bool]) -> str:
    tp = sum(f and b for f, b in zip(flags, bad, strict=True))
    fp = sum(f and not b for f, b in zip(flags, bad, strict=True))
    fn = sum(b and not f for f, b in zip(flags, bad, strict=True))
    agree = sum(f == b for f, b in zip(flags, bad, strict=True)) / len(bad)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return f"agreement {agree:.2f}, precision {precision:.2f}, recall {recall:.2f} (tp {tp}, fp {fp}, fn {fn})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--backend", default="transformers")
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threshold", type=int, default=3)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [r["label"] == "bad" for r in rows]
    print(f"{len(rows)} labelled samples, {sum(bad)} bad")
    rules = [rule_reject(r["format"], r["messages"], r["topic_path"]) is not None for r in rows]
    print("rules:", confusion(rules, bad))

    engine = create_engine(EngineConfig(backend=args.backend, model=args.model, batch_size=args.batch_size))
    requests = [judge_request(r["messages"], r["topic_path"], seed=i) for i, r in enumerate(rows)]
    start = time.perf_counter()
    completions = engine.generate(requests)
    seconds = time.perf_counter() - start
    engine.close()
    verdicts = [parse_judgement(c.text) for c in completions]
    unparsed = sum(v is None for v in verdicts)
    scores = [v[0] if v else 0 for v in verdicts]
    flags = [s < args.threshold for s in scores]  # an unparsed verdict counts as a reject
    print(f"judge ({args.model}, threshold {args.threshold}):", confusion(flags, bad), f"unparsed {unparsed}")
    for label in ("good", "bad"):
        hist = Counter(s for s, r in zip(scores, rows, strict=True) if r["label"] == label)
        print(f"  scores given to {label}: {dict(sorted(hist.items()))}")
    prompt = sum(c.prompt_tokens for c in completions) / len(rows)
    output = sum(c.output_tokens for c in completions) / len(rows)
    print(f"cost per sample: {prompt:.0f} prompt + {output:.0f} output tokens, {seconds / len(rows):.2f} s "
          f"(batch {args.batch_size}, {seconds:.1f} s in all)")


if __name__ == "__main__":
    main()
