"""A job worker SIGKILLed in the middle of a job: the job runs again elsewhere and its effect happens once.

The job is a "meeting starting" reminder to a meeting of 800 people (long enough to be killed
half way). Another worker's sweep finds the dead worker's job active past its timeout, queues it
again, and the retry skips everyone already told (each notification carries a dedupe key).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis

from server.settings import Settings
from server.times import iso_z
from server.worker import make_queue
from tests.support import ServiceUrls, running_workers
from tests.wsclient import World

PEOPLE = 800


async def _count(connection: asyncpg.Connection, meeting_id: str) -> int:
    return int(
        await connection.fetchval(
            "SELECT count(*) FROM notifications WHERE kind = 'meeting.starting' AND data->>'meeting_id' = $1",
            meeting_id,
        )
    )


async def test_a_killed_workers_job_runs_again_and_its_effect_happens_once(
    server_env: dict[str, str], database_url: str, settings: Settings, services: ServiceUrls
) -> None:
    world = World(database_url, settings)
    owner = await world.user("Olive")
    meeting_id = await world.meeting(owner, title="Big reminder", status="scheduled")
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)  # past the scan's lead time
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE meetings SET starts_at = $2 WHERE id = $1", uuid.UUID(meeting_id), starts_at)
        await connection.execute(
            """WITH people AS (
                   INSERT INTO users (id, email, display_name)
                   SELECT gen_random_uuid(), 'p' || n || '-' || $2 || '@example.com', 'P' || n
                   FROM generate_series(1, $3) AS n RETURNING id)
               INSERT INTO meeting_members (id, meeting, "user", role)
               SELECT gen_random_uuid(), $1, id, 'participant' FROM people""",
            uuid.UUID(meeting_id), uuid.uuid4().hex[:8], PEOPLE,
        )  # fmt: skip
        redis = aioredis.Redis.from_url(services.redis_url)
        try:
            await make_queue(settings, redis).enqueue(
                "send_meeting_reminder",
                key=f"reminder:{meeting_id}:{iso_z(starts_at)}",
                meeting_id=meeting_id,
                starts_at=iso_z(starts_at),
                timeout=15,
                retries=10,
            )
        finally:
            await redis.aclose()

        env = {**server_env, "ROOMCAST_JOB_SWEEP_S": "1"}
        with running_workers(env, 1) as (doomed,):
            deadline = time.monotonic() + 60
            while await _count(connection, meeting_id) < 50:
                assert time.monotonic() < deadline, "the job never started"
                await asyncio.sleep(0.05)
            doomed.kill()  # SIGKILL: no shutdown, the job stays "active" in Redis
            doomed.wait()
            at_kill = await _count(connection, meeting_id)
            assert at_kill < PEOPLE + 1, "the job finished before the kill; make it longer"

        with running_workers(env, 1):
            started = time.monotonic()
            while await _count(connection, meeting_id) < PEOPLE + 1:
                assert time.monotonic() - started < 150, await _count(connection, meeting_id)
                await asyncio.sleep(0.2)
            recovery_s = time.monotonic() - started
            await asyncio.sleep(2)  # a duplicate would show up now
            duplicates = await connection.fetchval(
                """SELECT count(*) FROM (SELECT "user" FROM notifications
                   WHERE kind = 'meeting.starting' AND data->>'meeting_id' = $1
                   GROUP BY "user" HAVING count(*) > 1) AS d""",
                meeting_id,
            )
            assert duplicates == 0
            assert await _count(connection, meeting_id) == PEOPLE + 1  # everyone, owner included, once
        print(f"worker killed after {at_kill} of {PEOPLE + 1} reminders; finished {recovery_s:.1f} s later, 0 twice")
    finally:
        await connection.close()
