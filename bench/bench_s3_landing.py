"""Landing from S3 into an S3 lake vs landing the same file locally: time and peak memory.

    .venv/bin/python bench/bench_s3_landing.py                 # 200k rows (~18 MB) and 4x that
    .venv/bin/python bench/bench_s3_landing.py --rows 2000000 --growth 5

What it shows: the S3 adapter (streamed GetObject reads, multipart writes, server-side copies
at publication, Glue partitions) keeps the landing's memory flat as files grow, and what the
S3 path costs over the local one. The input comes from the sample generator. S3 and Glue are a
moto server in its own process on 127.0.0.1 (AWS is out of reach here), so the S3 timings
include moto's own overhead on the same 2 cores: read the ratio as an upper bound, and the
peak RSS (measured in the landing process alone, not moto's) as the real figure.

Each landing runs as `python -m ingestion <source> --json` in a fresh process, exactly as
a user or the Lambda would run it; its peak RSS is read from getrusage in that process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# Runs `python -m ingestion ...` in-process and reports its own peak RSS to a file.
RUNNER = """
import resource, runpy, sys
out = sys.argv.pop(1)
sys.argv[0] = "python -m ingestion"
code = 0
try:
    runpy.run_module("ingestion", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
with open(out, "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""

MOTO = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def land(source: str, env: dict[str, str], workdir: Path) -> tuple[float, float, dict]:
    """(seconds, peak RSS in MiB, manifest) of one landing in a fresh process."""
    rss_file = workdir / f"rss-{time.monotonic_ns()}"
    started = time.perf_counter()
    done = subprocess.run(
        [PY, "-c", RUNNER, str(rss_file), source, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"landing {source} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_mib = int(rss_file.read_text()) / 1024  # ru_maxrss is in KiB on Linux
    return seconds, peak_mib, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the small file")
    parser.add_argument(
        "--growth", type=int, default=4, help="the big file has this many times the rows"
    )
    args = parser.parse_args()

    import boto3

    with tempfile.TemporaryDirectory(prefix="duff-bench-s3-") as tmp:
        work = Path(tmp)
        port = free_port()
        moto = subprocess.Popen(
            [PY, "-c", MOTO, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert moto.stdout is not None and moto.stdout.readline().strip() == "ready"
            endpoint = f"http://127.0.0.1:{port}"
            aws = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DUFF_"))}
            s3 = boto3.client(
                "s3",
                **{
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",
                },
            )
            s3.create_bucket(Bucket="bench-incoming")
            s3.create_bucket(Bucket="bench-lake")

            print(
                f"{'rows':>10} {'MB':>7} {'local s':>8} {'s3 s':>7} {'s3/local':>8} "
                f"{'local RSS MiB':>13} {'s3 RSS MiB':>10}"
            )
            results = []
            for i, rows in enumerate((args.rows, args.rows * args.growth)):
                csv = work / f"orders-{rows}.csv"
                subprocess.run(
                    [
                        PY,
                        "-m",
                        "ingestion.sample",
                        "--rows",
                        str(rows),
                        "--bad-share",
                        "0.01",
                        "--seed",
                        str(7 + i),
                        "--out",
                        str(csv),
                    ],
                    cwd=REPO,
                    env=base_env,
                    check=True,
                    capture_output=True,
                )
                size_mb = csv.stat().st_size / 1e6
                key = f"incoming/orders {rows}.csv"
                s3.upload_file(str(csv), "bench-incoming", key)

                local_env = {**base_env, "DUFF_LAKE": str(work / "lake")}
                t_local, rss_local, m_local = land(str(csv), local_env, work)
                s3_env = {
                    **base_env,
                    **aws,
                    "DUFF_LAKE": "s3://bench-lake/lake",
                    "DUFF_GLUE_DATABASE": "bench",
                }
                t_s3, rss_s3, m_s3 = land(f"s3://bench-incoming/{key}", s3_env, work)
                assert (m_local["valid"], m_local["rejected"]) == (m_s3["valid"], m_s3["rejected"])
                assert m_s3["status"] == "landed", m_s3
                results.append((rows, size_mb, t_local, t_s3, rss_local, rss_s3))
                print(
                    f"{rows:>10,} {size_mb:>7.1f} {t_local:>8.2f} {t_s3:>7.2f} "
                    f"{t_s3 / t_local:>8.2f} {rss_local:>13.0f} {rss_s3:>10.0f}"
                )
        finally:
            moto.terminate()
            moto.wait(timeout=30)

    (_, mb1, *_, s3_1), (_, mb2, *_, s3_2) = results
    print(
        f"\nS3 landing peak RSS grew {s3_2 / s3_1:.2f}x while the file grew {mb2 / mb1:.1f}x "
        f"({s3_1:.0f} -> {s3_2:.0f} MiB)"
    )
    print(
        f"S3 path vs local, {mb2:.0f} MB file: {results[1][3] / results[1][2]:.2f}x the time "
        "(moto on the same cores included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
