"""Provider tokens encrypted at rest, and the signed `state` of the connect flow.

Both keys are derived from `ROOMCAST_SECRET_KEY` with HKDF, each for its own purpose, so the
secret itself never encrypts or signs anything here. Tokens are Fernet tokens (AES-128-CBC with
HMAC-SHA256, from `cryptography`). Rotating the secret key: put the old one in
`ROOMCAST_PREVIOUS_SECRET_KEYS`; tokens encrypted under it still open, and every save (each sync
stores its tokens) re-encrypts them under the new key (docs/calendar.md, "Key rotation").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.settings import Settings


def derive_key(secret: str, purpose: str) -> bytes:
    """32 bytes for `purpose`, derived from `secret` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"roomcast {purpose}".encode()).derive(
        secret.encode()
    )


class TokenBox:
    """Encrypts and decrypts the provider tokens of a connection."""

    def __init__(self, settings: Settings) -> None:
        def fernet(secret: str) -> Fernet:
            return Fernet(base64.urlsafe_b64encode(derive_key(secret, "calendar tokens")))

        self._current = fernet(settings.secret_key)
        self._previous = (
            MultiFernet([fernet(key) for key in settings.previous_secret_keys])
            if settings.previous_secret_keys
            else None
        )

    def seal(self, plaintext: bytes) -> str:
        return self._current.encrypt(plaintext).decode()

    def open(self, sealed: str) -> tuple[bytes, bool]:
        """The plaintext and whether it was sealed under a previous key (re-seal it). ValueError if no key opens it."""
        try:
            return self._current.decrypt(sealed.encode()), False
        except InvalidToken:
            if self._previous is None:
                raise ValueError("the stored tokens were encrypted with another secret key") from None
        try:
            return self._previous.decrypt(sealed.encode()), True
        except InvalidToken:
            raise ValueError("the stored tokens were encrypted with another secret key") from None


class State(msgspec.Struct, array_like=True):
    nonce: str
    user_id: str
    provider: str
    expires: int


class StateSigner:
    """`state` = base64url(msgpack of State) + "." + base64url(HMAC-SHA256): tamper-evident and expiring.

    Single use is kept elsewhere (the nonce's flow is taken out of Redis with GETDEL).
    """

    def __init__(self, settings: Settings) -> None:
        self._key = derive_key(settings.secret_key, "calendar state")

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, state: State) -> str:
        payload = msgspec.msgpack.encode(state)
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, value: str, provider: str) -> State | None:
        """The State if `value` was signed here for `provider` and has not expired, else None."""
        head, _, mac = value.partition(".")
        try:
            payload = _unb64(head)
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                return None
            state = msgspec.msgpack.decode(payload, type=State)
        except (ValueError, msgspec.DecodeError):
            return None
        if state.provider != provider or state.expires < time.time():
            return None
        return state


def webhook_secret(settings: Settings, purpose: str, ident: str) -> str:
    """A secret for one push channel (Google's channel token, Graph's clientState), derived not stored."""
    return _b64(
        hmac.new(
            derive_key(settings.secret_key, "calendar webhooks"), f"{purpose}:{ident}".encode(), hashlib.sha256
        ).digest()
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if len(text) > 4096:
        raise ValueError("too long")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
