"""Q&A frame handlers, plugged into the realtime core through one FrameRouter.

Every frame names a meeting room (`meeting:<id>` or its moderation room); the caller's role in
that meeting decides what they may do. Payloads are untrusted: ids are parsed here, text in
`server.qa.rules`, and every refusal is an `error` frame that changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from channels.protocol import ErrorCode, FrameError
from channels.seams import FrameRouter, SessionView
from server.auth.identity import Principal
from server.meetings.policy import parse_meeting_room, principal_of
from server.meetings.roles import MODERATORS, Role, role_in
from server.qa import service
from server.qa.frames import Ask, Delete, Edit, Merge, Moderate, Similar, SimilarItem, VoteFrame
from server.qa.publish import publish_changes, question_view
from server.qa.votes import VoteCoalescer
from server.ratelimit import RateLimiter
from server.services import Services

log = logging.getLogger("roomcast.qa")

ROLE_CACHE_S = 30.0
ROLE_CACHE_SIZE = 100_000

QuestionHook = Callable[[Services, service.Row], Awaitable[None]]


async def _no_hook(services: Services, row: service.Row) -> None:
    return None


def meeting_of(room: str) -> uuid.UUID:
    """The meeting id in `meeting:<id>` or `meeting:<id>:moderation`."""
    parsed = parse_meeting_room(room)
    if parsed is None:
        raise FrameError(ErrorCode.BAD_REQUEST, "room must be meeting:<id> or meeting:<id>:moderation")
    return parsed[0]


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FrameError(ErrorCode.BAD_REQUEST, f"{field} is not a valid id") from None


def build_router(
    services: Services,
    votes: VoteCoalescer,
    *,
    on_answered: QuestionHook = _no_hook,
    on_dismissed: QuestionHook = _no_hook,
) -> FrameRouter:
    """The Q&A router for one process; `on_answered`/`on_dismissed` let notifications tell the asker."""
    router = FrameRouter()
    limiter = RateLimiter(services.redis)
    settings = services.settings

    roles: dict[tuple[uuid.UUID, uuid.UUID], tuple[Role, float]] = {}
    local_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def in_order(meeting_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
        """`service.in_order`, queued in this process first: one pooled connection per meeting waits on
        the advisory lock, however many of this process's frames change that meeting at once."""
        lock = local_locks.get(meeting_id)
        if lock is None:
            lock = local_locks[meeting_id] = asyncio.Lock()
        async with lock, service.in_order(services.db.pool, meeting_id) as connection:
            yield connection

    async def member(
        session: SessionView, room: str, *, moderator: bool = False, fresh: bool = False
    ) -> tuple[uuid.UUID, Principal, Role]:
        """The caller's meeting, principal and role; strangers get not_found.

        Asking and voting trust a role looked up in the last ROLE_CACHE_S seconds (a user
        removed from a meeting has their sockets closed anyway); moderation and deleting
        others' questions always ask the database.
        """
        meeting_id = meeting_of(room)
        principal = principal_of(session)
        key = (principal.user_id, meeting_id)
        cached = roles.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now and not (moderator or fresh):
            return meeting_id, principal, cached[0]
        role = await role_in(services, meeting_id, principal)
        if role is not None:
            if len(roles) >= ROLE_CACHE_SIZE:
                roles.clear()
            roles[key] = (role, now + ROLE_CACHE_S)
        if role is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        if moderator and role not in MODERATORS:
            raise FrameError(ErrorCode.FORBIDDEN, "only the owner or a presenter can do that")
        return meeting_id, principal, role

    async def limit(kind: str, per_minute: int, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
        wait = await limiter.hit(services.key("rl", kind, str(meeting_id), str(user_id)), per_minute, 60)
        if wait:
            raise FrameError(ErrorCode.RATE_LIMITED, f"too many {kind}s; try again in {wait} s", retry_after_s=wait)

    @router.on(Ask)
    async def ask(session: SessionView, frame: Ask) -> dict[str, Any]:
        meeting_id, principal, _ = await member(session, frame.room)
        await limit("question", settings.ask_per_minute, meeting_id, principal.user_id)
        row, created = await service.ask(
            services.db.pool,
            meeting_id,
            principal.user_id,
            frame.text,
            anonymous=frame.anonymous,
            client_id=frame.client_id,
        )
        if created:
            await publish_changes(services.broker, [service.Change(None, row)])
            log.info(
                "qa.asked",
                extra={"meeting_id": str(meeting_id), "question_id": str(row["id"]), "status": row["status"]},
            )
        return {"question": question_view(row, as_author=True)}

    @router.on(VoteFrame)
    async def vote(session: SessionView, frame: VoteFrame) -> dict[str, Any]:
        meeting_id, principal, _ = await member(session, frame.room)
        question_id = parse_id(frame.question_id, "question_id")
        await limit("vote", settings.vote_per_minute, meeting_id, principal.user_id)
        count, changed = await service.vote(services.db.pool, meeting_id, question_id, principal.user_id, frame.up)
        if changed:
            votes.touch(meeting_id, question_id)
        return {"question_id": str(question_id), "votes": count}

    @router.on(Moderate)
    async def moderate(session: SessionView, frame: Moderate) -> dict[str, Any]:
        meeting_id, _, _ = await member(session, frame.room, moderator=True)
        question_id = parse_id(frame.question_id, "question_id")
        if frame.reason is not None and frame.action != "dismiss":
            raise FrameError(ErrorCode.BAD_REQUEST, "reason goes only with the dismiss action")
        async with in_order(meeting_id) as connection:
            changes = await service.moderate(
                connection, meeting_id, question_id, frame.action, text=frame.text, reason=frame.reason
            )
            await publish_changes(services.broker, changes)
        for change in changes:
            if change.after is not None and change.after["id"] == question_id and change.before is not None:
                if change.after["status"] == "answered" and change.before["status"] != "answered":
                    await on_answered(services, change.after)
                if change.after["status"] == "dismissed" and change.before["status"] != "dismissed":
                    await on_dismissed(services, change.after)
        log.info(
            "qa.moderated",
            extra={"meeting_id": str(meeting_id), "question_id": str(question_id), "action": frame.action},
        )
        row = next((c.after for c in changes if c.after is not None and c.after["id"] == question_id), None)
        if row is None:  # an action that changed no question row (mute, or pinning the pinned one)
            async with services.db.pool.acquire() as connection:
                row = await service.fetch_question(connection, meeting_id, question_id)
        return {"question": question_view(row, moderator=True)}

    @router.on(Edit)
    async def edit(session: SessionView, frame: Edit) -> dict[str, Any]:
        meeting_id, principal, _ = await member(session, frame.room)
        question_id = parse_id(frame.question_id, "question_id")
        async with in_order(meeting_id) as connection:
            change = await service.edit(connection, meeting_id, question_id, principal.user_id, frame.text)
            await publish_changes(services.broker, [change])
        assert change.after is not None
        return {"question": question_view(change.after, as_author=True)}

    @router.on(Delete)
    async def delete(session: SessionView, frame: Delete) -> dict[str, Any]:
        meeting_id, principal, role = await member(session, frame.room, fresh=True)
        question_id = parse_id(frame.question_id, "question_id")
        async with in_order(meeting_id) as connection:
            change = await service.delete(
                connection, meeting_id, question_id, principal.user_id, moderator=role in MODERATORS
            )
            await publish_changes(services.broker, [change])
        return {"question_id": str(question_id)}

    @router.on(Merge)
    async def merge(session: SessionView, frame: Merge) -> dict[str, Any]:
        meeting_id, _, _ = await member(session, frame.room, moderator=True)
        question_id, into_id = parse_id(frame.question_id, "question_id"), parse_id(frame.into_id, "into_id")
        async with in_order(meeting_id) as connection:
            source, target = await service.merge(connection, meeting_id, question_id, into_id)
            await publish_changes(services.broker, [source, target])
        assert source.after is not None
        await on_dismissed(services, source.after)
        assert target.after is not None
        return {"question": question_view(target.after, moderator=True)}

    @router.on(Similar)
    async def similar(session: SessionView, frame: Similar) -> dict[str, Any]:
        meeting_id, principal, role = await member(session, frame.room)
        text = frame.text.strip()
        if not text or len(text) > 2000:
            raise FrameError(ErrorCode.BAD_REQUEST, "text must be 1..2000 characters")
        await limit("similar", settings.similar_per_minute, meeting_id, principal.user_id)
        rows = await service.similar(
            services.db.pool, meeting_id, text, moderation=role in MODERATORS and frame.room.endswith(":moderation")
        )
        items = [
            SimilarItem(question_id=str(r["id"]), text=r["text"], votes=r["votes"], score=round(float(r["score"]), 3))
            for r in rows
        ]
        return {"items": items}

    return router


async def questions_snapshot(
    services: Services, session: SessionView, meeting_id: uuid.UUID, moderation: bool
) -> list[Any]:
    """The questions part of a meeting room's snapshot, as that room's audience sees them."""
    principal = principal_of(session)
    rows = await service.snapshot(services.db.pool, meeting_id, moderation=moderation, viewer_id=principal.user_id)
    return [question_view(row, moderator=moderation, as_author=row["author"] == principal.user_id) for row in rows]
