"""Tokens/s of the transformers engine on the bundled model.

Axes: batched (one `generate` call) vs one request at a time; free text vs a JSON schema;
llguidance vs xgrammar for the schema; dtype bfloat16 vs float32 vs int8; torch threads.
Every cell runs in this one process (the model loads once per dtype), after a warm-up call, and
keeps the best of `--repeats` runs: on a shared machine the best run is the least disturbed one.

    python scripts/bench_engines.py                      # the full matrix, a few minutes on 2 cores
    python scripts/bench_engines.py --quick              # a smoke run (seconds)
    python scripts/bench_engines.py --dtypes bfloat16 --threads 1 2 --json runs/bench.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SUBTOPICS_SCHEMA = {
    "type": "object",
    "properties": {"subtopics": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}},
    "required": ["subtopics"],
    "additionalProperties": False,
}
TOPICS = ["Ancient History", "Cell Biology", "Jazz", "Baking Bread", "Black Holes", "Impressionism",
          "Chess Openings", "Medieval Castles", "Volcanoes", "Roman Law", "Machine Learning", "Coral Reefs",
          "The Silk Road", "Quantum Computing", "Opera", "Glaciers"]


@dataclass
class Row:
    dtype: str
    threads: int
    guidance: str  # "-" for free text
    schema: bool
    mode: str  # "batched" or "one-by-one"
    requests: int
    output_tokens: int
    seconds: float
    tok_per_s: float
    valid_json: int | None  # schema-valid outputs (schema rows only)


def requests_for(n: int, schema: bool, max_tokens: int) -> list[Any]:
    from topictree_hf.engines import ChatRequest, SamplingParams

    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        if schema:
            text = f'List three subtopics of "{topic}" as JSON: {{"subtopics": [...]}}.'
        else:
            text = f"Write a short paragraph about {topic}."
        out.append(ChatRequest([{"role": "user", "content": text}], SamplingParams(0.7, 0.95, max_tokens, seed=i),
                               SUBTOPICS_SCHEMA if schema else None))
    return out


def count_valid(texts: list[str]) -> int:
    import jsonschema

    valid = 0
    for text in texts:
        try:
            jsonschema.validate(json.loads(text), SUBTOPICS_SCHEMA)
            valid += 1
        except (ValueError, jsonschema.ValidationError):
            pass
    return valid


def measure(engine: Any, reqs: list[Any], batched: bool, repeats: int) -> tuple[float, list[Any]]:
    best, outs = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        outs = engine.generate(reqs) if batched else [engine.generate([r])[0] for r in reqs]
        best = min(best, time.perf_counter() - start)
    return best, outs


def bench_engine(engine: Any, args: argparse.Namespace, dtype: str, threads: int, free_text: bool) -> list[Row]:
    rows: list[Row] = []
    guidance = engine.options.guidance
    for schema in ([False] if free_text else []) + [True]:
        for batched in (True, False):
            n = args.requests if batched else args.single_requests
            reqs = requests_for(n, schema, args.max_tokens)
            engine.generate(reqs[:2] if batched else reqs[:1])  # warm-up: kernels, grammar compile
            seconds, outs = measure(engine, reqs, batched, args.repeats)
            tokens = sum(o.output_tokens for o in outs)
            row = Row(dtype, threads, guidance if schema else "-", schema, "batched" if batched else "one-by-one",
                      n, tokens, round(seconds, 2), round(tokens / seconds, 1),
                      count_valid([o.text for o in outs]) if schema else None)
            print(f"  {row}", flush=True)
            rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| dtype | threads | schema | guidance | mode | requests | output tokens | s | tok/s | valid JSON |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        valid = f"{r.valid_json}/{r.requests}" if r.valid_json is not None else "-"
        lines.append(f"| {r.dtype} | {r.threads} | {'json' if r.schema else 'none'} | {r.guidance} | {r.mode} | "
                     f"{r.requests} | {r.output_tokens} | {r.seconds} | {r.tok_per_s} | {valid} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32", "int8"])
    parser.add_argument("--threads", nargs="+", type=int, default=[0], help="torch threads (0: torch's default)")
    parser.add_argument("--guidance", nargs="+", default=["llguidance", "xgrammar"])
    parser.add_argument("--requests", type=int, default=16, help="requests in the batched runs")
    parser.add_argument("--single-requests", type=int, default=4, help="requests in the one-by-one runs")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--attn", default=None, help="attn_implementation (eager, sdpa); default: the engine's")
    parser.add_argument("--json", type=Path, default=Path("runs/bench_engines.json"))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.dtypes, args.requests, args.single_requests, args.max_tokens, args.repeats = (
            args.dtypes[:1], 4, 1, 12, 1)

    import torch

    from topictree_hf.config import EngineConfig
    from topictree_hf.engines.transformers_engine import TransformersEngine

    default_threads = torch.get_num_threads()
    rows: list[Row] = []
    for dtype in args.dtypes:
        # every guidance library on the first dtype; the default one (llguidance) on the others
        for k, guidance in enumerate(args.guidance if dtype == args.dtypes[0] else args.guidance[:1]):
            options: dict[str, Any] = {"guidance": guidance}
            if args.attn:
                options["attn_implementation"] = args.attn
            start = time.perf_counter()
            engine = TransformersEngine(EngineConfig(dtype=dtype, batch_size=args.requests, options=options))
            loaded = time.perf_counter()
            _ = engine.guide
            print(f"{dtype}/{guidance}: model {loaded - start:.1f}s, grammar tokenizer set-up "
                  f"{time.perf_counter() - loaded:.2f}s", flush=True)
            for threads in args.threads:
                torch.set_num_threads(threads or default_threads)
                rows += bench_engine(engine, args, dtype, torch.get_num_threads(), free_text=k == 0)
            engine.close()
            torch.set_num_threads(default_threads)

    print(table(rows))
    report = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__}",
        "load_average": os.getloadavg(),
        "max_tokens": args.max_tokens,
        "rows": [asdict(r) for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
