"""Credentials end their sockets: what a feature calls after it revokes a login, an API key or a guest.

Every WebSocket remembers the credential it was opened with (`Identity.credential`, named by
`credential_of` here): a login (refresh-token family: its access tokens carry the family), an
API key, or a guest token. A feature that makes one of them invalid commits that first and then
calls one of the functions below; the sockets opened with it close with 4401 on every server
process, and the reference client refreshes its token (if it still can) and recovers with
`since`.

How long a revoked credential's socket may live (docs/protocol.md, "Credentials end their
sockets"): under a second normally (a disconnect message over Redis pub/sub); at most
`Settings.credential_check_s` (30 s) if a process missed that message, because each process
asks `revoked_credentials` about all its sockets that often. A token's own expiry closes its
socket at the `exp` instant, without any message.

These functions never raise: the revocation is already stored, and the periodic check closes
the sockets if the message cannot be sent (the failure is logged with its ids).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Sequence

from piccolo.querystring import QueryString

from channels.protocol import CloseCode
from channels.seams import Identity
from server.auth.identity import Principal
from server.auth.tables import ApiKey, RefreshToken, User
from server.auth.tokens import Claims
from server.services import Services

log = logging.getLogger("roomcast.auth")

LOGIN = "login"
API_KEY = "api_key"
GUEST = "guest"


def login_credential(family_id: uuid.UUID | str) -> str:
    """The credential name of a login: every access token of that refresh-token family."""
    return f"{LOGIN}:{family_id}"


def api_key_credential(key_id: uuid.UUID | str) -> str:
    return f"{API_KEY}:{key_id}"


def guest_credential(user_id: uuid.UUID | str) -> str:
    """A guest has exactly one credential, its guest token (a guest user is made per join)."""
    return f"{GUEST}:{user_id}"


def credential_of(principal: Principal, claims: Claims | None) -> str:
    """The credential a socket authenticated with `principal` (and these token claims) was opened with.

    An access token issued without a family (only tests make those) names no credential: only
    user-wide disconnects reach its sockets.
    """
    if principal.api_key_id is not None:
        return api_key_credential(principal.api_key_id)
    if principal.guest:
        return guest_credential(principal.user_id)
    if claims is not None and claims.fam is not None:
        return login_credential(claims.fam)
    return ""


async def end_login_sockets(
    services: Services,
    *,
    user_id: uuid.UUID | str,
    family_ids: Iterable[uuid.UUID | str] | None = None,
    except_family: uuid.UUID | str | None = None,
) -> None:
    """Close (4401) the user's sockets opened with a login that was just revoked; never raises.

    - `family_ids`: the revoked logins (refresh-token families): logout, refresh-token reuse,
      `DELETE /me/sessions/{id}`.
    - `family_ids=None`: every socket of the user, whatever it was opened with (API keys too):
      account deletion; with `except_family`, every socket except those of that login (a
      password change or reset keeps the caller's own login).

    Call it after the revocation is committed.
    """
    credentials = None if family_ids is None else [login_credential(f) for f in family_ids]
    if credentials is not None and not credentials:
        return
    spared = [] if except_family is None else [login_credential(except_family)]
    await _disconnect(services, str(user_id), credentials, spared, "login ended")


async def end_api_key_sockets(
    services: Services, *, user_id: uuid.UUID | str, api_key_ids: Iterable[uuid.UUID | str]
) -> None:
    """Close (4401) the sockets opened with these API keys (just deleted); never raises."""
    credentials = [api_key_credential(k) for k in api_key_ids]
    if credentials:
        await _disconnect(services, str(user_id), credentials, [], "API key revoked")


async def _disconnect(
    services: Services, user_id: str, credentials: list[str] | None, spared: list[str], reason: str
) -> None:
    try:
        await services.broker.disconnect_user(
            user_id,
            None,
            CloseCode.UNAUTHENTICATED,
            credentials=credentials,
            except_credentials=spared,
            reason=reason,
        )
    except Exception:
        log.warning(
            "auth.sockets_not_ended",
            exc_info=True,
            extra={"user_id": user_id, "credentials": len(credentials) if credentials is not None else "all"},
        )


async def revoked_credentials(services: Services, identities: Sequence[Identity]) -> Collection[str]:
    """Which of these sockets' credentials no longer stand for anyone (the gateway's periodic check).

    A login whose family was revoked, an API key that was deleted, a user (guest or not) who was
    deleted: one query each for the whole process, whatever the number of sockets.
    """
    families: set[uuid.UUID] = set()
    keys: set[uuid.UUID] = set()
    users: set[uuid.UUID] = set()
    for identity in identities:
        kind, _, value = identity.credential.partition(":")
        try:
            parsed = uuid.UUID(value)
            users.add(uuid.UUID(identity.user_id))
        except ValueError:
            continue
        if kind == LOGIN:
            families.add(parsed)
        elif kind == API_KEY:
            keys.add(parsed)
    if not users:
        return set()
    revoked_families = await (
        RefreshToken.select(RefreshToken.family_id)
        .where(RefreshToken.family_id.is_in(_any_of(families)), RefreshToken.revoked_at.is_not_null())
        .distinct()
        .output(as_list=True)
    )
    live_keys = await ApiKey.select(ApiKey.id).where(ApiKey.id.is_in(_any_of(keys))).output(as_list=True)
    live_users = await User.select(User.id).where(User.id.is_in(_any_of(users))).output(as_list=True)
    revoked = {login_credential(f) for f in revoked_families}
    revoked |= {api_key_credential(k) for k in keys - set(live_keys)}
    gone = {str(u) for u in users - set(live_users)}
    revoked |= {i.credential for i in identities if i.user_id in gone and i.credential}
    return revoked


def _any_of(ids: set[uuid.UUID]) -> QueryString:
    """The ids as one array parameter, for `is_in`: the one SQL fragment here.

    Piccolo's `is_in(list)` binds a parameter per id; PostgreSQL takes at most 32,767, and
    40,000 sockets' ids cost 0.7 s of CPU and 3.7 s in batches that way, 0.03 s and 0.3 s as an array.
    """
    return QueryString("SELECT unnest({}::uuid[])", list(ids))
