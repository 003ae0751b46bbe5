"""Local stand-ins for the outside world, speaking the real wire formats (see each module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.google import FakeGoogle
    from tests.fakes.microsoft import FakeMicrosoft
    from tests.fakes.tls import TestCA


def provider_environment(google: FakeGoogle, microsoft: FakeMicrosoft, ca: TestCA) -> dict[str, str]:
    """The settings (SPEC section 6 names) that point roomcast at the fakes, and the test-only trust."""
    from tests.fakes import google as fake_google
    from tests.fakes import microsoft as fake_microsoft

    return {
        "ROOMCAST_GOOGLE_CLIENT_ID": fake_google.CLIENT_ID,
        "ROOMCAST_GOOGLE_CLIENT_SECRET": fake_google.CLIENT_SECRET,
        "ROOMCAST_GOOGLE_AUTH_URL": f"{google.base}/o/oauth2/v2/auth",
        "ROOMCAST_GOOGLE_TOKEN_URL": f"{google.base}/token",
        "ROOMCAST_GOOGLE_API_URL": f"{google.base}/calendar/v3",
        "ROOMCAST_MICROSOFT_CLIENT_ID": fake_microsoft.CLIENT_ID,
        "ROOMCAST_MICROSOFT_CLIENT_SECRET": fake_microsoft.CLIENT_SECRET,
        "ROOMCAST_MICROSOFT_AUTHORITY": microsoft.authority,
        "ROOMCAST_MICROSOFT_GRAPH_URL": microsoft.graph_url,
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the Google fake is plain http
        **ca.env(),
    }
