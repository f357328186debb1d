"""uvicorn's httptools protocol with the limits a server facing hostile clients needs.

uvicorn alone (0.5x, httptools) accepts a request head of any size (httptools grows it by
concatenation, so the time grows with the square of its size), keeps a connection that sends
nothing, or half a request, open for ever (its keep-alive timer runs only after a response and
any byte resets it), and answers malformed HTTP with a ``text/plain`` 400. This subclass adds,
per connection:

- TCP_NODELAY on the accepted socket, whatever socket the server was given;
- a bound on the request head (request line and headers) and on a request body: 431 and 413;
- a deadline for a whole request from its first byte (slow or half-sent requests: 408), an
  idle deadline before the first request (later ones are uvicorn's keep-alive timeout), and a
  deadline for a client that stops reading its response;
- every refusal is the contract's JSON error, sent before the connection closes; the server
  then reads and drops what the client still sends for a moment (bounded), so the client can
  read the answer instead of a reset;
- a client that half-closes after its requests (``shutdown(SHUT_WR)``) still gets every
  answer, then the connection closes (uvicorn closed it at once, dropping answers still being
  computed).

Used by ``api.server`` only (the Lambda path never imports uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.app import error_response
from api.errors import ApiError

log = logging.getLogger("duff.api.access")

MAX_HEAD_BYTES = 16 * 1024  # request line + headers, as Node's default
MAX_BODY_BYTES = 64 * 1024  # no route reads a body; a small one is tolerated and ignored
LINGER_SECONDS = 2.0  # after a refusal: time the client gets to read it
LINGER_BYTES = 8 * 1024 * 1024  # ... and how much of what it still sends is read and dropped


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal is already recorded."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with size limits, deadlines and JSON refusals (see the module doc)."""

    request_timeout: float = 10.0
    idle_timeout: float = 15.0
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int = MAX_BODY_BYTES

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # the next bytes belong to a request head
        self._head_bytes = 0
        self._body_bytes = 0
        self._answered_current = False  # the request being received already has a cycle
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind = ""
        self._write_deadline: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None  # recorded inside a parser callback
        self._refused = False
        self._dropped = 0
        self._peer_eof = False  # the client half-closed with a request in flight

    # -- connection events ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # the peer may already be gone
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm("idle", self.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        """The client closed its sending side after its request (``shutdown(SHUT_WR)``, as
        HTTP/1.0-style clients and ``nc -N`` do). uvicorn's protocol lets asyncio close the
        transport then, which dropped the answer of a request still being served; keep the
        transport open until the answers in flight are sent (``on_response_complete``
        closes it). With nothing in flight, or after a refusal, close now."""
        if self._answers_pending() and not self._refused:
            self._peer_eof = True
            self._cancel()  # no more bytes will come: the request deadlines no longer apply
            return True
        return None

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if any
        if self._peer_eof and not self._answers_pending() and not self.transport.is_closing():
            self.transport.close()  # the last answer the half-closed client waits for

    def _answers_pending(self) -> bool:
        """A request is queued (pipelined) or its answer is not complete (``self.cycle`` is
        the newest request's)."""
        cycle = self.cycle
        return bool(self.pipeline) or (cycle is not None and not cycle.response_complete)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering after a refusal: read and drop, within bounds
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self._deadline_kind != "request":
            self._arm("request", self.request_timeout)
        # Feed the parser at most what is left of the head's budget at a time, so a huge
        # header is refused after max_head_bytes whatever the size of the read.
        while data:
            if self._head_open:
                room = self.max_head_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(
                        431,
                        "header_too_large",
                        f"the request line and headers exceed {self.max_head_bytes} bytes",
                    )
                    return
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                piece, data = data, b""
            super().data_received(piece)
            if self._refused or self.transport.is_closing():
                return

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:  # the client stopped reading its answer
            self._write_deadline = self.loop.call_later(self.idle_timeout, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    # -- parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._answered_current = False
        self._body_bytes = 0
        if self._deadline_kind != "request":
            self._arm("request", self.request_timeout)

    def on_headers_complete(self) -> None:
        self._head_open = False
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                self._refusal = (
                    413,
                    "body_too_large",
                    f"a request body may have at most {self.max_body_bytes} bytes",
                )
                raise _Refused
        super().on_headers_complete()
        self._answered_current = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            self._refusal = (
                413,
                "body_too_large",
                f"a request body may have at most {self.max_body_bytes} bytes",
            )
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel()
        self._head_open = True
        self._head_bytes = 0

    # -- refusals ----------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to anything its parser refuses: the contract's JSON instead."""
        status, code, message = self._refusal or (
            400,
            "bad_request",
            "not a valid HTTP/1.1 request",
        )
        self._refuse(status, code, message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._cancel()
        log.info("refused connection from %s: %d %s", _peer(self.client), status, code)
        cycle = self.cycle
        if self._answered_current and cycle is not None and not cycle.response_started:
            # The app has this request but has not answered yet: this refusal replaces it
            # (uvicorn's cycle drops what a disconnected client would have been sent).
            cycle.disconnected = True
            cycle.message_event.set()
            busy = bool(self.pipeline)
        else:
            # Another answer is on its way (this request's, or an earlier pipelined one's):
            # a second one would corrupt the stream, so only close.
            busy = (
                self._answered_current
                or bool(self.pipeline)
                or (cycle is not None and not cycle.response_complete)
            )
        if busy or self.transport.is_closing():
            self.transport.close()
            return
        self.transport.write(_raw_error(status, code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # -- deadlines -----------------------------------------------------------------------
    def _arm(self, kind: str, seconds: float) -> None:
        self._cancel()
        self._deadline_kind = kind
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_kind = None, ""

    def _expired(self) -> None:
        kind = self._deadline_kind
        self._deadline, self._deadline_kind = None, ""
        if kind == "idle" or self.transport.is_closing():
            self.transport.close()
            return
        self._refuse(
            408,
            "request_timeout",
            f"the request did not arrive within {self.request_timeout:g} s",
        )


def _raw_error(status: int, code: str, message: str) -> bytes:
    resp = error_response(ApiError(status, code, message))
    head = [STATUS_LINE[status]]
    for name, value in resp.headers.items():
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    head.append(f"content-length: {len(resp.body)}\r\nconnection: close\r\n\r\n".encode())
    return b"".join(head) + resp.body


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"


def protocol_class(*, request_timeout: float, idle_timeout: float) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's ``http=`` option, with these deadlines."""
    return type(
        "DuffHttpProtocol",
        (GuardedHttpProtocol,),
        {"request_timeout": request_timeout, "idle_timeout": idle_timeout},
    )
