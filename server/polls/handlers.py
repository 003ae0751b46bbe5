"""Poll and reaction frame handlers (`poll_action`, `respond`, `react`), the results coalescer and the snapshot parts.

Every frame names a meeting room (`meeting:<id>` or its moderation room); the gateway hands each
handler the `Grant` of that room (the caller's role there, `server.meetings.policy`), which decides
what they may do. Payloads are untrusted: ids are parsed here, answers are
checked in `server.polls.results`, and every refusal is an `error` frame that changes nothing.
Muting a question's author (Q&A) does not stop them answering polls or reacting.

Anonymity: no log line here names the user behind an answer, and `poll.response` goes only to
the answering user's own room.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from channels.protocol import ErrorCode, FrameError
from channels.seams import FrameRouter, Grant, Publisher, SessionView
from server.auth.identity import principal_of
from server.coalesce import Coalescer
from server.meetings.policy import access_of
from server.polls import service
from server.polls.events import poll_view, publish_changes, results_events, views
from server.polls.frames import PollAction, PollOut, PollResponseEvent, React, Respond
from server.polls.reactions import ReactionTally
from server.polls.results import PollDefinition, check_answer
from server.qa import service as qa_service
from server.qa.handlers import parse_id
from server.qa.publish import publish_events
from server.ratelimit import RateLimiter
from server.rooms import user_room
from server.services import Services

log = logging.getLogger("roomcast.polls")

RESULTS_WINDOW_S = 0.5
RESULTS_BATCH = 10
REACTIONS_PER_WINDOW = 10
REACTIONS_WINDOW_S = 10
DEFINITIONS_CACHED = 10_000


class ResultsCoalescer:
    """`poll.results`: at most one per poll per 500 ms across processes, the last one exact (`server.coalesce`)."""

    def __init__(self, redis: Redis, broker: Publisher, key_prefix: str) -> None:
        self._broker = broker
        self._coalescer = Coalescer(
            redis, key_prefix, "poll-results", RESULTS_WINDOW_S, self._flush, batch=RESULTS_BATCH
        )

    def touch(self, meeting_id: uuid.UUID, poll_id: uuid.UUID) -> None:
        """An answer to `poll_id` committed in this process: make sure a `poll.results` follows."""
        self._coalescer.touch(meeting_id, poll_id)

    async def close(self) -> None:
        await self._coalescer.close()

    async def _flush(self, meeting_id: uuid.UUID, polls: list[uuid.UUID], in_time: Callable[[], bool]) -> bool:
        rows = [row for poll_id in polls if (row := await service.fetch_poll(meeting_id, poll_id))]
        computed = await service.with_results(rows)
        if not in_time():
            return False
        await publish_events(
            self._broker, [event for row, results in computed for event in results_events(row, results)]
        )
        return True


class PollFrames:
    """The handlers of one process, with what they share: the results coalescer, the reaction tally, caches."""

    def __init__(self, services: Services, results: ResultsCoalescer, reactions: ReactionTally) -> None:
        self.services = services
        self.results = results
        self.reactions = reactions
        self.limiter = RateLimiter(services.redis)
        self.definitions: OrderedDict[uuid.UUID, PollDefinition] = OrderedDict()
        """Polls that were opened once: their kind and options never change again, so answers skip a read."""

    async def limit(self, kind: str, limit: int, window_s: int, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
        key = self.services.key("rl", kind, str(meeting_id), str(user_id))
        wait = await self.limiter.hit(key, limit, window_s)
        if wait:
            raise FrameError(ErrorCode.RATE_LIMITED, f"too many {kind}s; try again in {wait} s", retry_after_s=wait)

    async def definition(self, meeting_id: uuid.UUID, poll_id: uuid.UUID) -> PollDefinition:
        cached = self.definitions.get(poll_id)
        if cached is not None:
            return cached
        found, frozen = await service.load_definition(meeting_id, poll_id)
        if frozen:
            self.definitions[poll_id] = found
            if len(self.definitions) > DEFINITIONS_CACHED:
                self.definitions.popitem(last=False)
        return found

    async def poll_action(self, session: SessionView, frame: PollAction, grant: Grant) -> dict[str, Any]:
        """Owner, presenter: open, close or reset a poll; opening closes the meeting's other open poll."""
        access = access_of(grant)
        access.require_moderator()
        meeting_id = access.meeting_id
        poll_id = parse_id(frame.poll_id, "poll_id")
        async with service.in_order(self.services.db, meeting_id) as commit:
            changes = await service.act(meeting_id, poll_id, frame.action)
            await commit()
            await publish_changes(self.services.broker, changes)
        log.info("polls.action", extra={"meeting_id": str(meeting_id), "poll_id": str(poll_id), "action": frame.action})
        change = changes[-1]
        assert change.after is not None
        return {"poll": poll_view(change.after, change.results, moderator=True)}

    async def respond(self, session: SessionView, frame: Respond, grant: Grant) -> dict[str, Any]:
        """Anyone in the meeting: answer the open poll; a new answer replaces the old one while it is open."""
        meeting_id, principal = access_of(grant).meeting_id, principal_of(session)
        poll_id = parse_id(frame.poll_id, "poll_id")
        settings = self.services.settings
        await self.limit("answer", settings.vote_per_minute, 60, meeting_id, principal.user_id)
        answer = check_answer(await self.definition(meeting_id, poll_id), frame)
        await service.respond(meeting_id, poll_id, principal.user_id, answer)
        self.results.touch(meeting_id, poll_id)
        await self.services.broker.publish(
            PollResponseEvent(room=user_room(principal.user_id), poll_id=str(poll_id), response=answer)
        )
        return {"poll_id": str(poll_id), "response": answer}

    async def react(self, session: SessionView, frame: React, grant: Grant) -> dict[str, Any]:
        """Anyone in the meeting: a reaction, summed into the room's next `reactions` event; not stored."""
        meeting_id, principal = access_of(grant).meeting_id, principal_of(session)
        await self.limit("reaction", REACTIONS_PER_WINDOW, REACTIONS_WINDOW_S, meeting_id, principal.user_id)
        self.reactions.add(meeting_id, frame.reaction)
        return {"reaction": frame.reaction}

    async def close(self) -> None:
        await self.results.close()
        await self.reactions.close()


def build_router(frames: PollFrames) -> FrameRouter:
    """The polls router: one named handler per frame type."""
    router = FrameRouter()
    router.on(PollAction)(frames.poll_action)
    router.on(Respond)(frames.respond)
    router.on(React)(frames.react)
    return router


# --- the meeting room's snapshot -----------------------------------------------------------


async def polls_snapshot(services: Services, meeting_id: uuid.UUID, moderation: bool) -> list[PollOut]:
    """The polls that room may see, by position, with results as its audience may see them."""
    computed = await service.with_results(await service.list_polls(meeting_id, drafts=moderation))
    return views(computed, moderator=moderation)


async def mine_snapshot(services: Services, session: SessionView, meeting_id: uuid.UUID) -> dict[str, Any]:
    """The joiner's own upvotes and answers, so a reloaded page shows what it pressed."""
    user_id = principal_of(session).user_id
    votes = await qa_service.my_votes(services.db.pool, meeting_id, user_id)
    responses = await service.my_answers(meeting_id, user_id)
    return {"votes": votes, "responses": responses}
