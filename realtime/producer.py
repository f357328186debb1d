"""``python -m realtime.producer [--rate N]``: a small producer of plausible order events.

For ``make demo`` and the runbook's smoke test: it puts about ``rate`` events a second on the
stream of ``DUFF_STREAM`` (default the local one), dated today by their receipt (no
``order_date``), with the sample catalogue's products and prices; about 5% re-send an
earlier order with a new status and 2% break a rule (kept as rejected rows). Order ids start
at 10^12 so they never collide with the sample CSV's. Stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time

from ingestion.sample import PRODUCTS
from realtime.__main__ import open_stream
from realtime.settings import Settings, SettingsError

CHANNELS = ("retail", "online", "b2b")
STATUSES = ("created", "delivered", "broken")
FIRST_ORDER_ID = 10**12


def make_event(rng: random.Random, order_id: int) -> dict:
    k = rng.randrange(len(PRODUCTS))
    description, price, volume = PRODUCTS[k][0], PRODUCTS[k][1], PRODUCTS[k][2]
    client = rng.randint(1, 300)
    return {
        "order_id": order_id,
        "client_id": client,
        "client_name": f"Live client {client}",
        "product_id": 101 + k,
        "product_description": description,
        "product_price": price,
        "product_ccf": rng.randint(1, 24),
        "product_volume": volume,
        "point_of_sale_channel": rng.choices(CHANNELS, (6, 3, 1))[0],
        "status": rng.choices(STATUSES, (2, 7, 1))[0],
    }


def events(rng: random.Random, n: int, sent: list[dict], next_id: int) -> tuple[list[bytes], int]:
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05 and sent:
            e = dict(rng.choice(sent), status=rng.choice(STATUSES))  # a re-send
        else:
            e = make_event(rng, next_id)
            next_id += 1
            sent.append(e)
            if len(sent) > 10_000:
                del sent[: len(sent) // 2]
        if roll > 0.98:
            e = dict(e, product_ccf=rng.choice(["0", "2.5", None, True]))  # breaks a rule
        out.append(json.dumps(e).encode())
    return out, next_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.producer", description=__doc__)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second (5)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        stream = open_stream(Settings.from_env())
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rng = random.Random(args.seed)  # noqa: S311 - sample data, not secrets
    sent: list[dict] = []
    next_id = FIRST_ORDER_ID + int(time.time() * 1000) % 10**9 * 1000  # fresh ids per run
    total = 0
    tick = 0.2
    while not stop.is_set():
        n = int(args.rate * tick) + (rng.random() < (args.rate * tick) % 1)
        if n:
            batch, next_id = events(rng, n, sent, next_id)
            total += stream.put(batch)
        stop.wait(tick)
    print(f"producer: {total} events accepted on {stream.uri}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
