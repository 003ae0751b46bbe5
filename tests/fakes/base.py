"""A small threaded HTTP(S) server for provider fakes, with fault injection and a call log.

Each fake subclasses `FakeServer` and implements `route(request) -> Answer`. Faults are queued
per path prefix: the next matching requests get the injected status, headers and body instead of
the real answer (`fail`), or are answered only after a delay (`slow`). Every request is logged
with its arrival time, and requests in flight are counted per path prefix, so a test can see how
many syncs ran at once.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    @property
    def bearer(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else ""


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    """dict/list: JSON; str: text (see content_type); bytes: as is; None: empty."""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"


@dataclass
class Fault:
    method: str
    prefix: str
    answer: Answer | None
    delay_s: float
    remaining: int


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    at: float
    """time.monotonic() on arrival."""


class FakeServer:
    """Serve `route()` on 127.0.0.1 (TLS when given a context) in a background thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                answer = fake._handle(request)
                if isinstance(answer.body, dict | list):
                    payload = json.dumps(answer.body).encode()
                elif isinstance(answer.body, str):
                    payload = answer.body.encode()
                else:
                    payload = answer.body or b""
                self.send_response(answer.status)
                if payload or answer.status not in (204, 304):
                    self.send_header("Content-Type", answer.content_type)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- fault injection -----------------------------------------------------------------

    def fail(
        self,
        prefix: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        method: str = "*",
        times: int = 1,
    ) -> None:
        """The next `times` requests whose path starts with `prefix` get this answer."""
        with self._lock:
            self.faults.append(Fault(method, prefix, Answer(status, body, headers or {}), 0.0, times))

    def slow(self, prefix: str, seconds: float, *, method: str = "*", times: int = 1_000_000) -> None:
        """The next `times` matching requests are answered only after `seconds`."""
        with self._lock:
            self.faults.append(Fault(method, prefix, None, seconds, times))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, prefix: str, method: str = "*") -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.path.startswith(prefix) and method in ("*", c.method))

    def _fault_for(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.remaining > 0
                    and request.path.startswith(fault.prefix)
                    and fault.method in ("*", request.method)
                ):
                    fault.remaining -= 1
                    return fault
        return None

    def _handle(self, request: Request) -> Answer:
        key = request.path
        with self._lock:
            self.calls.append(Call(request.method, request.path, request.query, time.monotonic()))
            self.in_flight[key] += 1
            self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])
        try:
            fault = self._fault_for(request)
            if fault is not None:
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.answer is not None:
                    return fault.answer
            try:
                return self.route(request)
            except Exception as err:  # a bug in the fake: show it in the answer
                return Answer(500, {"fake_error": repr(err)})
        finally:
            with self._lock:
                self.in_flight[key] -= 1

    def route(self, request: Request) -> Answer:
        raise NotImplementedError
