"""Benchmark the local API under a bounded load, against a trivial ASGI app on uvicorn.

Builds the served marts for N orders (default 1,000,000; written directly with
pyarrow/DuckDB by tests/support/fake_marts.py, as `python -m export` lays them out), starts
`python -m api` on 127.0.0.1 in its own process, and drives it with 8 concurrent keep-alive
clients (threads, http.client) on a mix of routes (about half cache misses: random ids,
random date windows, cursor walks). Then the same load against a constant-response ASGI app
on uvicorn, measured in the same run.
Prints p50/p90/p99, errors, and the ratios API / baseline.

    .venv/bin/python bench/bench_api.py                      # 1M orders, 15 s per server
    .venv/bin/python bench/bench_api.py --orders 100000 --seconds 5
Goals (issues 6 and 13): p50 <= 5 ms, p99 <= 25 ms, zero errors, p50 within 6x the
constant server's; the server's peak resident memory under the load <= 512 MB and data
served <= 3 s after start, whatever the size (run with --orders 10000000 for that).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "bench-key-" + os.urandom(6).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_app():
    body = b'{"status":"ok"}'

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def serve_baseline(port: int) -> None:
    import uvicorn

    uvicorn.run(
        baseline_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )


def wait_up(port: int, timeout: float = 120, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path, headers={"x-api-key": KEY})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server on port {port} did not come up")


class Mix:
    """A client's request generator: weighted routes, random parameters, cursor walks."""

    def __init__(self, seed: int, client_ids: list[int], product_ids: list[int]) -> None:
        self.rng = random.Random(seed)
        self.client_ids = client_ids
        self.product_ids = product_ids
        self.cursor: str | None = None
        self.walk_route = "/orders?limit=100"

    def next(self) -> str:
        r = self.rng.random()
        rng = self.rng
        if r < 0.10:
            return "/health"
        if r < 0.20:
            return "/products"
        if r < 0.28:
            return "/sales/by-channel"
        if r < 0.34:
            return "/sales/by-product-channel"
        if r < 0.40:
            return "/status-summary"
        if r < 0.48:
            d1 = rng.randint(1, 28)
            d2 = rng.randint(d1, 30)
            return f"/sales/daily?from=2024-03-{d1:02d}&to=2024-03-{d2:02d}"
        if r < 0.55:
            return "/clients?limit=20"
        if r < 0.65:
            return f"/clients/{rng.choice(self.client_ids)}"
        if r < 0.73:
            return f"/clients/{rng.choice(self.client_ids)}/orders?limit=50"
        if r < 0.81:
            status = rng.choice(["delivered", "BROKEN", "created"])
            channel = rng.choice(["b2b", "Retail", "online"])
            return f"/orders?status={status}&channel={channel}&limit=50"
        if r < 0.86:
            pid = rng.choice(self.product_ids)
            return f"/orders?product_id={pid}&from=2024-03-10&to=2024-03-12&limit=100"
        # cursor walk over /orders (every page a cache miss)
        if self.cursor:
            return f"{self.walk_route}&cursor={self.cursor}"
        return self.walk_route

    def saw(self, path: str, body: bytes) -> None:
        if path.startswith(self.walk_route):
            try:
                self.cursor = json.loads(body).get("next_cursor")
            except ValueError:
                self.cursor = None


def load(port: int, clients: int, seconds: float, max_requests: int, api: bool, ids, pids):
    samples: list[list[tuple[str, float]]] = [[] for _ in range(clients)]  # (path, seconds)
    errors = [0] * clients
    stop_at = time.monotonic() + seconds
    per_client = max_requests // clients

    def worker(i: int) -> None:
        mix = Mix(1000 + i, ids, pids)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"x-api-key": KEY}
        taken = samples[i]
        for _ in range(per_client):
            if time.monotonic() >= stop_at:
                break
            path = mix.next() if api else "/health"
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok, body = False, b""
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            taken.append((path, time.perf_counter() - t0))
            if not ok:
                errors[i] += 1
            elif api:
                mix.saw(path, body)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    all_lat = sorted(seconds for taken in samples for _, seconds in taken)
    routes: dict[str, list[float]] = {}  # grouped after the run, not in the clients' loop
    for taken in samples:
        for path, seconds in taken:
            routes.setdefault(route_class(path), []).append(seconds)
    return all_lat, sum(errors), elapsed, routes


def route_class(path: str) -> str:
    """A request's route with its ids and query values left out, to group latencies."""
    route, _, query = path.partition("?")
    route = re.sub(r"/[0-9]+", "/{id}", route)
    names = sorted({part.split("=", 1)[0] for part in query.split("&") if part})
    return route + ("?" + ",".join(names) if names else "")


