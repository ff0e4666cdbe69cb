"""Benchmark `build_dataset`: wall time and peak memory for synthetic run dirs of N rows.

    python scripts/bench_build.py                       # 100k and 1M rows, 400-char answers
    python scripts/bench_build.py --rows 10000 100000 --content-chars 1000 --keep /tmp/bench [--reuse]

Each build runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own; the RSS after imports
is measured first, so "build peak - baseline" is what the build itself holds. Bounded memory means
that number stays flat as rows grow (the sort buffer and one parquet row group, not the dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

from topictree_hf.dataset import build_dataset  # imports datasets, pyarrow
baseline = rss_mb()
start = time.perf_counter()
result = build_dataset(sys.argv[1], sys.argv[2], neighbours=False)  # the packaging alone: no embedding of every row
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = usage.ru_maxrss / 1024
size = sum(p.stat().st_size for p in Path(sys.argv[2]).rglob("*.parquet"))
print(json.dumps({"rows": result.total_rows, "seconds": round(seconds, 1),
                  "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "baseline_mb": round(baseline),
                  "peak_mb": round(peak), "build_mb": round(peak - baseline), "parquet_mb": round(size / 1e6, 1),
                  "files": len(result.files), "splits": result.rows}))
"""


def make_run(path: Path, rows: int, content_chars: int) -> tuple[float, float]:
    """A run dir of about `rows` samples: a 1,000-leaf tree (depth 3, degree 10)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # synthetic run dirs are test support
    from synthetic_run import make_synthetic_run

    start = time.perf_counter()
    run = make_synthetic_run(path, depth=3, degree=10, samples_per_leaf=max(1, rows // 1000),
                             content_chars=content_chars)
    journal_mb = sum(p.stat().st_size for p in run.sample_shards()) / 1e6
    return time.perf_counter() - start, journal_mb


def bench(rows: int, content_chars: int, work: Path, reuse: bool) -> dict:
    run, out = work / f"run-{rows}-{content_chars}", work / f"ds-{rows}-{content_chars}"
    shutil.rmtree(out, ignore_errors=True)
    if reuse and (run / "summary.json").is_file():
        make_s, journal_mb = 0.0, sum(p.stat().st_size for p in run.glob("samples-*.jsonl")) / 1e6
    else:
        shutil.rmtree(run, ignore_errors=True)
        make_s, journal_mb = make_run(run, rows, content_chars)
    env = dict(os.environ, TOPICTREE_NO_PROGRESS="1", HF_HUB_OFFLINE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(run), str(out)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"build of {rows} rows failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(journal_mb=round(journal_mb, 1), make_run_s=round(make_s, 1),
                  rows_per_s=round(result["rows"] / result["seconds"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--content-chars", type=int, default=400, help="length of each synthetic answer")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse run dirs already in the --keep folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# build benchmark on {platform.machine()} with {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), "
          f"python {platform.python_version()}, answers of {args.content_chars} chars; work dir {work}")
    print("| rows | journal MB | parquet MB (files) | build s (wall) | CPU s | rows/s (wall) | RSS after imports MB "
          "| peak RSS MB | build MB (peak - imports) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    results = []
    try:
        for rows in args.rows:
            r = bench(rows, args.content_chars, work, args.reuse)
            results.append(r)
            print(f"| {r['rows']:,} | {r['journal_mb']:,} | {r['parquet_mb']:,} ({r['files']}) | {r['seconds']} | "
                  f"{r['cpu_s']} | {r['rows_per_s']:,} | {r['baseline_mb']} | {r['peak_mb']} | {r['build_mb']} |",
                  flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
