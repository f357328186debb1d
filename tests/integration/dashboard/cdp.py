"""A minimal Chrome DevTools Protocol client over Chromium's --remote-debugging-pipe.

Stdlib only: Chromium reads JSON commands from fd 3 and writes answers and events to fd 4,
each message ended by a NUL byte. No websocket, no port, no browser download: it drives
Debian's ``chromium`` package.

    with Chromium.launch(profile_dir) as browser:
        page = browser.new_page(width=1280, height=900)
        page.goto("http://127.0.0.1:8000/#key=k")
        page.wait_for("document.body.dataset.state === 'ready'")
        page.evaluate("document.title")
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LAUNCH_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)


class CDPError(RuntimeError):
    """A protocol command failed, the page threw, or a wait timed out."""


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _above_nine(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Chromium:
    """One headless Chromium process and its protocol pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self._proc = proc
        self._out = os.fdopen(to_browser, "wb", buffering=0)
        self._in = os.fdopen(from_browser, "rb", buffering=0)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, queue.Queue] = {}
        self._events: dict[str | None, queue.Queue] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()

    @classmethod
    def launch(cls, profile_dir: Path, binary: str | None = None) -> Chromium:
        binary = binary or find_chromium()
        if not binary:
            raise CDPError("no chromium binary on PATH")
        cmd_r, cmd_w = os.pipe()  # we write commands, chromium reads them on fd 3
        evt_r, evt_w = os.pipe()  # chromium writes on fd 4, we read
        # Move the child's ends above 9, so that "3<&N 4>&M" never clobbers one of them.
        cmd_r, evt_w = _above_nine(cmd_r), _above_nine(evt_w)
        # bash moves our two pipe ends to fd 3 and 4 before exec'ing chromium.
        script = f'exec "$@" 3<&{cmd_r} 4>&{evt_w} {cmd_r}<&- {evt_w}>&-'
        proc = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                "chromium",
                binary,
                *LAUNCH_FLAGS,
                f"--user-data-dir={profile_dir}",
                "about:blank",
            ],
            pass_fds=(cmd_r, evt_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(cmd_r)
        os.close(evt_w)
        browser = cls(proc, cmd_w, evt_r)
        try:
            browser.send("Browser.getVersion", timeout=30)
        except Exception:
            browser.close()
            raise
        return browser

    # ------------------------------------------------------------------ transport

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._in.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        waiter = self._pending.pop(msg["id"], None)
                    if waiter is not None:
                        waiter.put(msg)
                else:
                    self._event_queue(msg.get("sessionId")).put(msg)
        self._closed = True
        with self._lock:
            waiters = list(self._pending.values())
            self._pending.clear()
        for waiter in waiters:
            waiter.put({"error": {"message": "browser pipe closed"}})

    def _event_queue(self, session_id: str | None) -> queue.Queue:
        with self._lock:
            return self._events.setdefault(session_id, queue.Queue())

    def post(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Callable[[float], dict[str, Any]]:
        """Send a command without waiting; returns ``answer(timeout)`` to collect the result.

        For commands that only answer after something else happens (``Page.navigate`` while
        the test holds the document's response with ``Fetch``)."""
        if self._closed:
            raise CDPError(f"{method}: browser is gone")
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        waiter: queue.Queue = queue.Queue()
        with self._lock:
            self._pending[msg_id] = waiter
        self._out.write(json.dumps(msg).encode() + b"\0")
        return lambda timeout=20: self._answer(method, waiter, timeout)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = 20,
    ) -> dict[str, Any]:
        return self.post(method, params, session_id)(timeout)

    def _answer(self, method: str, waiter: queue.Queue, timeout: float) -> dict[str, Any]:
        try:
            answer = waiter.get(timeout=timeout)
        except queue.Empty:
            raise CDPError(f"{method}: no answer within {timeout} s") from None
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    # ------------------------------------------------------------------ pages

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.set_viewport(width, height)
        return page

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.send("Browser.close", timeout=5)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
            self._proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            self._out.close()
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            self._in.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        self.events = browser._event_queue(session_id)
        self._backlog: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20):
        return self.browser.send(method, params, self.session_id, timeout)

    def post(self, method: str, params: dict[str, Any] | None = None):
        """Send without waiting; see ``Chromium.post``."""
        return self.browser.post(method, params, self.session_id)

    def set_viewport(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def goto(self, url: str, wait_load: bool = True) -> None:
        self.drain_events()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        if wait_load:
            self.wait_event("Page.loadEventFired", timeout=20)

    def evaluate(self, expression: str, timeout: float = 20) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page threw: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.evaluate(expression)
            if last:
                return last
            time.sleep(interval)
        raise CDPError(f"timed out after {timeout} s waiting for {expression!r} (last: {last!r})")

    def _pull(self, timeout: float) -> bool:
        """Move one event from the browser into the backlog; False when none came in time."""
        try:
            self._backlog.append(self.events.get(timeout=timeout))
        except queue.Empty:
            return False
        return True

    def wait_event(
        self,
        method: str,
        timeout: float = 20,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Take (and remove) the first event ``method`` whose params match ``predicate``.

        Events of other kinds stay in the backlog for later waits, so nothing is lost."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for i in range(checked, len(self._backlog)):
                msg = self._backlog[i]
                if msg.get("method") == method and (
                    predicate is None or predicate(msg.get("params", {}))
                ):
                    del self._backlog[i]
                    return msg.get("params", {})
            checked = len(self._backlog)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"timed out after {timeout} s waiting for event {method}")
            self._pull(min(left, 0.2))

    def drain_events(self) -> None:
        self._backlog.clear()
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions the page reported so far."""
        while self._pull(0):
            pass
        out = []
        for msg in self._backlog:
            if msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"]["exceptionDetails"]
                out.append(details.get("exception", {}).get("description") or details["text"])
        return out

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate(
                "({w: document.documentElement.scrollWidth,"
                " h: document.documentElement.scrollHeight})"
            )
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["w"], "height": size["h"], "scale": 1}
        data = self.call("Page.captureScreenshot", params, timeout=30)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(CDPError):
            self.browser.send("Target.closeTarget", {"targetId": self.target_id})
