"""Q&A frame handlers, plugged into the realtime core through one FrameRouter.

Every frame names a meeting room (`meeting:<id>` or its moderation room); the gateway hands each
handler the `Grant` of that room (the caller's role there, `server.meetings.policy`), which
decides what they may do. Payloads are untrusted: ids are parsed here, text in
`server.qa.rules`, and every refusal is an `error` frame that changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from channels.protocol import ErrorCode, FrameError
from channels.seams import FrameRouter, Grant, SessionView
from server.auth.identity import principal_of
from server.meetings.policy import access_of
from server.qa import service, transitions
from server.qa.frames import Ask, Delete, Edit, Merge, Moderate, Similar, SimilarItem, VoteFrame
from server.qa.publish import publish_changes, question_view
from server.qa.rules import clean_text
from server.qa.votes import VoteCoalescer
from server.ratelimit import RateLimiter
from server.services import Services

log = logging.getLogger("roomcast.qa")

QuestionHook = Callable[[Services, service.Row], Awaitable[None]]


async def _no_hook(services: Services, row: service.Row) -> None:
    return None


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FrameError(ErrorCode.BAD_REQUEST, f"{field} is not a valid id") from None


class QaHandlers:
    """The Q&A frame handlers of one process: one named method per frame type, registered by `router()`.

    Each handler gets the `Grant` of the room its frame names (`server.meetings.policy`): the
    meeting and the caller's role there, from the one authorisation point. Handlers never look
    roles up themselves; statements are always filtered by the granted meeting.
    """

    def __init__(
        self,
        services: Services,
        votes: VoteCoalescer,
        *,
        on_answered: QuestionHook = _no_hook,
        on_dismissed: QuestionHook = _no_hook,
    ) -> None:
        self.services = services
        self.votes = votes
        self.on_answered = on_answered
        self.on_dismissed = on_dismissed
        self.limiter = RateLimiter(services.redis)
        self.ask_contexts = service.AskContexts()
        self._local_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()

    def router(self) -> FrameRouter:
        router = FrameRouter()
        router.on(Ask)(self.ask)
        router.on(VoteFrame)(self.vote)
        router.on(Moderate)(self.moderate)
        router.on(Edit)(self.edit)
        router.on(Delete)(self.delete)
        router.on(Merge)(self.merge)
        router.on(Similar)(self.similar)
        return router

    @contextlib.asynccontextmanager
    async def in_order(self, meeting_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
        """`service.in_order`, queued in this process first: one pooled connection per meeting waits on
        the advisory lock, however many of this process's frames change that meeting at once."""
        lock = self._local_locks.get(meeting_id)
        if lock is None:
            lock = self._local_locks[meeting_id] = asyncio.Lock()
        async with lock, service.in_order(self.services.db.pool, meeting_id) as connection:
            yield connection

    def _limit_key(self, kind: str, meeting_id: uuid.UUID, user_id: uuid.UUID) -> str:
        return self.services.key("rl", kind, str(meeting_id), str(user_id))

    async def _limit(self, kind: str, per_minute: int, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
        wait = await self.limiter.hit(self._limit_key(kind, meeting_id, user_id), per_minute, 60)
        if wait:
            raise FrameError(ErrorCode.RATE_LIMITED, f"too many {kind}s; try again in {wait} s", retry_after_s=wait)

    async def ask(self, session: SessionView, frame: Ask, grant: Grant) -> dict[str, Any]:
        access, principal = access_of(grant), principal_of(session)
        meeting_id = access.meeting_id
        row, created = await service.ask(
            self.services.db.pool,
            meeting_id,
            principal.user_id,
            frame.text,
            anonymous=frame.anonymous,
            client_id=frame.client_id,
            admit=lambda: self._limit("question", self.services.settings.ask_per_minute, meeting_id, principal.user_id),
            refund=lambda: self.limiter.refund(self._limit_key("question", meeting_id, principal.user_id)),
            contexts=self.ask_contexts,
        )
        if created:
            await publish_changes(self.services.broker, [service.Change(None, row)])
            log.info(
                "qa.asked",
                extra={"meeting_id": str(meeting_id), "question_id": str(row["id"]), "status": row["status"]},
            )
        return {"question": question_view(row, as_author=True)}

    async def vote(self, session: SessionView, frame: VoteFrame, grant: Grant) -> dict[str, Any]:
        access, principal = access_of(grant), principal_of(session)
        meeting_id = access.meeting_id
        question_id = parse_id(frame.question_id, "question_id")
        await self._limit("vote", self.services.settings.vote_per_minute, meeting_id, principal.user_id)
        count, changed = await service.vote(self.services.db.pool, meeting_id, question_id, principal.user_id, frame.up)
        if changed:
            self.votes.touch(meeting_id, question_id)
        return {"question_id": str(question_id), "votes": count}

    async def moderate(self, session: SessionView, frame: Moderate, grant: Grant) -> dict[str, Any]:
        access = access_of(grant)
        access.require_moderator()
        meeting_id = access.meeting_id
        question_id = parse_id(frame.question_id, "question_id")
        if frame.reason is not None and frame.action != "dismiss":
            raise FrameError(ErrorCode.BAD_REQUEST, "reason goes only with the dismiss action")
        async with self.in_order(meeting_id) as connection:
            changes = await transitions.moderate(
                connection, meeting_id, question_id, frame.action, text=frame.text, reason=frame.reason
            )
            await publish_changes(self.services.broker, changes)
        for change in changes:
            if change.after is not None and change.after["id"] == question_id and change.before is not None:
                if change.after["status"] == "answered" and change.before["status"] != "answered":
                    await self.on_answered(self.services, change.after)
                if change.after["status"] == "dismissed" and change.before["status"] != "dismissed":
                    await self.on_dismissed(self.services, change.after)
        log.info(
            "qa.moderated",
            extra={"meeting_id": str(meeting_id), "question_id": str(question_id), "action": frame.action},
        )
        row = next((c.after for c in changes if c.after is not None and c.after["id"] == question_id), None)
        if row is None:  # an action that changed no question row (mute, or pinning the pinned one)
            async with self.services.db.pool.acquire() as connection:
                row = await service.fetch_question(connection, meeting_id, question_id)
        return {"question": question_view(row, moderator=True)}

    async def edit(self, session: SessionView, frame: Edit, grant: Grant) -> dict[str, Any]:
        meeting_id, principal = access_of(grant).meeting_id, principal_of(session)
        question_id = parse_id(frame.question_id, "question_id")
        async with self.in_order(meeting_id) as connection:
            change = await transitions.edit(connection, meeting_id, question_id, principal.user_id, frame.text)
            await publish_changes(self.services.broker, [change])
        assert change.after is not None
        return {"question": question_view(change.after, as_author=True)}

    async def delete(self, session: SessionView, frame: Delete, grant: Grant) -> dict[str, Any]:
        access, principal = access_of(grant), principal_of(session)
        question_id = parse_id(frame.question_id, "question_id")
        async with self.in_order(access.meeting_id) as connection:
            change = await transitions.delete(
                connection, access.meeting_id, question_id, principal.user_id, moderator=access.moderator
            )
            await publish_changes(self.services.broker, [change])
        return {"question_id": str(question_id)}

    async def merge(self, session: SessionView, frame: Merge, grant: Grant) -> dict[str, Any]:
        access = access_of(grant)
        access.require_moderator()
        question_id, into_id = parse_id(frame.question_id, "question_id"), parse_id(frame.into_id, "into_id")
        async with self.in_order(access.meeting_id) as connection:
            source, target = await transitions.merge(connection, access.meeting_id, question_id, into_id)
            await publish_changes(self.services.broker, [source, target])
        assert source.after is not None
        await self.on_dismissed(self.services, source.after)
        assert target.after is not None
        return {"question": question_view(target.after, moderator=True)}

    async def similar(self, session: SessionView, frame: Similar, grant: Grant) -> dict[str, Any]:
        access = access_of(grant)
        text = clean_text(frame.text, 2000)  # a draft of a question: the same rules (PostgreSQL takes no NUL)
        principal = principal_of(session)
        await self._limit("similar", self.services.settings.similar_per_minute, access.meeting_id, principal.user_id)
        rows = await service.similar(self.services.db.pool, access.meeting_id, text, moderation=access.moderation)
        items = [
            SimilarItem(question_id=str(r["id"]), text=r["text"], votes=r["votes"], score=round(float(r["score"]), 3))
            for r in rows
        ]
        return {"items": items}


async def questions_snapshot(
    services: Services, session: SessionView, meeting_id: uuid.UUID, moderation: bool
) -> list[Any]:
    """The questions part of a meeting room's snapshot, as that room's audience sees them."""
    principal = principal_of(session)
    rows = await service.snapshot(services.db.pool, meeting_id, moderation=moderation, viewer_id=principal.user_id)
    return [question_view(row, moderator=moderation, as_author=row["author"] == principal.user_id) for row in rows]
