"""README's first command: ``make demo`` runs the pipeline on sample data and serves the API and
dashboard with that data (it once served only 503s: its build was never exported). Run on a
copy of the tracked files with this venv, a small sample and a free port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "make-demo-key-3b9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, key: str | None = KEY):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key:
        request.add_header("x-api-key", key)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="make")
def test_make_demo_serves_the_sample_data(tmp_path):
    # Given a copy of the repository's tracked files (the venv is this one's, left as it is)
    repo = tmp_path / "repo"
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    venv = Path(sys.executable).parent.parent
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUFF_", "DBT_"))}
    env.update({"DUFF_LAKE": str(tmp_path / "lake"), "DUFF_API_KEY": KEY})
    # When make demo runs (-o: the venv's setup stamp is not remade)
    demo = subprocess.Popen(
        [
            *("make", "-o", f"{venv}/.synced", "demo"),
            *(f"VENV={venv}", "DEMO_ROWS=3000", f"DUFF_PORT={port}"),
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("Press Ctrl+C"):  # the banner's last line
                break
        out = "\n".join(lines)
        # Then it ends with the banner of a server that has data, and the data routes answer
        assert "Duff analytics is up." in lines, out
        status, health = get(port, "/health", key=None)
        assert status == 200 and health["data_as_of"], health
        status, summary = get(port, "/status-summary")
        manifests = [
            json.loads(p.read_text()) for p in (tmp_path / "lake" / "manifests").glob("*.json")
        ]
        (sample,) = [m for m in manifests if m["source_file"].endswith("sample/orders.csv")]
        assert sum(i["orders"] for i in summary["items"]) == sample["valid"] > 0
        assert f"/#key={KEY}" in out
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl+C: the whole demo stops
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
