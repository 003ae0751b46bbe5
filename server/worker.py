"""The SAQ worker: job functions, cron jobs, and the startup/shutdown that open its resources.

`roomcast worker` runs it as its own process; with embedded services `roomcast serve` runs it
inside the web process, where it must not install signal handlers (SAQ's `Worker.start()`
would replace uvicorn's and SIGTERM would no longer close sockets with 1012).
Jobs are `async def name(ctx, *, ...)`; SAQ's defaults are a 10 s timeout and `retries=1`
(a single attempt), so every job and cron job here sets both. Job outcomes are counted in
Redis (`<prefix>:jobs:stats`) for `/metrics`, and a job that fails for good is logged with its id.

Jobs read and write rows through the Piccolo tables, which run on the one engine a process has bound
(`Database.start()`): a worker process opens its own `Database`; the in-process worker is handed the
web app's, because a second one started in the same process would take the tables over from the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from saq import CronJob, Worker
from saq.job import Status
from saq.types import PartialTimersDict

from channels.metrics import Metrics
from server.accounts.jobs import send_password_reset
from server.auth.tables import RefreshToken
from server.calendar.jobs import SCAN_S, calendar_renew, calendar_scan, calendar_sync
from server.db import Database
from server.jobs import Context, JobQueue, make_queue, queue_name
from server.notifications.jobs import purge_old_notifications, scan_meeting_reminders, send_meeting_reminder
from server.room_redis import room_redis
from server.services import Services, redis_client
from server.settings import Settings

__all__ = ["Context", "JobQueue", "create_worker", "make_queue", "queue_name"]

log = logging.getLogger("roomcast.worker")


async def purge_expired_refresh_tokens(ctx: Context) -> int:
    """Delete refresh tokens that expired more than a day ago (they can no longer be presented)."""
    cutoff = datetime.now(UTC) - timedelta(days=1)
    # hand SQL: counted inside PostgreSQL; Piccolo's `returning` would bring every deleted id to Python
    [row] = await RefreshToken.raw(
        "WITH gone AS (DELETE FROM refresh_tokens WHERE expires_at < {} RETURNING 1)"
        " SELECT count(*) AS deleted FROM gone",
        cutoff,
    )
    deleted = int(row["deleted"])
    log.info("job.purge_refresh_tokens", extra={"deleted": deleted})
    return deleted


STOP_GRACE_S = 5.0
"""How long a stopping worker lets jobs that are running finish before they are cancelled."""


class RoomcastWorker(Worker[Context]):
    """SAQ's worker with a quiet clean stop.

    SAQ's `stop()` waits for every task it holds, its own idle dequeue and upkeep loops included,
    with a grace period of 0 s, so every stop, even with no job running, logged the WARNING "Some
    tasks did not finish within the shutdown grace period". Here running jobs get STOP_GRACE_S to
    finish, then the remaining tasks (idle loops, or jobs that overran: those are warned about)
    are cancelled before SAQ's own stop runs with nothing left to wait for.
    """

    async def stop(self) -> None:
        self.event.set()
        deadline = time.monotonic() + STOP_GRACE_S
        # SAQ drops a job's entry once its outcome is recorded; it offers nothing to wait on
        while self.job_task_contexts and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.job_task_contexts:
            log.warning(
                "worker.jobs_cancelled_at_stop", extra={"jobs": len(self.job_task_contexts), "grace_s": STOP_GRACE_S}
            )
        tasks = list(self.tasks)
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().stop()


class InProcessWorker(RoomcastWorker):
    """A worker that leaves signal handling to the web server it runs inside."""

    SIGNALS: list[Any] = []


def create_worker(settings: Settings, *, in_process: bool = False, db: Database | None = None) -> Worker[Context]:
    """The SAQ worker for `settings`. `db`: the web app's database, started and closed by the app (in-process
    workers share it, so Piccolo's tables stay bound to the app's engine); None opens the worker's own."""
    redis = redis_client(settings.redis_url)
    rooms = room_redis(settings, redis, Metrics())
    own_db = db is None
    services = Services(
        settings=settings,
        db=Database(settings.database_url or "", min_size=0, max_size=5) if db is None else db,
        redis=redis,
        broker=rooms.stream,
    )
    stats_key = services.key("jobs", "stats")

    async def startup(ctx: Context) -> None:
        if own_db:
            await services.db.start()
        await rooms.register_layout()
        ctx["services"] = services
        log.info("worker.started", extra={"queue": queue_name(settings)})

    async def shutdown(ctx: Context) -> None:
        if own_db:
            await services.db.close()
        await rooms.close()
        await redis.aclose()
        log.info("worker.stopped")

    async def after_process(ctx: Context) -> None:
        job = ctx.get("job")
        if job is None:
            return
        outcome = job.status.value if isinstance(job.status, Status) else str(job.status)
        if job.status == Status.QUEUED:  # going to be retried
            outcome = "retried"
        await redis.hincrby(stats_key, f"{job.function}:{outcome}", 1)  # type: ignore[misc]
        if job.status == Status.FAILED:
            log.error(
                "job.failed",
                extra={
                    "job_id": job.id,
                    "function": job.function,
                    "attempts": job.attempts,
                    "error": (job.error or "")[-300:],
                },
            )

    worker_class: type[Worker[Context]] = InProcessWorker if in_process else RoomcastWorker
    scan_every = settings.reminder_scan_s
    return worker_class(
        make_queue(settings, redis),
        functions=[
            purge_expired_refresh_tokens,
            scan_meeting_reminders,
            send_meeting_reminder,
            purge_old_notifications,
            send_password_reset,
            calendar_sync,
            calendar_renew,
            calendar_scan,
        ],
        cron_jobs=[
            CronJob(calendar_scan, cron=f"* * * * * */{SCAN_S}", timeout=60, retries=2),
            CronJob(scan_meeting_reminders, cron=f"* * * * * */{scan_every}", timeout=60, retries=3),
            CronJob(purge_expired_refresh_tokens, cron="17 3 * * *", timeout=300, retries=3),
            CronJob(purge_old_notifications, cron="23 3 * * *", timeout=300, retries=3),
        ],
        startup=startup,
        shutdown=shutdown,
        after_process=after_process,
        concurrency=10,
        # a SIGKILLed worker's job stays "active"; the sweep queues it again once past its timeout
        timers=cast(PartialTimersDict, {"sweep": settings.job_sweep_s}),  # SAQ's TypedDict wants every key
    )
