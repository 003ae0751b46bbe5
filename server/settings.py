"""The one typed Settings object, read from the environment (and an optional `.env`) once at start.

Every process builds its Settings exactly once, in `roomcast`'s command or the app factory, and
passes it down; nothing else reads the environment. A bad value raises `SettingsError` whose
message is the single line the CLI prints before exiting with code 2.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from collections.abc import Callable, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from dotenv import dotenv_values

from channels.shards import redact_url

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """A setting has a value roomcast cannot use; `str(err)` names the variable and the problem."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a roomcast process may be configured with (README.md)."""

    database_url: str | None = None
    """PostgreSQL URL; None starts an embedded PostgreSQL under `data_dir`."""
    redis_url: str | None = None
    """Redis URL; None starts an embedded Redis under `data_dir`."""
    data_dir: Path = Path(".roomcast")
    """Where embedded services keep their data and where a generated secret key is kept."""
    secret_key: str = ""
    """Signs access tokens, guest tokens and OAuth state; generated once into `data_dir` if unset."""
    previous_secret_keys: tuple[str, ...] = ()
    """Former secret keys, still accepted to decrypt stored calendar tokens while they are re-encrypted."""
    allowed_origins: tuple[str, ...] = ()
    """WebSocket handshakes from any other Origin are refused with 403; empty allows any."""
    redis_prefix: str = "roomcast"
    """Every Redis key and pub/sub channel starts with this, so deployments and tests can share a Redis."""
    room_redis_urls: tuple[str, ...] = ()
    """The room shards, in order: each room's stream, presence and fan-out channel live on one of them,
    chosen by jump consistent hash of its shard key (`channels.shards`). Empty: every room stays on
    `redis_url`, which always keeps the job queue, rate limits, caches and control messages. Every
    process must be given the same list in the same order."""
    ask_per_minute: int = 5
    """Questions one user may ask per minute in one meeting."""
    vote_per_minute: int = 60
    """Votes one user may cast per minute in one meeting."""
    join_per_minute: int = 600
    """`POST /meetings/join` calls per client address per minute (a venue often shares one address)."""
    register_per_hour: int = 1000
    """`POST /auth/register` calls per client address per hour: caps scripted sign-ups, yet generous,
    because an office or a venue (or a test suite) shares one address and the contract promises no limit."""
    public_url: str = "http://127.0.0.1:8000"
    """The server's public base URL, used for OAuth redirects and webhook addresses."""
    heartbeat_s: int = 25
    """Seconds between WebSocket pings; a peer that misses two is dropped."""
    presence_ttl_s: int = 15
    """Seconds a server's presence entries outlive it (after SIGKILL, counts drop within this time)."""
    access_token_ttl_s: int = 900
    """Lifetime of an access token."""
    refresh_token_ttl_s: int = 30 * 24 * 3600
    """Lifetime of a refresh token (each use rotates it)."""
    guest_token_ttl_s: int = 24 * 3600
    """Lifetime of a guest token."""
    credential_check_s: int = 30
    """How often each server process re-checks the credentials of its open sockets: the longest a
    socket outlives a revoked login or API key when the process missed the disconnect message."""
    send_queue_bytes: int = 4 * 1024 * 1024
    """Bytes a socket's send queue may hold (events, replies, snapshots) before it is closed with 4008."""
    write_delay_ms: int = 20
    """Write coalescing under load: a fan-out to many sockets within this many ms of the previous one waits
    for the rest of the window, so a member of a busy big room gets one write per window, not one per event.
    0 turns it off; an event after a quiet spell and small fan-outs are never held."""
    ws_auth_timeout_s: int = 10
    """A socket that has not authenticated by then is closed with 4408."""
    max_sockets_per_address: int = 20_000
    """Open WebSockets per client address; a venue's attendees often share one. More get HTTP 429."""
    max_unauthenticated_per_address: int = 1_000
    """WebSockets per client address that have not sent `auth` yet; more get HTTP 429."""
    log_level: str = "info"
    """Logging threshold: debug, info, warning or error."""
    reminder_lead_s: int = 600
    """How long before `starts_at` the `meeting.starting` notification goes out."""
    reminder_scan_s: int = 10
    """How often the worker looks for meetings about to start (the reminder's worst-case delay)."""
    notification_retention_days: int = 90
    """Notifications older than this are deleted by a daily job."""
    smtp_url: str | None = None
    """Where mail goes: `smtp://user:pass@host:port`, `smtps://` for implicit TLS, `?starttls=true` for
    STARTTLS. None: no mail is sent (`roomcast reset-link EMAIL` prints a reset link instead)."""
    mail_from: str = "roomcast@localhost"
    """The `From` of every mail roomcast sends (an address, optionally `Name <address>`)."""
    in_process_worker: bool = False
    """Run the SAQ worker inside each server process (set by `roomcast serve` with embedded services)."""
    job_sweep_s: int = 60
    """How often each job worker looks for jobs whose worker died (active past their timeout) and
    queues them again: the longest a killed worker's job waits, on top of its timeout."""
    exports_per_user: int = 2
    """CSV exports one user may have streaming at once (across every process); more are 429."""
    similar_per_minute: int = 30
    """`similar` frames one user may send per minute in one meeting (a client asks as its user types)."""
    presenter_adds_per_hour: int = 60
    """`POST /meetings/{id}/presenters` calls per user per hour: each one tells whether an email has an
    account, so this is how fast a caller can probe for accounts."""
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    """Client addresses (CIDR networks) that may read `/metrics` without a token; empty: none."""
    metrics_token: str | None = None
    """A bearer token that lets a scraper read `/metrics` from any address; unset: no token works."""
    forwarded_allow_ips: str | None = None
    """Addresses of the load balancers whose `X-Forwarded-For`/`-Proto` name the client (comma-separated,
    or `*` when only the balancer can reach the server); unset: the peer address is the client."""
    http_header_timeout_s: int = 10
    """Seconds a client may take to send a complete HTTP request head (also the keep-alive idle
    limit): a connection that sends half a request line and stops is closed after this."""
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_api_url: str = "https://www.googleapis.com/calendar/v3"
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_authority: str = "https://login.microsoftonline.com/common"
    microsoft_graph_url: str = "https://graph.microsoft.com/v1.0"

    @property
    def embedded(self) -> bool:
        """True when either service must be started by roomcast itself."""
        return self.database_url is None or self.redis_url is None


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty value")
    return value.strip()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected a positive integer") from None
    if number < 1:
        raise ValueError("expected a positive integer")
    return number


