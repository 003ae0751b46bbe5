"""Times on the wire: ISO 8601 in UTC with a `Z` (docs/api.md, "Requests and errors")."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(value: datetime | None) -> str | None:
    """`2026-11-24T20:00:00.123456Z`, or None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
