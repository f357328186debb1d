"""Fixtures for the real-time integration tests: a lake, the CLI as subprocesses, a model."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHANNELS = ["retail", "Online", "B2B"]
STATUSES = ["created", "DELIVERED", "broken"]


@pytest.fixture
def rt_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUFF_", "AWS_"))}
    env.update(DUFF_LAKE=str(tmp_path / "lake"), PYTHONPATH=str(ROOT), DUFF_LOG_LEVEL="WARNING")
    return env


def send(env: dict[str, str], lines: list[bytes]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "send", "-"],
        input=b"\n".join(lines) + b"\n",
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return out.stdout.decode()


def start_consumer(env: dict[str, str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "realtime", "consume"],
        env={**env, **extra},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def make_events(n: int, orders: int, seed: int) -> list[dict]:
    """Events with re-sends (an order sent again, often on another day or with other
    figures), some without order_date, and some that break a rule."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        e = {
            "order_id": rnd.randint(1, orders),
            "client_id": rnd.randint(1, 50),
            "client_name": f"client {rnd.randint(1, 50)}",
            "product_id": rnd.randint(1, 5),
            "product_description": "Duff",
            "product_price": f"{rnd.randint(0, 999)}.{rnd.randint(0, 99):02d}",
            "product_ccf": rnd.randint(1, 24),
            "product_volume": rnd.choice(["0.330", "0.5", "1"]),
            "point_of_sale_channel": rnd.choice(CHANNELS),
            "status": rnd.choice(STATUSES),
            "order_date": f"2024-03-0{rnd.randint(1, 3)}",
        }
        roll = rnd.random()
        if roll < 0.05:
            e["product_ccf"] = rnd.choice([0, -1, "2.5", None, True])
        elif roll < 0.08:
            del e["order_date"]
        out.append(e)
    return out


def encode(events: list[dict]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def expected(events: list[dict], today: dt.date) -> dict[str, dict]:
    """What section 6 says the figures are: the last valid version of each order wins."""
    latest: dict[int, dict] = {}
    for e in events:
        ccf = e["product_ccf"]
        if isinstance(ccf, bool) or not isinstance(ccf, int) or ccf <= 0:
            continue
        latest[e["order_id"]] = e
    days: dict[str, dict] = {}
    for e in latest.values():
        day = e.get("order_date", today.isoformat())
        d = days.setdefault(day, {"orders": 0, "units": 0, "revenue": Decimal(0), "ch": {}})
        d["orders"] += 1
        d["units"] += e["product_ccf"]
        d["revenue"] += Decimal(e["product_price"]) * e["product_ccf"]
        ch = e["point_of_sale_channel"].lower()
        d["ch"][ch] = d["ch"].get(ch, 0) + 1
    return days


@pytest.fixture
def consumers() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
