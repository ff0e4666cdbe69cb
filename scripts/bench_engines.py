"""Tokens/s of the transformers engine on the bundled model (SmolLM2-135M-Instruct).

Axes: batched (one `generate` call) vs one request at a time; free text vs the tree builder's JSON
schema; llguidance vs xgrammar for the schema; dtype bfloat16 vs float32 vs int8; torch threads; and
OpenMP's wait policy. Every cell runs in this one process (the model loads once per dtype and grammar
library), after a warm-up call, and keeps the best of `--repeats` runs: on a shared machine the best run
is the least disturbed one. Prints a markdown table and writes JSON.

    python scripts/bench_engines.py                        # the matrix (about 10 minutes on 2 cores)
    python scripts/bench_engines.py --quick                # a smoke run (seconds)
    python scripts/bench_engines.py --dtypes float32 --threads 1 2 --modes batched --schemas none
    python scripts/bench_engines.py --omp-default ...      # torch loads before topictree_hf: libgomp's
                                                           # own wait policy (spinning), not PASSIVE
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

TOPICS = ["Ancient History", "Cell Biology", "Jazz", "Baking Bread", "Black Holes", "Impressionism",
          "Chess Openings", "Medieval Castles", "Volcanoes", "Roman Law", "Machine Learning", "Coral Reefs",
          "The Silk Road", "Quantum Computing", "Opera", "Glaciers"]


@dataclass
class Row:
    dtype: str
    threads: int
    omp_wait_policy: str
    schema: bool
    guidance: str  # "-" for free text
    mode: str  # "batched" or "one-by-one"
    requests: int
    output_tokens: int
    seconds: float
    tok_per_s: float
    valid_json: int | None  # schema-valid outputs (schema rows only)


def tree_schema() -> dict[str, Any]:
    """What the tree builder asks the model for: three subtopics of 3-40 characters."""
    from topictree_hf.tree.prompts import expansion_schema

    return expansion_schema(3, 3, 40)


def requests_for(n: int, schema: dict[str, Any] | None, max_tokens: int) -> list[Any]:
    from topictree_hf.engines import ChatRequest, SamplingParams

    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        if schema is not None:
            text = f'List three subtopics of "{topic}" as JSON: {{"subtopics": ["...", "...", "..."]}}.'
        else:
            text = f"Write a short paragraph about {topic}."
        out.append(ChatRequest([{"role": "user", "content": text}], SamplingParams(0.7, 0.95, max_tokens, seed=i),
                               schema))
    return out


def count_valid(texts: list[str], schema: dict[str, Any]) -> int:
    import jsonschema

    valid = 0
    for text in texts:
        try:
            jsonschema.validate(json.loads(text), schema)
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


def bench_engine(engine: Any, args: argparse.Namespace, dtype: str, threads: int, schemas: list[str]) -> list[Row]:
    rows: list[Row] = []
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    for kind in schemas:
        schema = tree_schema() if kind == "json" else None
        for mode in args.modes:
            batched = mode == "batched"
            n = args.requests if batched else args.single_requests
            reqs = requests_for(n, schema, args.max_tokens)
            engine.generate(reqs[:2] if batched else reqs[:1])  # warm-up: kernels, grammar compile
            seconds, outs = measure(engine, reqs, batched, args.repeats)
            tokens = sum(o.output_tokens for o in outs)
            row = Row(dtype, threads, policy, schema is not None, engine.options.guidance if schema else "-", mode, n,
                      tokens, round(seconds, 2), round(tokens / seconds, 1),
                      count_valid([o.text for o in outs], schema) if schema else None)
            print(f"  {row}", flush=True)
            rows.append(row)
    return rows


def grammar_costs(engine: Any, libraries: list[str], walks: int, max_steps: int = 96) -> list[dict[str, Any]]:
    """The grammar libraries alone, without the model: tokenizer set-up, first schema compile, and the
    cost per token of filling the allowed-token mask and consuming the token, on seeded random walks
    through a schema (each step takes a random allowed token, until the JSON closes or `max_steps`).
    Two schemas: the tree builder's (strings with a `pattern` and a `maxLength`) and the same without
    the pattern. `closed` counts walks that ended: a grammar that drops maxLength lets strings run on."""
    import torch

    from topictree_hf.engines.constrained import Guide, allowed_mask

    no_pattern = json.loads(json.dumps(tree_schema()))
    del no_pattern["properties"]["subtopics"]["items"]["pattern"]
    vocab, eos = engine.guide.vocab_size, engine.tokenizer.eos_token_id
    out = []
    for library in libraries:
        start = time.perf_counter()
        guide = Guide(engine.tokenizer, vocab, library)
        setup = time.perf_counter() - start
        for name, schema in (("tree", tree_schema()), ("tree without pattern", no_pattern)):
            start = time.perf_counter()
            guide.matcher(schema)
            compile_s = time.perf_counter() - start
            bitmask, rng = guide.new_bitmask(1), torch.Generator().manual_seed(0)
            mask_s = consume_s = 0.0
            tokens = closed = 0
            for _ in range(walks):
                matcher = guide.matcher(schema)
                for _step in range(max_steps):
                    t0 = time.perf_counter()
                    matcher.fill(bitmask, 0)
                    mask_s += time.perf_counter() - t0
                    allowed = allowed_mask(bitmask, vocab)[0]
                    token = int(torch.rand(vocab, generator=rng).masked_fill(~allowed, -1.0).argmax())
                    if token == eos:
                        closed += 1
                        break
                    t0 = time.perf_counter()
                    matcher.consume(token)
                    consume_s += time.perf_counter() - t0
                    tokens += 1
            row = {"library": library, "schema": name, "tokenizer_setup_s": round(setup, 3),
                   "first_compile_ms": round(compile_s * 1e3, 1), "walks": walks, "closed": closed,
                   "tokens": tokens, "mask_us_per_token": round(mask_s / tokens * 1e6, 1),
                   "consume_us_per_token": round(consume_s / tokens * 1e6, 1)}
            print(f"  {row}", flush=True)
            out.append(row)
    return out


def table(rows: list[Row]) -> str:
    lines = ["| dtype | threads | OMP wait | schema | guidance | mode | requests | output tokens | s | tok/s "
             "| valid JSON |", "|" + " --- |" * 11]
    for r in rows:
        valid = f"{r.valid_json}/{r.requests}" if r.valid_json is not None else "-"
        lines.append(f"| {r.dtype} | {r.threads} | {r.omp_wait_policy} | {'json' if r.schema else 'none'} | "
                     f"{r.guidance} | {r.mode} | {r.requests} | {r.output_tokens} | {r.seconds} | {r.tok_per_s} "
                     f"| {valid} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32", "int8"])
    parser.add_argument("--threads", nargs="+", type=int, default=[0], help="torch threads (0: torch's default)")
    parser.add_argument("--guidance", nargs="+", default=["llguidance", "xgrammar"],
                        help="grammar libraries; all on the first dtype, the first one on the others")
    parser.add_argument("--modes", nargs="+", default=["batched", "one-by-one"], choices=["batched", "one-by-one"])
    parser.add_argument("--schemas", nargs="+", default=["none", "json"], choices=["none", "json"])
    parser.add_argument("--requests", type=int, default=16, help="requests in the batched runs")
    parser.add_argument("--single-requests", type=int, default=4, help="requests in the one-by-one runs")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--omp-default", action="store_true",
                        help="import torch first, so topictree_hf does not set OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--grammar-walks", type=int, default=32, help="random walks per grammar library (0: skip)")
    parser.add_argument("--json", type=Path, default=Path("runs/bench_engines.json"))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.dtypes, args.requests, args.single_requests, args.max_tokens, args.repeats, args.grammar_walks = (
            args.dtypes[:1], 4, 1, 12, 1, 2)
    return args


def main() -> None:
    args = parse_args()
    if args.omp_default:
        import torch  # noqa: F401 - loads libgomp before topictree_hf can set its wait policy
    from topictree_hf.threads import passive_omp_wait

    passive_omp_wait()  # what create_engine does: PASSIVE unless torch is loaded already

    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}", flush=True)
    import torch

    from topictree_hf.config import EngineConfig
    from topictree_hf.engines.transformers_engine import TransformersEngine

    default_threads = torch.get_num_threads()
    load_before = os.getloadavg()
    rows: list[Row] = []
    for dtype in args.dtypes:
        for k, guidance in enumerate(args.guidance if dtype == args.dtypes[0] else args.guidance[:1]):
            schemas = args.schemas if k == 0 else [s for s in args.schemas if s == "json"]
            if not schemas:
                continue
            start = time.perf_counter()
            engine = TransformersEngine(EngineConfig(dtype=dtype, batch_size=args.requests,
                                                     options={"guidance": guidance}))
            loaded = time.perf_counter()
            if "json" in schemas:
                _ = engine.guide
            print(f"{dtype}/{guidance}: model {loaded - start:.1f}s, grammar tokenizer set-up "
                  f"{time.perf_counter() - loaded:.2f}s", flush=True)
            for threads in args.threads:
                torch.set_num_threads(threads or default_threads)
                rows += bench_engine(engine, args, dtype, torch.get_num_threads(), schemas)
            engine.close()
            torch.set_num_threads(default_threads)

    grammar: list[dict[str, Any]] = []
    if args.grammar_walks and "json" in args.schemas:
        engine = TransformersEngine(EngineConfig(dtype=args.dtypes[0]))
        grammar = grammar_costs(engine, args.guidance, args.grammar_walks)
        engine.close()

    print(table(rows))
    if grammar:
        print("\n| library | schema | tokenizer set-up s | first compile ms | mask us/token | consume us/token "
              "| walks closed | tokens |")
        print("|" + " --- |" * 8)
        for g in grammar:
            print(f"| {g['library']} | {g['schema']} | {g['tokenizer_setup_s']} | {g['first_compile_ms']} "
                  f"| {g['mask_us_per_token']} | {g['consume_us_per_token']} | {g['closed']}/{g['walks']} "
                  f"| {g['tokens']} |")
    report = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__}",
        "load_average_before_after": [load_before, os.getloadavg()],
        "max_tokens": args.max_tokens,
        "rows": [asdict(r) for r in rows],
        "grammar": grammar,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
