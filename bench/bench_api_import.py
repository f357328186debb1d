"""Cold-start cost of the API's Lambda entry point: import time and what gets imported.

Runs fresh interpreters (no warm caches of this process) and reports the median of N runs for:
  baseline  `python -c pass`
  handler   `import api.handler`
  app       `import api.handler` + building the app with the Athena backend (boto3 client;
            no network call is made)
and checks that pandas, awswrangler, dbt, duckdb and pyarrow stay out of the import path.

    .venv/bin/python bench/bench_api_import.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "awswrangler", "dbt", "duckdb", "pyarrow", "numpy", "uvicorn")

PROBE = r"""
import json, os, sys, time
t0 = time.perf_counter()
mode = sys.argv[1]
if mode != "baseline":
    import api.handler
if mode == "app":
    api.handler._app = api.handler._build_app()
elapsed = time.perf_counter() - t0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"seconds": elapsed, "heavy": heavy, "modules": len(sys.modules)}))
"""


def run(mode: str) -> dict:
    """One fresh interpreter; ``wall`` includes the interpreter's own start-up."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DUFF_API_BACKEND": "athena",
        "DUFF_API_KEY": "bench-import",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, json.dumps(HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for mode in ("baseline", "handler", "app"):
        runs = [run(mode) for _ in range(args.runs)]
        med = statistics.median(r["seconds"] for r in runs) * 1000
        wall = statistics.median(r["wall"] for r in runs) * 1000
        results[mode] = wall
        heavy = runs[-1]["heavy"]
        print(
            f"{mode:>8}: in-process {med:7.1f} ms, whole process {wall:7.1f} ms (medians of "
            f"{args.runs}), {runs[-1]['modules']} modules, heavy imported: {heavy or 'none'}"
        )
        if mode != "baseline" and heavy:
            print(f"WARNING: {heavy} imported by the Lambda path")
    base = results["baseline"]
    print(
        f"ratio to a bare interpreter: handler import {results['handler'] / base:.2f}x, "
        f"handler + app with Athena backend {results['app'] / base:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