def print_routes(routes: dict[str, list[float]], total: int) -> None:
    """Each route's share of the requests and its p50 and p99, slowest p99 first: where the
    tail comes from."""
    rows = sorted(routes.items(), key=lambda kv: -pct(sorted(kv[1]), 0.99))
    for route, lat in rows:
        lat = sorted(lat)
        print(
            f"           {route:<42} {100 * len(lat) / max(1, total):4.1f}%"
            f"  p50 {pct(lat, 0.5):6.2f} ms  p99 {pct(lat, 0.99):6.2f} ms"
        )


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc), to compare work per request."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def cache_counts(server_log: Path) -> tuple[int, int]:
    """Cache hits and misses summed over the server's EMF metrics lines (api.metrics)."""
    hits = misses = 0
    for line in server_log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            hits += doc.get("CacheHits", 0)
            misses += doc.get("CacheMisses", 0)
    return hits, misses


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k] * 1000


def summary(name: str, lat: list[float], errors: int, elapsed: float) -> dict:
    row = {
        "name": name,
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / elapsed if elapsed else 0,
        "p50": pct(lat, 0.50),
        "p90": pct(lat, 0.90),
        "p99": pct(lat, 0.99),
        "max": lat[-1] * 1000 if lat else float("nan"),
        "mean": statistics.fmean(lat) * 1000 if lat else float("nan"),
    }
    print(
        f"{name:>9}: {row['requests']:>7} requests, {errors} errors, {row['rps']:8.0f} req/s, "
        f"p50 {row['p50']:6.2f} ms, p90 {row['p90']:6.2f} ms, p99 {row['p99']:6.2f} ms, "
        f"max {row['max']:7.2f} ms"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--clients-in-data", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0, help="per server")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per server")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0

    from tests.support.fake_marts import make_orders, write_build

    with tempfile.TemporaryDirectory(prefix="duff-bench-api-") as lake:
        t0 = time.perf_counter()
        orders = make_orders(args.orders, clients=args.clients_in_data, products=8, days=30)
        write_build(lake, orders)
        ids = sorted(set(orders.column("client_id").to_pylist()))
        pids = sorted(set(orders.column("product_id").to_pylist()))
        del orders
        print(f"marts for {args.orders:,} orders written in {time.perf_counter() - t0:.1f} s")

        env = {**os.environ, "DUFF_LAKE": lake, "DUFF_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
        results = {}
        for name in ("baseline", "api"):
            port = free_port()
            if name == "api":
                cmd = [
                    sys.executable,
                    "-m",
                    "api",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "info",
                    "--log-format",
                    "json",
                ]
            else:
                cmd = [sys.executable, __file__, "--serve-baseline", str(port)]
            server_log = Path(lake) / f"{name}.log"  # the API's EMF lines carry its cache counts
            with open(server_log, "wb") as err:
                proc = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
                )
            try:
                t1 = time.perf_counter()
                wait_up(port, path="/products" if name == "api" else "/health")
                if name == "api":
                    started = time.perf_counter() - t1
                    print(f"API serving data {started:.2f} s after start (process start included)")
                load(port, args.concurrency, 1.0, 10**9, name == "api", ids, pids)  # warm-up
                cpu0 = cpu_seconds(proc.pid)
                lat, errors, elapsed, routes = load(
                    port,
                    args.concurrency,
                    args.seconds,
                    args.max_requests,
                    name == "api",
                    ids,
                    pids,
                )
                cpu = cpu_seconds(proc.pid) - cpu0
                results[name] = summary(name, lat, errors, elapsed)
                results[name]["cpu_us"] = cpu / max(1, len(lat)) * 1e6
                results[name]["rss_mb"] = peak_rss_mb(proc.pid)
                if name == "api":
                    results[name]["started_s"] = started
                    print(f"           server peak RSS: {results[name]['rss_mb']:.0f} MB")
                    print_routes(routes, len(lat))
                print(f"           server CPU per request: {results[name]['cpu_us']:.0f} us")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            if name == "api":
                hits, misses = cache_counts(server_log)
                if hits + misses:
                    lookups = hits + misses
                    print(f"      cache: {hits / lookups:.0%} hits of {lookups} lookups")
    api, base = results["api"], results["baseline"]
    print(
        f"ratio api/baseline: p50 {api['p50'] / base['p50']:.2f}x, "
        f"p99 {api['p99'] / base['p99']:.2f}x, throughput {api['rps'] / base['rps']:.2f}x"
    )
    print(f"server CPU per request api/baseline: {api['cpu_us'] / base['cpu_us']:.2f}x")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ok = (
        api["p50"] <= 5
        and api["p99"] <= 25
        and api["errors"] == 0
        and api["p50"] <= 6 * base["p50"]
        and api["rss_mb"] <= 512
        and api["started_s"] <= 3
    )
    print(
        "goals (p50 <= 5 ms, p99 <= 25 ms, 0 errors, p50 <= 6x baseline, peak RSS <= 512 MB, "
        f"data <= 3 s after start): {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
