"""Fixtures of the account tests: a real SMTP server, and two servers plus a real worker that mail through it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from server.embedded import free_port
from tests.support import ServerProcess, SmtpSink, running_workers
from tests.web.conftest import browser, open_tab  # noqa: F401  (the browser suite's Chromium fixtures)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on a free port, for this test only."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@dataclass
class MailWorld:
    servers: list[ServerProcess]
    smtp: SmtpSink
    env: dict[str, str]


@pytest.fixture
def mail_world(server_env: dict[str, str], smtp: SmtpSink) -> Iterator[MailWorld]:
    """Two `roomcast serve` processes and one `roomcast worker` mailing through `smtp`.

    `ROOMCAST_PUBLIC_URL` is the first server, so links in the mail open there.
    """
    port = free_port()
    env = {**server_env, "ROOMCAST_SMTP_URL": smtp.url, "ROOMCAST_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    servers = [ServerProcess(env=env, port=port).start(), ServerProcess(env=env).start()]
    try:
        for server in servers:
            server.wait_ready()
        with running_workers(env, 1):
            yield MailWorld(servers, smtp, env)
    finally:
        for server in servers:
            server.stop()
