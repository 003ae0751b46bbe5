"""Calendar connections and the events we hold of them (schema in migrations/roomcast_0030_calendar.py)."""

from __future__ import annotations

from piccolo.columns import UUID, Boolean, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User


class CalendarConnection(Table, tablename="calendar_connections"):
    """One user's link to one provider account; tokens are encrypted (server.calendar.crypto)."""

    id = UUID(primary_key=True, default=UUID4())
    user = ForeignKey(references=User, null=False)
    provider = Varchar(length=16)
    """`google` or `outlook`."""
    account_email = Varchar(length=320, default="")
    status = Varchar(length=16, default="active")
    """`active`, `syncing` or `error` (then `error` says why)."""
    error = Text(null=True, default=None)
    revoked = Boolean(default=False)
    """The provider refused the refresh token: nothing retries until the user connects again."""
    tokens = Text()
    """The provider's tokens (Google's, or msal's serialised cache), Fernet-encrypted."""
    sync_cursor = Text(null=True, default=None)
    """Google's `nextSyncToken` or Graph's `@odata.deltaLink`; None: the next sync is a full one."""
    channel_id = Varchar(length=200, null=True, default=None, unique=True)
    """Google's push channel id or Graph's subscription id."""
    channel_resource_id = Text(null=True, default=None)
    """Google's `resourceId` (needed to stop the channel)."""
    channel_expires_at = Timestamptz(null=True, default=None)
    """The expiry the provider returned; renewed well before."""
    channel_created_at = Timestamptz(null=True, default=None)
    last_synced_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class CalendarEvent(Table, tablename="calendar_events"):
    """What we last saw of one event (an occurrence, for recurring series): the base of every diff."""

    id = UUID(primary_key=True, default=UUID4())
    connection = ForeignKey(references=CalendarConnection, null=False)
    event_id = Varchar(length=1024)
    title = Text(default="")
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None)
    cancelled = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow())
