"""Join codes: 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L)."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8


def new_join_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise_join_code(code: str) -> str:
    """What a person typed, as stored: upper case, spaces and dashes removed."""
    return code.strip().upper().replace("-", "").replace(" ", "")