def _delay_ms(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("expected milliseconds from 0 to 1000") from None
    if not 0 <= number <= 1000:
        raise ValueError("expected milliseconds from 0 to 1000")
    return number


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in schemes or not (parts.netloc or parts.path or parts.query):
            raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value.strip()

    return parse


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if urlsplit(origin).scheme not in ("http", "https") or not urlsplit(origin).netloc:
            raise ValueError(f"expected comma-separated origins like https://example.com, got {origin!r}")
    return origins


def _keys(value: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in value.split(",") if key.strip())


def _prefix(value: str) -> str:
    value = value.strip()
    if not value or not all(c.isalnum() or c in "-_.:" for c in value):
        raise ValueError("expected letters, digits, '-', '_', '.' or ':'")
    return value


def _networks(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks; `none` for none."""
    if value.strip().lower() == "none":
        return ()
    networks = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"expected addresses or networks like 10.0.0.0/8, got {part!r}") from None
    return tuple(networks)


def _redis_urls(value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    if not urls:
        raise ValueError("expected comma-separated Redis URLs")
    seen: set[str] = set()
    for url in urls:
        try:
            _REDIS(url)
        except ValueError:
            shown = redact_url(url)
            raise ValueError(f"expected comma-separated redis://, rediss:// or unix:// URLs, got {shown!r}") from None
        if url in seen:
            raise ValueError(f"{redact_url(url)} is listed twice (each shard once, in a fixed order)")
        seen.add(url)
    return urls


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0")


def _smtp_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("expected smtp://user:pass@host:port or smtps://...")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError("expected a port number") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"starttls"} or any(v not in ("true", "false") for v in query.get("starttls", [])):
        raise ValueError("the only query parameter is starttls=true or starttls=false")
    if parts.scheme == "smtps" and query.get("starttls") == ["true"]:
        raise ValueError("smtps:// is already TLS; use smtp://...?starttls=true for STARTTLS")
    return value.strip()


def _mail_address(value: str) -> str:
    _, address = parseaddr(value.strip())
    if "@" not in address or any(c.isspace() for c in address):
        raise ValueError("expected an address like roomcast@example.com or Name <roomcast@example.com>")
    return value.strip()


def _log_level(value: str) -> str:
    if value.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("expected one of debug, info, warning, error")
    return value.lower()


_HTTP = _url("http", "https")
_REDIS = _url("redis", "rediss", "unix")

# field name -> (environment variable, parser)
_SOURCES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "database_url": ("DATABASE_URL", _url("postgres", "postgresql")),
    "redis_url": ("REDIS_URL", _REDIS),
    "data_dir": ("ROOMCAST_DATA_DIR", lambda v: Path(_text(v))),
    "secret_key": ("ROOMCAST_SECRET_KEY", _text),
    "previous_secret_keys": ("ROOMCAST_PREVIOUS_SECRET_KEYS", _keys),
    "allowed_origins": ("ROOMCAST_ALLOWED_ORIGINS", _origins),
    "redis_prefix": ("ROOMCAST_REDIS_PREFIX", _prefix),
    "room_redis_urls": ("ROOMCAST_ROOM_REDIS_URLS", _redis_urls),
    "ask_per_minute": ("ROOMCAST_ASK_PER_MINUTE", _positive_int),
    "vote_per_minute": ("ROOMCAST_VOTE_PER_MINUTE", _positive_int),
    "join_per_minute": ("ROOMCAST_JOIN_PER_MINUTE", _positive_int),
    "register_per_hour": ("ROOMCAST_REGISTER_PER_HOUR", _positive_int),
    "public_url": ("ROOMCAST_PUBLIC_URL", _HTTP),
    "heartbeat_s": ("ROOMCAST_HEARTBEAT_S", _positive_int),
    "presence_ttl_s": ("ROOMCAST_PRESENCE_TTL_S", _positive_int),
    "access_token_ttl_s": ("ROOMCAST_ACCESS_TOKEN_TTL_S", _positive_int),
    "refresh_token_ttl_s": ("ROOMCAST_REFRESH_TOKEN_TTL_S", _positive_int),
    "guest_token_ttl_s": ("ROOMCAST_GUEST_TOKEN_TTL_S", _positive_int),
    "credential_check_s": ("ROOMCAST_CREDENTIAL_CHECK_S", _positive_int),
    "send_queue_bytes": ("ROOMCAST_SEND_QUEUE_BYTES", _positive_int),
    "write_delay_ms": ("ROOMCAST_WRITE_DELAY_MS", _delay_ms),
    "ws_auth_timeout_s": ("ROOMCAST_WS_AUTH_TIMEOUT_S", _positive_int),
    "max_sockets_per_address": ("ROOMCAST_MAX_SOCKETS_PER_ADDRESS", _positive_int),
    "max_unauthenticated_per_address": ("ROOMCAST_MAX_UNAUTHENTICATED_PER_ADDRESS", _positive_int),
    "log_level": ("ROOMCAST_LOG_LEVEL", _log_level),
    "reminder_lead_s": ("ROOMCAST_REMINDER_LEAD_S", _positive_int),
    "reminder_scan_s": ("ROOMCAST_REMINDER_SCAN_S", _positive_int),
    "notification_retention_days": ("ROOMCAST_NOTIFICATION_RETENTION_DAYS", _positive_int),
    "smtp_url": ("ROOMCAST_SMTP_URL", _smtp_url),
    "mail_from": ("ROOMCAST_MAIL_FROM", _mail_address),
    "in_process_worker": ("ROOMCAST_IN_PROCESS_WORKER", _flag),
    "job_sweep_s": ("ROOMCAST_JOB_SWEEP_S", _positive_int),
    "exports_per_user": ("ROOMCAST_EXPORTS_PER_USER", _positive_int),
    "similar_per_minute": ("ROOMCAST_SIMILAR_PER_MINUTE", _positive_int),
    "presenter_adds_per_hour": ("ROOMCAST_PRESENTER_ADDS_PER_HOUR", _positive_int),
    "metrics_allow": ("ROOMCAST_METRICS_ALLOW", _networks),
    "metrics_token": ("ROOMCAST_METRICS_TOKEN", _text),
    "http_header_timeout_s": ("ROOMCAST_HTTP_HEADER_TIMEOUT_S", _positive_int),
    "forwarded_allow_ips": ("ROOMCAST_FORWARDED_ALLOW_IPS", _text),
    "google_client_id": ("ROOMCAST_GOOGLE_CLIENT_ID", _text),
    "google_client_secret": ("ROOMCAST_GOOGLE_CLIENT_SECRET", _text),
    "google_auth_url": ("ROOMCAST_GOOGLE_AUTH_URL", _HTTP),
    "google_token_url": ("ROOMCAST_GOOGLE_TOKEN_URL", _HTTP),
    "google_api_url": ("ROOMCAST_GOOGLE_API_URL", _HTTP),
    "microsoft_client_id": ("ROOMCAST_MICROSOFT_CLIENT_ID", _text),
    "microsoft_client_secret": ("ROOMCAST_MICROSOFT_CLIENT_SECRET", _text),
    "microsoft_authority": ("ROOMCAST_MICROSOFT_AUTHORITY", _HTTP),
    "microsoft_graph_url": ("ROOMCAST_MICROSOFT_GRAPH_URL", _HTTP),
}

ENV_NAMES: dict[str, str] = {field: env for field, (env, _) in _SOURCES.items()}
"""Setting field -> environment variable, for docs and for tests that build an environment."""


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Read every setting from `environ` (default `os.environ`), falling back to `env_file`.

    An empty variable counts as unset. When no secret key is given, one is generated on first
    start and kept in `<data_dir>/secret_key` (mode 0600), so tokens survive restarts.
    """
    source: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        source.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    source.update(os.environ if environ is None else environ)

    values: dict[str, Any] = {}
    for field, (env, parse) in _SOURCES.items():
        raw = source.get(env, "")
        if raw == "":
            continue
        try:
            values[field] = parse(raw)
        except ValueError as err:
            shown = ",".join(redact_url(part) for part in raw.split(",")) if "url" in field else raw  # no passwords
            raise SettingsError(f"{env}={shown}: {err}") from None
    settings = Settings(**values)
    if not settings.secret_key:
        settings = msgspec.structs.replace(settings, secret_key=_stored_secret(settings.data_dir))
    return settings


def _stored_secret(data_dir: Path) -> str:
    """The secret key kept in the data dir, created (0600) by whichever process gets there first."""
    path = data_dir / "secret_key"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may have created it an instant ago and be writing it
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise SettingsError(f"ROOMCAST_SECRET_KEY: {path} is empty; delete it or set the variable") from None
    except OSError as err:
        raise SettingsError(f"ROOMCAST_DATA_DIR={data_dir}: cannot write the secret key ({err.strerror})") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key
