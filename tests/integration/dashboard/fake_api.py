"""Stand-in for the API while `api/` is being built: stdlib HTTP server with the contract's
routes the dashboard calls, JSON computed from DashboardData. Replaced by the real app."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

STATIC = Path(__file__).resolve().parents[3] / "api" / "static"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _num(v: object, places: str) -> object:
    return float(v.quantize(Decimal(places))) if isinstance(v, Decimal) else v


def _clean(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out[k] = _clean(v)
        elif k == "liters":
            out[k] = _num(v, "0.001")
        elif hasattr(v, "isoformat"):
            out[k] = v.isoformat()
        else:
            out[k] = _num(v, "0.01")
    return out


def serve(data, api_key: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def json(self, status: int, obj: object) -> None:
            self.send(status, json.dumps(obj).encode())

        def error(self, status: int, code: str, msg: str) -> None:
            self.json(status, {"error": {"code": code, "message": msg}})

        def do_GET(self):
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path
            if path == "/":
                return self.send(200, (STATIC / "index.html").read_bytes(), "text/html")
            if path.startswith("/static/"):
                f = STATIC / path.removeprefix("/static/")
                if f.is_file():
                    return self.send(200, f.read_bytes(), TYPES.get(f.suffix, "text/plain"))
                return self.error(404, "not_found", "no such file")
            if path == "/health":
                return self.json(
                    200,
                    {
                        "status": "ok",
                        "data_as_of": data.data_as_of.isoformat().replace("+00:00", "Z"),
                    },
                )
            if self.headers.get("x-api-key") != api_key:
                return self.error(403, "forbidden", "missing or invalid API key")
            if path == "/sales/by-channel":
                return self.json(200, {"items": [_clean(r) for r in data.channels]})
            if path == "/products":
                return self.json(200, {"items": [_clean(r) for r in data.products]})
            if path == "/status-summary":
                return self.json(200, {"items": [_clean(r) for r in data.statuses]})
            if path == "/sales/daily":
                rows = [
                    r
                    for r in data.daily
                    if q.get("from", "0") <= r["pa_date"].isoformat() <= q.get("to", "9")
                ]
                return self.json(200, {"items": [_clean(r) for r in rows]})
            if path == "/clients":
                limit = int(q.get("limit", "100"))
                start = int(q.get("cursor", "0"))
                page = data.clients[start : start + limit]
                nxt = str(start + limit) if start + limit < len(data.clients) else None
                return self.json(200, {"items": [_clean(c) for c in page], "next_cursor": nxt})
            if path.startswith("/clients/"):
                cid = path.removeprefix("/clients/")
                if not cid.isdigit():
                    return self.error(400, "bad_request", "client_id must be an integer")
                for c in data.clients:
                    if c["client_id"] == int(cid):
                        return self.json(200, _clean(c))
                return self.error(404, "not_found", f"no client {cid}")
            return self.error(404, "not_found", "no such route")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server
