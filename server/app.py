"""`create_app(settings)`: the one place that composes roomcast's features into a Litestar app.

The app's lifespan opens the database pool and the Redis client of this process and closes them
on the way out. Features contribute REST routers here; nothing else wires features together.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from saq import Queue

from channels.config import GatewayConfig
from channels.metrics import Metrics
from channels.plugin import GatewayPlugin
from channels.presence import PresenceTracker
from channels.rooms import UserRoomPolicy
from channels.seams import RoomPolicy
from server import openapi, ops
from server.accounts import routes as account_routes
from server.auth import revocation
from server.auth import routes as auth_routes
from server.calendar import routes as calendar_routes
from server.calendar.service import Calendar
from server.collector import tune_collector
from server.db import Database
from server.errors import EXCEPTION_HANDLERS
from server.meetings import routes as meeting_routes
from server.meetings.policy import MeetingRoomPolicy
from server.notifications import handlers as notification_handlers
from server.notifications import triggers
from server.notifications.service import unread_count
from server.outages import GuardedPolicy, guard_router
from server.polls import handlers as poll_handlers
from server.polls import routes as poll_routes
from server.polls.reactions import ReactionTally
from server.protocol import CLIENT_FRAMES, SERVER_FRAMES
from server.qa import handlers as qa_handlers
from server.qa import routes as qa_routes
from server.qa.votes import VoteCoalescer
from server.realtime import authenticator
from server.room_redis import RoomRedis, room_redis
from server.services import Services, redis_client
from server.settings import Settings, load_settings
from server.web import routes as web
from server.worker import create_worker, make_queue

log = logging.getLogger("roomcast.app")

MAX_BODY_BYTES = 1024 * 1024
"""Request bodies above 1 MiB are refused with 413 before they are read whole."""


def create_app(settings: Settings) -> Litestar:
    """Build the app for `settings`; nothing is connected until the lifespan starts."""
    redis = redis_client(settings.redis_url)
    metrics = Metrics()
    rooms = room_redis(settings, redis, metrics)
    shard_monitor = rooms.monitor()
    services = Services(
        settings=settings,
        db=Database(settings.database_url or "", min_size=0),
        redis=redis,
        broker=rooms.stream,
        metrics=metrics,
        room_shards=shard_monitor,
    )
    presence = PresenceTracker(
        services.redis,
        settings.redis_prefix,
        services.broker,
        ttl_s=settings.presence_ttl_s,
        redis_for=rooms.redis_for if rooms.sharded else None,
    )
    votes = VoteCoalescer(services.db, redis, services.broker, settings.redis_prefix, members=presence.count)
    jobs = make_queue(settings, redis)
    calendar = Calendar(services, jobs)
    polls = poll_handlers.PollFrames(
        services,
        poll_handlers.ResultsCoalescer(redis, services.broker, settings.redis_prefix),
        ReactionTally(redis, settings.redis_prefix, services.broker),
    )
    gateway = realtime_gateway(services, rooms, presence, votes, polls)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        await services.db.start()
        await rooms.register_layout()
        if shard_monitor is not None:
            await shard_monitor.start()
        worker = create_worker(settings, in_process=True, db=services.db) if settings.in_process_worker else None
        worker_task = asyncio.create_task(worker.start()) if worker else None
        log.info(
            "app.started",
            extra={"redis_prefix": settings.redis_prefix, "worker": bool(worker), "room_shards": len(rooms.shards)},
        )
        try:
            yield
        finally:
            if worker and worker_task:
                await worker.stop()
                worker_task.cancel()
            await votes.close()
            await polls.close()
            if shard_monitor is not None:
                await shard_monitor.stop()
            await rooms.close()
            await services.redis.aclose()
            await services.db.close()
            log.info("app.stopped")

    def provide_services() -> Services:
        return services

    def provide_calendar() -> Calendar:
        return calendar

    def provide_jobs() -> Queue:
        return jobs

    app = Litestar(
        route_handlers=[
            ops.router,
            web.router,
            auth_routes.router,
            account_routes.router,
            meeting_routes.router,
            qa_routes.router,
            poll_routes.router,
            calendar_routes.router,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "calendar": Provide(provide_calendar, sync_to_thread=False),
            "jobs": Provide(provide_jobs, sync_to_thread=False),
            # meetings reads a `source` event through calendar without importing it
            "calendar_events": Provide(lambda: calendar.read_source, sync_to_thread=False),
        },
        lifespan=[lifespan],
        plugins=[gateway],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_id_middleware, allow_header_middleware],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="roomcast",
            version="1",
            description="REST API for auth and meeting setup. Everything live goes over /ws.",
            path="/schema",
            render_plugins=[web.api_docs_plugin()],
        ),
        state=State({"services": services}),
        logging_config=None,  # roomcast configures logging itself (server.logs)
        debug=False,
    )
    openapi.tighten(app)
    return app


def realtime_gateway(
    services: Services,
    rooms: RoomRedis,
    presence: PresenceTracker,
    votes: VoteCoalescer,
    polls: poll_handlers.PollFrames,
) -> GatewayPlugin:
    """`/ws` composed from the features: room policies, frame routers (with `server.protocol`'s union)."""
    settings = services.settings
    policies: list[RoomPolicy] = [
        UserRoomPolicy(),
        MeetingRoomPolicy(
            services,
            presence_count=presence.count,
            questions_snapshot=functools.partial(qa_handlers.questions_snapshot, services),
            polls_snapshot=functools.partial(poll_handlers.polls_snapshot, services),
            mine=functools.partial(poll_handlers.mine_snapshot, services),
        ),
    ]
    routers = [
        qa_handlers.QaHandlers(
            services,
            votes,
            on_answered=triggers.question_answered,
            on_dismissed=triggers.question_dismissed,
        ).router(),
        poll_handlers.build_router(polls),
        notification_handlers.build_router(services),
    ]
    return GatewayPlugin(
        GatewayConfig(
            stream=rooms.stream,
            pubsub=rooms.pubsub(),
            authenticator=authenticator(services, unread=unread_count),
            credential_check=functools.partial(revocation.revoked_credentials, services),
            credential_check_s=settings.credential_check_s,
            policies=[GuardedPolicy(policy) for policy in policies],
            routers=[guard_router(router) for router in routers],
            client_frames=CLIENT_FRAMES,
            server_frames=SERVER_FRAMES,
            presence=presence,
            metrics=services.metrics,
            allowed_origins=settings.allowed_origins,
            heartbeat_s=settings.heartbeat_s,
            auth_timeout_s=settings.ws_auth_timeout_s,
            max_queue_bytes=settings.send_queue_bytes,
            write_delay_s=settings.write_delay_ms / 1000,
            max_sockets_per_address=settings.max_sockets_per_address,
            max_unauthenticated_per_address=settings.max_unauthenticated_per_address,
            public_url=settings.public_url,
        )
    )


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give every HTTP request an id (`X-Request-ID`), kept in scope state for error logs."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware


def allow_header_middleware(app: ASGIApp) -> ASGIApp:
    """Answer `OPTIONS` with every method of the path in `Allow`.

    Litestar builds a path's OPTIONS handler with the first route handler registered for it, so
    `OPTIONS /api/v1/meetings` listed only POST though GET works too; the route's full method set
    is known after routing (`scope["path_template"]`), so the header is rewritten from it.
    """
    methods_by_path: dict[str, str] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return
        if not methods_by_path:
            for route in scope["litestar_app"].routes:
                if isinstance(route, HTTPRoute):
                    methods_by_path[route.path_format] = ", ".join(sorted(route.methods))
        allow = methods_by_path.get(str(scope.get("path_template", "")))

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and allow is not None:
                headers = MutableScopeHeaders.from_message(message)
                if "allow" in headers:
                    headers["Allow"] = allow
            await send(message)

        await app(scope, receive, send_with_allow)

    return middleware


def serving_app(settings: Settings) -> ASGIApp:
    """What `roomcast serve` runs: the app, with `/ws` connections taken ahead of Litestar's middleware.

    Built once per serving process, which then tunes its garbage collector (`server.collector`).
    """
    app = create_app(settings)
    served = app.plugins.get(GatewayPlugin).front(app)
    tune_collector()
    return served


def app_from_environment() -> ASGIApp:
    """uvicorn's factory for worker processes: read Settings once from the environment."""
    from server.http_guard import HeaderTimeoutProtocol
    from server.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    HeaderTimeoutProtocol.configure(settings.http_header_timeout_s)  # this worker process's copy
    return serving_app(settings)


__all__ = ["app_from_environment", "create_app", "serving_app"]
