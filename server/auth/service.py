"""Accounts, sessions and API keys: the rules behind the auth endpoints.

Sessions: each login (or registration) starts a refresh-token *family*. `refresh` spends the
presented token and issues the next one of the same family; presenting a spent token again
means it leaked (or a client raced itself), so the whole family is revoked -- its refresh
tokens and, through the `fam` claim checked in `server.auth.identity`, its access tokens.
Logout spends the token and revokes its family the same way, ending that login everywhere.

Every input here is untrusted: it arrives from `server.auth.routes` after a strict schema check
but before the rules below (email shape, password length, trimmed names).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from server import cache
from server.auth import limits, revocation
from server.auth.identity import API_KEY_PREFIX
from server.auth.passwords import hash_password, needs_rehash, verify_password
from server.auth.schemas import ApiKey, ApiKeyCreated, LoginIn, RegisterIn, Session, User
from server.auth.tables import ApiKey as ApiKeyTable
from server.auth.tables import RefreshToken
from server.auth.tables import User as UserTable
from server.auth.tokens import issue_access_token, new_secret, secret_hash
from server.errors import conflict, not_found, unauthorized
from server.rest import EMAIL, clean_text, invalid
from server.services import Services

log = logging.getLogger("roomcast.auth")

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
"""Longer passwords are refused (422): argon2 would take them, but nobody types 1 KiB."""
MAX_EMAIL = 320
MAX_DISPLAY_NAME = 80
MAX_KEY_NAME = 100
MAX_USER_AGENT = 300

_EMAIL = re.compile(EMAIL)

USER_FIELDS = (UserTable.id, UserTable.email, UserTable.display_name, UserTable.created_at)
"""The columns of `users` that `user_of` reads."""


def normalise_email(raw: str) -> str:
    """The stored form of an email (trimmed, lower case); 422 if it is not shaped like an address."""
    if len(raw) > MAX_EMAIL or not _EMAIL.search(raw):  # the rule OpenAPI states for the raw field
        raise invalid("email", "email is not a valid address")
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL:  # a few characters grow when lower-cased ("İ" -> "i̇")
        raise invalid("email", "email is too long")
    return email


def display_name(raw: str) -> str:
    return clean_text(raw, "display_name", max_length=MAX_DISPLAY_NAME)


def check_password_rule(password: str, field: str) -> None:
    """422 naming `field` unless `password` is 8..1024 characters: the one rule for every new password."""
    if len(password) < MIN_PASSWORD:
        raise invalid(field, f"{field} must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise invalid(field, f"{field} must be at most {MAX_PASSWORD} characters")


def user_of(row: Mapping[str, Any]) -> User:
    """The documented `User` of a `users` row selected with (at least) `USER_FIELDS`."""
    return User(id=row["id"], email=row["email"], display_name=row["display_name"], created_at=row["created_at"])


async def register(services: Services, body: RegisterIn, user_agent: str | None = None) -> Session:
    """A new account and its first login; 409 if the email is taken (also when two race for it)."""
    email = normalise_email(body.email)
    check_password_rule(body.password, "password")
    name = display_name(body.display_name)
    if await UserTable.exists().where(UserTable.email == email):
        raise conflict("an account with this email already exists")
    password_hash = await hash_password(body.password)
    async with services.db.transaction():
        try:
            [row] = await UserTable.insert(
                UserTable(email=email, password_hash=password_hash, display_name=name)
            ).returning(*USER_FIELDS)
        except asyncpg.UniqueViolationError:
            raise conflict("an account with this email already exists") from None
        session = await start_session(services, row, user_agent=user_agent)
    log.info("auth.registered", extra={"user_id": str(row["id"])})
    return session


async def login(services: Services, body: LoginIn, address: str, user_agent: str | None = None) -> Session:
    """A new login. Unknown emails cost the same argon2 time as wrong passwords (no enumeration)."""
    email = body.email.strip().lower()
    await limits.reserve_login(services, email, address)
    row = None
    if _EMAIL.search(email):  # no account has another shape (and PostgreSQL refuses a NUL in text)
        row = await (
            UserTable.select(*USER_FIELDS, UserTable.password_hash)
            .where((UserTable.email == email) & UserTable.guest_meeting_id.is_null())
            .first()
        )
    stored = row["password_hash"] if row is not None else None
    if not await verify_password(stored, body.password) or row is None:
        log.info("auth.login_failed", extra={"user_id": str(row["id"]) if row else None, "client": address})
        raise unauthorized("wrong email or password")
    await limits.login_succeeded(services, email, address)
    rehashed = await hash_password(body.password) if needs_rehash(stored or "") else None  # before the transaction
    async with services.db.transaction():
        if rehashed is not None:
            await UserTable.update({UserTable.password_hash: rehashed}).where(UserTable.id == row["id"])
            log.info("auth.password_rehashed", extra={"user_id": str(row["id"])})
        session = await start_session(services, row, user_agent=user_agent)
    log.info("auth.login", extra={"user_id": str(row["id"]), "client": address})
    return session


async def start_session(
    services: Services,
    user: Mapping[str, Any],
    family_id: uuid.UUID | None = None,
    *,
    user_agent: str | None = None,
) -> Session:
    """Issue an access token and a refresh token (a new family unless `family_id`) for a `users` row.

    Called inside the caller's `services.db.transaction()`: the refresh token is stored in it.
    `user_agent` (the client's `User-Agent`, cut to 300 characters) is what `GET /me/sessions` shows.
    """
    family_id = family_id or uuid.uuid4()
    refresh_token = new_secret()
    await RefreshToken.insert(
        RefreshToken(
            user=user["id"],
            family_id=family_id,
            token_hash=secret_hash(refresh_token),
            expires_at=datetime.now(UTC) + timedelta(seconds=services.settings.refresh_token_ttl_s),
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        )
    )
    settings = services.settings
    return Session(
        user=user_of(user),
        access_token=issue_access_token(settings, user["id"], family_id),
        refresh_token=refresh_token,
        token_type="bearer",
        expires_in=settings.access_token_ttl_s,
    )


async def refresh(services: Services, token: str) -> Session:
    """Spend `token` and return the next session of its family; a spent token revokes the family (401)."""
    outcome = "ok"
    session: Session | None = None
    async with services.db.transaction():
        row = await (
            RefreshToken.select(
                RefreshToken.id,
                RefreshToken.user,
                RefreshToken.family_id,
                RefreshToken.expires_at,
                RefreshToken.spent_at,
                RefreshToken.revoked_at,
                RefreshToken.user_agent,
            )
            .where(RefreshToken.token_hash == secret_hash(token))
            .lock_rows()
            .first()
        )
        if row is None:
            outcome = "unknown"
        elif row["revoked_at"] is not None:
            outcome = "revoked"
        elif row["spent_at"] is not None:
            outcome = "reused"
            await revoke_family(row["family_id"])
        elif row["expires_at"] <= datetime.now(UTC):
            outcome = "expired"
        else:
            await RefreshToken.update({RefreshToken.spent_at: datetime.now(UTC)}).where(RefreshToken.id == row["id"])
            user = await UserTable.select(*USER_FIELDS).where(UserTable.id == row["user"]).first()
            if user is not None:  # the token's row goes with its user's, so the user is there
                session = await start_session(services, user, row["family_id"], user_agent=row["user_agent"])
    if session is None:
        extra = {"outcome": outcome}
        if row is not None:
            extra |= {"user_id": str(row["user"]), "family_id": str(row["family_id"])}
        # a reused token is the one outcome that may mean a stolen token: worth a warning
        log.log(logging.WARNING if outcome == "reused" else logging.INFO, "auth.refresh_refused", extra=extra)
        if outcome == "reused" and row is not None:
            await cache.invalidate(services, cache.user_scope(row["user"]))
            await revocation.end_login_sockets(services, user_id=row["user"], family_ids=[row["family_id"]])
        raise unauthorized("the refresh token is invalid, expired or already used")
    return session


async def logout(services: Services, token: str) -> None:
    """End the login `token` belongs to: spend it and revoke its family. Unknown tokens are ignored (204)."""
    async with services.db.transaction():
        row = await (
            RefreshToken.select(RefreshToken.id, RefreshToken.user, RefreshToken.family_id)
            .where(RefreshToken.token_hash == secret_hash(token))
            .lock_rows()
            .first()
        )
        if row is None:
            return
        await RefreshToken.update({RefreshToken.spent_at: datetime.now(UTC)}).where(
            (RefreshToken.id == row["id"]) & RefreshToken.spent_at.is_null()
        )
        await revoke_family(row["family_id"])
    await cache.invalidate(services, cache.user_scope(row["user"]))
    await revocation.end_login_sockets(services, user_id=row["user"], family_ids=[row["family_id"]])
    log.info("auth.logout", extra={"user_id": str(row["user"]), "family_id": str(row["family_id"])})


async def revoke_family(family_id: uuid.UUID) -> None:
    """Mark every refresh token of one login revoked (in the caller's transaction, if one is open)."""
    await RefreshToken.update({RefreshToken.revoked_at: datetime.now(UTC)}).where(
        (RefreshToken.family_id == family_id) & RefreshToken.revoked_at.is_null()
    )


async def get_user(services: Services, user_id: uuid.UUID) -> User:
    row = await UserTable.select(*USER_FIELDS).where(UserTable.id == user_id).first()
    if row is None:  # deleted between authentication and now
        raise unauthorized()
    return user_of(row)


async def create_api_key(services: Services, user_id: uuid.UUID, name: str) -> ApiKeyCreated:
    """A new key, returned in clear this once; only its SHA-256 is stored."""
    name = clean_text(name, "name", max_length=MAX_KEY_NAME)
    key = new_secret(API_KEY_PREFIX)
    [row] = await ApiKeyTable.insert(ApiKeyTable(user=user_id, name=name, key_hash=secret_hash(key))).returning(
        ApiKeyTable.id, ApiKeyTable.name, ApiKeyTable.created_at
    )
    log.info("auth.api_key_created", extra={"user_id": str(user_id), "api_key_id": str(row["id"])})
    return ApiKeyCreated(id=row["id"], name=row["name"], key=key, created_at=row["created_at"])


API_KEY_FIELDS = (ApiKeyTable.id, ApiKeyTable.name, ApiKeyTable.created_at, ApiKeyTable.last_used_at)
"""The columns of `api_keys` that the documented `ApiKey` shows (never its hash)."""


async def list_api_keys(services: Services, user_id: uuid.UUID) -> list[ApiKey]:
    rows = await (
        ApiKeyTable.select(*API_KEY_FIELDS)
        .where(ApiKeyTable.user == user_id)
        .order_by(ApiKeyTable.created_at, ApiKeyTable.id)
    )
    return [ApiKey(**row) for row in rows]


async def delete_api_key(services: Services, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Delete one of the caller's keys (404 for anyone else's); dead at once, as `resolve_token` reads the table."""
    deleted = await (
        ApiKeyTable.delete().where((ApiKeyTable.id == key_id) & (ApiKeyTable.user == user_id)).returning(ApiKeyTable.id)
    )
    if not deleted:
        raise not_found("no such API key")
    await revocation.end_api_key_sockets(services, user_id=user_id, api_key_ids=[key_id])
    log.info("auth.api_key_deleted", extra={"user_id": str(user_id), "api_key_id": str(key_id)})
