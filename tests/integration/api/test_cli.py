"""``python -m api`` and ``python -m api.demo`` as a user runs them."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(lake, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUFF_")}
    env.update({"DUFF_LAKE": str(lake), "PYTHONPATH": str(ROOT), **extra})
    return env


def test_refuses_to_start_without_a_key(tmp_path):
    # Given no DUFF_API_KEY / When started without --dev / Then it refuses, exit code 2
    done = subprocess.run(
        [sys.executable, "-m", "api", "--port", str(free_port())],
        cwd=ROOT,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DUFF_API_KEY" in done.stderr


def wait_for_line(proc, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            time.sleep(0.05)
            continue
        lines.append(line)
        m = re.search(pattern, line)
        if m:
            return m, lines
    raise AssertionError(f"no line matching {pattern!r} in {lines}")


def wait_http(url, headers=None, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_dev_server(lake, dataset, stderr=subprocess.DEVNULL):
    """``python -m api --dev`` on a free port over a build of ``dataset``; (process, port)."""
    from tests.support.fake_marts import write_build

    write_build(lake, dataset)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--dev", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env_for(lake),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    return proc, port


def test_dev_mode_prints_a_generated_key_that_works(tmp_path, api_it_tools):
    proc, port = start_dev_server(tmp_path, api_it_tools.make_dataset(seed=5))
    try:
        m, _ = wait_for_line(proc, r"generated API key.*: (\S+)")
        key = m.group(1)
        base = f"http://127.0.0.1:{port}"
        assert wait_http(f"{base}/health")[0] == 200
        assert wait_http(f"{base}/products", {"x-api-key": key})[0] == 200
        assert wait_http(f"{base}/products", {"x-api-key": key + "x"})[0] == 403
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_demo_prints_url_with_key_fragment_and_uses_duff_api_key(tmp_path, api_it_tools):
    from tests.support.fake_marts import write_build

    write_build(tmp_path, api_it_tools.make_dataset(seed=6))
    port = free_port()
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.demo", "--port", str(port)],
            cwd=ROOT,
            env=env_for(tmp_path, DUFF_API_KEY="demo-key-123"),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        m, lines = wait_for_line(proc, r"Dashboard:\s+(http://127\.0\.0\.1:(\d+)/#key=(\S+))")
        assert m.group(2) == str(port) and m.group(3) == "demo-key-123"
        assert "API key (from DUFF_API_KEY): demo-key-123" in lines[-2]
        base = f"http://127.0.0.1:{port}"
        # the banner comes once data is served, so nothing of the server's follows it
        with urllib.request.urlopen(f"{base}/health", timeout=5) as resp:
            assert resp.status == 200
        status, body = wait_http(f"{base}/")
        assert status == 200 and b"<html" in body.lower()
        assert wait_http(f"{base}/clients?limit=1", {"x-api-key": "demo-key-123"})[0] == 200
        # the requests are logged as JSON lines to the lake's log file, not the terminal
        log_file = tmp_path / "logs" / "api.log"
        deadline = time.monotonic() + 10
        while "/clients" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        records = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert any(r["logger"] == "duff.api.access" and "/clients" in r["message"] for r in records)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert stderr.read_text() == ""


def test_a_taken_port_is_a_clear_error_before_any_url_is_printed(tmp_path):
    # Given another program listening on the port
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        for module in ("api", "api.demo"):
            # When the API or the demo is started on it
            done = subprocess.run(
                [sys.executable, "-m", module, "--port", str(port)],
                cwd=ROOT,
                env=env_for(tmp_path, DUFF_API_KEY="k"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            # Then it exits 2 naming the port, and printed no URL that would lead elsewhere
            assert done.returncode == 2, (module, done.stdout, done.stderr)
            assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
            assert "http://" not in done.stdout


def test_ctrl_c_stops_the_server_quietly(tmp_path, api_it_tools):
    # Given a server serving a build
    proc, port = start_dev_server(
        tmp_path, api_it_tools.make_dataset(seed=7), stderr=subprocess.PIPE
    )
    try:
        wait_for_line(proc, r"generated API key")
        assert wait_http(f"http://127.0.0.1:{port}/health")[0] == 200
        # When Ctrl-C reaches it
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it stops with exit code 0 and no traceback
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
