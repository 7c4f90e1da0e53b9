"""The machinery every fake vendor server shares: real HTTP on loopback, routes, a request log,
a sliding-window rate limit and scripted faults.

A vendor fake subclasses `FakeServer`, registers its routes with `@route(...)` and keeps its own
state (companies, accounts...). Tests then assert on `server.requests` and on that state.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the matched route
    received: float = field(default_factory=time.monotonic)  # when it arrived, before any latency

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next matching request.

    `response` answers instead of the route; `delay` sleeps first (timeouts); `reset` closes
    the connection without an answer (connection reset).
    """

    path: str = ".*"  # regex matched against the request path
    response: Response | None = None
    delay: float = 0.0
    reset: bool = False
    times: int = 1


class SlidingWindow:
    """At most `limit` hits in any `seconds`-long window: how vendors' rolling limits behave."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    def hit(self) -> tuple[bool, int]:
        """Record a hit if allowed; returns (allowed, remaining)."""
        with self._lock:
            now = self.clock()
            while self._hits and self._hits[0] <= now - self.seconds:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                return False, 0
            self._hits.append(now)
            return True, self.limit - len(self._hits)

    def reset_at(self) -> float:
        with self._lock:
            return (self._hits[0] + self.seconds) if self._hits else self.clock()


Handler = Callable[[Request], Response]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Mark a FakeServer method as the handler of `method` on paths matching `pattern`."""

    def mark(fn: Handler) -> Handler:
        fn.__route__ = (method.upper(), re.compile(f"^{pattern}$"))  # type: ignore[attr-defined]
        return fn

    return mark


class FakeServer:
    """Base of the vendor fakes. Use as a context manager or call start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        # Per-request round trip, like a remote API: every vendor call is answered after
        # latency +- jitter seconds (uniform), half on the way in (before the vendor acts on it
        # and counts it), half on the way back, concurrently with other calls. 0: at once.
        self.latency, self.jitter = 0.0, 0.0
        self._rng = random.Random(20261120)
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._routes = [
            (*getattr(self, name).__route__, getattr(self, name))
            for name in dir(type(self))
            if hasattr(getattr(type(self), name, None), "__route__")
        ]
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> FakeServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def serve_until_stopped(self, name: str) -> None:
        """The `python -m tests.fakes.<name>` loop: print the URL, serve until SIGTERM or Ctrl-C."""
        import signal
        import sys

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.start()
        print(self.url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            print(f"fake {name} stopped", file=sys.stderr, flush=True)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ------------------------------------------------------------------------

    def with_latency(self, latency: float, jitter: float = 0.0) -> FakeServer:
        """Answer every vendor call after `latency` +- `jitter` seconds (a network round trip)."""
        if latency < 0 or jitter < 0 or jitter > latency:
            raise ValueError("latency >= jitter >= 0")
        self.latency, self.jitter = latency, jitter
        return self

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def calls(self, method: str | None = None, path: str = ".*") -> list[Request]:
        rx = re.compile(path)
        return [r for r in self.requests if (method is None or r.method == method) and rx.search(r.path)]

    # -- hooks for subclasses ----------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """Return an error Response to refuse the request; None lets it through."""
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": f"no route for {request.method} {request.path}"})

    # -- dispatch ----------------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if re.search(fault.path, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def state(self) -> dict:
        """What the fake holds (records it stored), for `GET /_fake/state`; subclasses extend it."""
        return {}

    def _admin(self, request: Request) -> Response:
        """`/_fake/*`: how a process-level fake (the demo, the e2e test) is inspected."""
        if request.path == "/_fake/state":
            return Response(200, self.state())
        if request.path == "/_fake/requests":
            with self._lock:
                log = [{"method": r.method, "path": r.path, "bytes": len(r.body)} for r in self.requests]
            return Response(200, log)
        return self.not_found(request)

    def dispatch(self, request: Request) -> Response | None:
        if request.path.startswith("/_fake/"):
            return self._admin(request)
        with self._lock:
            self.requests.append(request)
            inbound, outbound = self._transit(), self._transit()
        if inbound > 0:  # the request's way in: the vendor acts (and counts it) on arrival
            time.sleep(inbound)
        response = self._answer(request)
        if outbound > 0:  # the answer's way back
            time.sleep(outbound)
        return response

    def _transit(self) -> float:
        """One way of a round trip: half the latency, +- half the jitter."""
        half = self.latency / 2
        return half + (self._rng.uniform(-self.jitter / 2, self.jitter / 2) if self.jitter else 0.0)

    def _answer(self, request: Request) -> Response | None:
        fault = self._take_fault(request.path)
        if fault:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                return None
            if fault.response:
                return fault.response
        refused = self.authorize(request)
        if refused:
            return refused
        for method, rx, handler in self._routes:
            match = rx.match(request.path)
            if method == request.method and match:
                request.params = match.groupdict()
                return handler(request)
        return self.not_found(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else every keep-alive response waits ~40 ms for a delayed ACK

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = server.dispatch(request)
                if response is None:  # scripted connection reset
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                payload = response.encode()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return _Handler
