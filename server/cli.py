"""The `roomcast` command: serve, worker, migrate, seed.

Settings are read once here; a bad value prints one line naming the variable and exits with 2.
When `DATABASE_URL` or `REDIS_URL` is unset, the missing service is started embedded under the
data directory for the life of the command and the URLs are handed to the app like any others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

import click
import msgspec

from server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("roomcast.cli")


def _load() -> Settings:
    from server.logs import configure_logging

    try:
        settings = load_settings()
    except SettingsError as err:
        click.echo(f"roomcast: {err}", err=True)
        sys.exit(2)
    configure_logging(settings.log_level)
    return settings


@contextlib.contextmanager
def _services(settings: Settings) -> Iterator[Settings]:
    """Yield settings whose URLs point at running services, starting embedded ones as needed."""
    if not settings.embedded:
        yield settings
        return
    from server.embedded import EmbeddedServices

    embedded = EmbeddedServices(settings.data_dir)
    try:
        database_url = settings.database_url or embedded.start_postgres()
        redis_url = settings.redis_url or embedded.start_redis()
        yield msgspec.structs.replace(settings, database_url=database_url, redis_url=redis_url)
    finally:
        embedded.stop()


def _export(settings: Settings) -> None:
    """Hand resolved settings to child processes (uvicorn workers) through their environment."""
    os.environ["DATABASE_URL"] = settings.database_url or ""
    os.environ["REDIS_URL"] = settings.redis_url or ""
    os.environ["ROOMCAST_SECRET_KEY"] = settings.secret_key
    os.environ["ROOMCAST_IN_PROCESS_WORKER"] = "1" if settings.in_process_worker else "0"


def _exit_cleanly_on_signals() -> None:
    """Turn SIGTERM/SIGINT into SystemExit(0) once uvicorn has shut down.

    uvicorn captures both during serving, shuts down gracefully, restores the previous handlers
    and then re-raises the signal; with these handlers in place the re-raise unwinds the stack,
    so the embedded services are stopped in `_services`' finally block instead of being orphaned.
    """

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """roomcast: a real-time collaboration server for live meetings.

    Settings come from the environment and an optional .env file (see the README).
    With DATABASE_URL / REDIS_URL unset, embedded PostgreSQL and Redis are started under
    ROOMCAST_DATA_DIR (default ./.roomcast).
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes.")
@click.option("--no-migrate", is_flag=True, help="Do not apply pending migrations before serving.")
@click.option(
    "--ws",
    "ws_impl",
    type=click.Choice(["websockets-sansio", "wsproto", "websockets"]),
    default="websockets-sansio",
    show_default=True,
    help="uvicorn's WebSocket implementation; the default is the fastest and the only one written to directly.",
)
@click.option(
    "--backlog",
    default=8192,
    show_default=True,
    type=click.IntRange(64, 1 << 16),
    help="Connections waiting to be accepted (the kernel caps it at net.core.somaxconn).",
)
def serve(host: str, port: int, workers: int, no_migrate: bool, ws_impl: str, backlog: int) -> None:
    """Run the HTTP and WebSocket server (and, with embedded services, an in-process job worker)."""
    import uvicorn

    from server.app import serving_app
    from server.db import migrate
    from server.http_guard import HeaderTimeoutProtocol

    settings = _load()
    run_worker = settings.embedded
    _exit_cleanly_on_signals()
    with _services(settings) as ready:
        if not no_migrate:
            asyncio.run(migrate(ready.database_url or ""))
        options = {
            "host": host,
            "port": port,
            # sansio: the maintained implementation; it closes frames over ws_max_size with 1009, writes
            # close 1012 to every socket on shutdown, and drops a peer whose pong is ws_ping_timeout late,
            # so a silent peer is gone within two heartbeats. ASGI apps cannot send pings themselves.
            "ws": ws_impl,
            # a crashed peer process sends its clients here all at once: with uvicorn's 2048 the accept
            # queue overflowed and the kernel dropped handshakes, which clients retry only after 1, 3, 7 s
            "backlog": backlog,
            "ws_max_size": 64 * 1024,
            "ws_ping_interval": float(ready.heartbeat_s),
            "ws_ping_timeout": float(ready.heartbeat_s),
            "ws_per_message_deflate": False,  # would compress each fan-out frame once per socket
            "lifespan": "on",
            "log_config": None,
            "timeout_graceful_shutdown": 8,
            # behind a load balancer its X-Forwarded-For names the client of per-address limits
            "proxy_headers": ready.forwarded_allow_ips is not None,
            "forwarded_allow_ips": ready.forwarded_allow_ips,
            # a request head must be complete within ROOMCAST_HTTP_HEADER_TIMEOUT_S (uvicorn has no
            # such deadline: half-sent heads were held forever)
            "http": HeaderTimeoutProtocol,
        }
        HeaderTimeoutProtocol.configure(ready.http_header_timeout_s)
        ready = msgspec.structs.replace(ready, in_process_worker=ready.in_process_worker or run_worker)
        if workers == 1:
            uvicorn.run(serving_app(ready), **options)  # type: ignore[arg-type]
        else:
            _export(ready)
            uvicorn.run("server.app:app_from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]


@cli.command()
def worker() -> None:
    """Run the SAQ worker for calendar sync and scheduled jobs (needs DATABASE_URL and REDIS_URL)."""
    from server.worker import create_worker

    settings = _load()
    if settings.embedded:
        click.echo(
            "roomcast: worker needs DATABASE_URL and REDIS_URL; with embedded services "
            "`roomcast serve` runs the worker in-process",
            err=True,
        )
        sys.exit(2)
    asyncio.run(create_worker(settings).start())


@cli.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations (under a PostgreSQL advisory lock) and exit."""
    from server.db import migrate

    settings = _load()
    with _services(settings) as ready:
        applied = asyncio.run(migrate(ready.database_url or ""))
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@cli.command()
@click.option("--host", default=None, help="Host `roomcast serve` listens on, for the printed links.")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port `roomcast serve` listens on.")
def seed(host: str | None, port: int | None) -> None:
    """Create a demo owner, a live meeting and a few questions; print the join code, login and links.

    The links use --host/--port when given (the same values as `roomcast serve`), else
    ROOMCAST_PUBLIC_URL (default http://127.0.0.1:8000).
    """
    from server.db import migrate
    from server.seed import links_base, seed_demo

    settings = _load()
    base = links_base(settings.public_url, host, port)
    with _services(settings) as ready:
        asyncio.run(migrate(ready.database_url or ""))
        summary = asyncio.run(seed_demo(ready, base))
    click.echo(summary)


@cli.command("reset-link")
@click.argument("email")
def reset_link(email: str) -> None:
    """Print a one-time password-reset link for the account with EMAIL (valid 30 minutes), for operators."""
    from server.accounts.resets import operator_link_for
    from server.db import migrate
    from server.errors import ApiError

    settings = _load()
    with _services(settings) as ready:
        asyncio.run(migrate(ready.database_url or ""))
        try:
            link = asyncio.run(operator_link_for(ready, email))
        except ApiError as err:
            click.echo(f"roomcast: {err.message}", err=True)
            sys.exit(2)
    if link is None:
        click.echo(f"roomcast: no account with the email {email}", err=True)
        sys.exit(1)
    click.echo(link)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
