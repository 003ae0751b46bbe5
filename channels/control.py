"""Closing sockets from outside their connection: `Disconnect` control messages and the credential check.

A `Disconnect` (published by `Publisher.disconnect_user` on any process) closes the matching
sockets of this process: by user, by the rooms they joined, by the credential they were opened
with. Because a process whose pub/sub connection is down misses such a message, the periodic
credential check asks the application which open sockets' credentials were revoked meanwhile
and closes those (4401): that bounds how long a revoked credential's socket may live.

A credential that expires by itself closes its socket (4401) within a second of its expiry
(`Expiries`): every open socket's expiry is on one timer, grouped by the second it falls in,
rather than a timer handle per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time

from channels.backend import Disconnect, room_matches
from channels.protocol import CLOSE_CODES, CloseCode
from channels.seams import CredentialCheck
from channels.session import Session

log = logging.getLogger("roomcast.ws")


class Expiries:
    """Close (4401) each socket whose credential expires, at the end of the second it expires in, on one timer."""

    def __init__(self) -> None:
        self._due: dict[int, set[Session]] = {}
        self._seconds: list[int] = []
        """The keys of `_due` as a heap: the next second that closes sockets is first."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_second = 0

    def __len__(self) -> int:
        return sum(len(sessions) for sessions in self._due.values())

    def add(self, session: Session) -> None:
        expires_at = session.identity.expires_at
        if expires_at is None:
            return
        second = math.ceil(expires_at)
        due = self._due.get(second)
        if due is None:
            due = self._due[second] = set()
            heapq.heappush(self._seconds, second)
        due.add(session)
        if self._timer is None or second < self._timer_second:
            self._arm()

    def discard(self, session: Session) -> None:
        expires_at = session.identity.expires_at
        if expires_at is None:
            return
        due = self._due.get(math.ceil(expires_at))
        if due is not None:
            due.discard(session)  # an emptied second stays until its time comes: one timer call, no search

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._seconds:
            return
        self._timer_second = self._seconds[0]
        self._timer = asyncio.get_running_loop().call_later(max(0.0, self._timer_second - time.time()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = time.time()
        while self._seconds and self._seconds[0] <= now:
            for session in self._due.pop(heapq.heappop(self._seconds), ()):
                session.close(CloseCode.UNAUTHENTICATED, "credential expired")
        self._arm()


class Control:
    def __init__(self, sessions: dict[str, Session], check: CredentialCheck | None, interval_s: float) -> None:
        self.sessions = sessions
        self._check = check
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.expiries = Expiries()

    def start(self) -> None:
        if self._check is not None and self._task is None:
            self._task = asyncio.create_task(self._check_credentials(), name="roomcast.ws.credentials")

    async def stop(self) -> None:
        self.expiries.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def disconnect(self, message: Disconnect) -> None:
        """Close the sockets a `Disconnect` control message names (the hub's control handler)."""
        prefix, credentials = message.room_prefix, message.credentials
        spared = message.except_credentials
        for session in list(self.sessions.values()):
            identity = session.identity
            if message.user_id not in ("*", identity.user_id):
                continue
            if prefix is not None and not any(room_matches(room, prefix) for room in session.subscriptions):
                continue
            if credentials is not None and identity.credential not in credentials:
                continue
            if spared and identity.credential in spared:
                continue
            session.close(_close_value(message.code), message.reason or None)

    async def _check_credentials(self) -> None:
        """Close (4401) the sockets whose credential was revoked, in case this process missed the disconnect."""
        check = self._check
        assert check is not None
        while True:
            await asyncio.sleep(self._interval_s)
            sessions = [s for s in self.sessions.values() if s.identity.credential and s.close_code is None]
            if not sessions:
                continue
            try:
                revoked = set(await check([s.identity for s in sessions]))
            except Exception:
                log.warning("ws.credential_check_failed", exc_info=True, extra={"sessions": len(sessions)})
                continue
            for session in sessions:
                if session.identity.credential in revoked:
                    session.close(CloseCode.UNAUTHENTICATED, "credential revoked")
            if revoked:
                log.info("ws.credentials_revoked", extra={"credentials": len(revoked)})


def _close_value(code: int) -> int:
    """The `CloseCode` value of a code that came over the wire (a control message), else the bare code."""
    return next((value for value in CLOSE_CODES if value == code), code)
