"""`GatewayConfig`: everything the gateway is composed from; the application builds one at its composition root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from channels.backend import PubSub, Stream
from channels.flood import RateLimit
from channels.metrics import Metrics
from channels.presence import PresenceTracker
from channels.protocol import CORE_CLIENT_FRAMES, CORE_SERVER_FRAMES, ClientFrame, ServerFrame
from channels.seams import Authenticator, CredentialCheck, FrameRouter, RoomPolicy


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    stream: Stream
    """Seq, epoch, history and publishing (`channels.stream.RedisStream`, or `channels.memory`)."""
    pubsub: PubSub
    """This process's subscriptions (`channels.pubsub.RedisPubSub`, or `channels.memory`)."""
    authenticator: Authenticator
    credential_check: CredentialCheck | None = None
    """Asked every `credential_check_s` which open sockets' credentials were revoked meanwhile."""
    credential_check_s: float = 30.0
    """The longest a socket outlives its revoked credential if this process missed the disconnect."""
    policies: Sequence[RoomPolicy] = ()
    """Checked in order; the first whose `owns(room)` is true decides. Must own `user:<id>`."""
    routers: Sequence[FrameRouter] = ()
    client_frames: Sequence[type[ClientFrame]] = CORE_CLIENT_FRAMES
    """The whole client-frame union (core frames included); each non-core type needs one handler."""
    server_frames: Sequence[type[ServerFrame]] = CORE_SERVER_FRAMES
    """Every frame the server may send, events included: documented in the AsyncAPI document."""
    presence: PresenceTracker | None = None
    metrics: Metrics | None = None
    allowed_origins: Sequence[str] = ()
    """Browser handshakes from another `Origin` get HTTP 403; empty allows any (and no Origin is allowed)."""
    heartbeat_s: int = 25
    """Announced in `welcome`; the server (uvicorn) must be configured to ping at this interval."""
    auth_timeout_s: float = 10.0
    """A socket that has not sent a valid `auth` by then is closed with 4408."""
    max_queue_bytes: int = 4 * 1024 * 1024
    """Bytes waiting for one socket; one more closes it with 4008."""
    max_sockets_per_address: int = 20_000
    """Open sockets per client address (a venue's attendees often share one); more get HTTP 429."""
    max_unauthenticated_per_address: int = 1_000
    """Sockets per client address that have not authenticated yet; more get HTTP 429."""
    write_delay_s: float = 0.0
    """Write coalescing under load (`channels.transport.WriteBatch`): a large flush within this long of the
    previous one waits for the rest of it, so members of a busy big room get one write per window. 0: off."""
    close_timeout_s: float = 10.0
    """How long a close may wait behind a stalled socket before the connection is dropped."""
    rate_limit: RateLimit = field(default_factory=RateLimit)
    path: str = "/ws"
    asyncapi_path: str | None = "/asyncapi.json"
    title: str = "roomcast"
    version: str = "1"
    public_url: str = "http://127.0.0.1:8000"
