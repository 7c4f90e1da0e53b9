"""A proxy between plg-bridge and a fake vendor that loses answers AFTER the vendor acted.

The fakes' own faults (`tests/fakes/server.py`) strike before the vendor does anything; real
networks also fail after: the vendor created the task, then the answer was cut mid-body, the
connection reset, a gateway answered 502/504, or the client died while the answer was on its way.
`LosingProxy` forwards every request to the vendor unchanged and, for the requests a test
scripts with `lose(...)`, does one of:

- `cut`     the vendor's status and headers (a longer length announced), then half the body,
            then the connection closes
- `reset`   no answer: the connection is reset (RST) after the vendor answered
- `502`, `504`  a gateway's HTML error page instead of the vendor's answer
- `207`     HubSpot batch create only: the last input is withheld from the vendor and reported as
            failed (VALIDATION_ERROR naming its objectWriteTraceId) next to the vendor's results
            for the others, so exactly one row is refused and the rest exist
- `hold`    the answer is held (`holding` is set) until `release()` or `hold_seconds`, for a test
            that SIGKILLs the client meanwhile; then it is sent (to a dead socket, usually)

`lost` lists (method, path, how) of every answer lost, so a test proves its fault struck.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}
WAYS = ("cut", "reset", "502", "504", "207", "hold")


@dataclass
class Loss:
    path: str  # regex searched in the request path
    how: str
    times: int = 1
    method: str = "POST"


class LosingProxy:
    """Forwarding proxy with scripted lost answers. Use as a context manager or start()/stop()."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0, hold_seconds: float = 30.0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hold_seconds = hold_seconds
        self.losses: list[Loss] = []
        self.lost: list[tuple[str, str, str]] = []
        self.forwarded: list[tuple[str, str]] = []
        self.holding = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> LosingProxy:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LosingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def lose(self, path: str, how: str, times: int = 1, method: str = "POST") -> None:
        """Lose the answers of the next `times` requests whose path matches `path`."""
        if how not in WAYS:
            raise ValueError(f"how must be one of {WAYS}")
        with self._lock:
            self.losses.append(Loss(path, how, times, method))

    def release(self) -> None:
        self._release.set()

    def _take(self, method: str, path: str) -> str | None:
        with self._lock:
            for loss in self.losses:
                if loss.method == method and re.search(loss.path, path):
                    loss.times -= 1
                    if loss.times <= 0:
                        self.losses.remove(loss)
                    self.lost.append((method, path, loss.how))
                    return loss.how
        return None

    def _forward(self, method: str, target: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            sent["Content-Length"] = str(len(body))
            conn.request(method, target, body=body, headers=sent)
            answer = conn.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                how = proxy._take(self.command, path)
                withheld = None
                if how == "207":
                    body, withheld = _withhold_last(body)
                status, headers, answer = proxy._forward(self.command, self.path, dict(self.headers), body)
                with proxy._lock:
                    proxy.forwarded.append((self.command, path))
                if how is None:
                    return self._send(status, headers, answer)
                if how == "reset":
                    return self._reset()
                if how in ("502", "504"):
                    page = f"<html><body><h1>{how} Gateway {'Timeout' if how == '504' else 'Error'}</h1></body></html>"
                    return self._send(int(how), [("Content-Type", "text/html")], page.encode())
                if how == "207":
                    return self._send(207, headers, _partial(answer, withheld))
                if how == "hold":
                    proxy.holding.set()
                    proxy._release.wait(proxy.hold_seconds)
                    try:
                        return self._send(status, headers, answer)
                    except OSError:
                        return None
                # cut: the full length announced, half the body written, the connection closed
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer) + 16))  # an empty 202 is cut too
                self.end_headers()
                self.wfile.write(answer[: len(answer) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None

            def _send(self, status: int, headers, answer: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return _Handler


def _withhold_last(body: bytes) -> tuple[bytes, dict | None]:
    """The batch create body without its last input (that one the vendor never sees)."""
    doc = json.loads(body or b"{}")
    inputs = doc.get("inputs") or []
    if len(inputs) < 2:
        raise AssertionError("a 207 needs a batch of at least two inputs")
    withheld = inputs.pop()
    return json.dumps(doc).encode(), withheld


def _partial(answer: bytes, withheld: dict | None) -> bytes:
    """HubSpot's 207: the vendor's results and one error naming the withheld input."""
    doc = json.loads(answer or b"{}")
    trace = (withheld or {}).get("objectWriteTraceId")
    error = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "Property values were not valid: hs_task_priority",
        "context": {"objectWriteTraceId": [trace]} if trace else {},
        "errors": [{"code": "INVALID_OPTION", "message": "hs_task_priority is not a valid option"}],
    }
    doc.update(numErrors=1, errors=[error])
    return json.dumps(doc).encode()
