"""A deadline for the head of every HTTP request, which uvicorn does not have.

uvicorn's keep-alive timer stops at the first byte of a request, so a client that sends half a
request line and then nothing holds its connection (and a file descriptor) forever: 300 of 300
such connections were still open after 40 s. `HeaderTimeoutProtocol` is uvicorn's httptools
protocol with one timer per request head: started when the connection opens and again at the
first byte of each further request, cancelled once the head is complete. When it fires the
connection is closed; nothing was dispatched to the app, so nothing is half done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("roomcast.http")


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http=HeaderTimeoutProtocol)`; `header_timeout_s` is set once at start
    (`configure`) from `Settings.http_header_timeout_s`, in every worker process."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, header_timeout_s: float) -> None:
        cls.header_timeout_s = header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        log.info("http.header_timeout", extra={"client": client, "timeout_s": self.header_timeout_s})
        self.transport.close()
