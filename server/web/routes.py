"""The pages served to browsers: the owner's home page, the participant page and the presenter page, plus assets.

The pages are plain HTML with JavaScript modules under `static/` (no build step, nothing loaded
from another origin) and speak only the public protocol: REST for joining and signing in, `/ws`
for everything live. `static/roomcast.js` is the protocol client both pages share; it doubles as
the reference client for integrators.

Path parameters are read as plain strings: a mistyped join code or meeting id still gets the
page, which then says in words what is wrong instead of showing a JSON error.
"""

from __future__ import annotations

import io
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import segno
from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from openapi_ui_bundles.swagger_ui import static_path as swagger_ui_path

PAGES = Path(__file__).parent

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
"""Everything the pages load comes from this origin; `connect-src 'self'` covers `/ws` (same host)."""

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def _html(name: str) -> Response[str]:
    return Response(_page(name), media_type=MediaType.HTML, headers=PAGE_HEADERS)


SIGNED_IN_COOKIE = "roomcast_signed_in"
"""Set by the pages' script while someone is signed in in this browser (tokens live in localStorage, which
the server cannot see). Only a hint of which page to serve at `/`, never a credential."""


@get("/", include_in_schema=False, sync_to_thread=False)
def home_or_join(request: Request[Any, Any, Any]) -> Response[str]:
    """The owner's home page for someone signed in; the join form (then the meeting) for everyone else."""
    return _html("home.html" if request.cookies.get(SIGNED_IN_COOKIE) == "1" else "participant.html")


@get(["/join"], include_in_schema=False, sync_to_thread=False)
def join_page() -> Response[str]:
    """The participant page's join form, for signed-in people too (one click from their home page)."""
    return _html("participant.html")


@get(["/signin", "/signup"], include_in_schema=False, sync_to_thread=False)
def sign_in_page() -> Response[str]:
    """The home page's sign-in and sign-up forms; once signed in it shows the meetings."""
    return _html("home.html")


@get("/m/{join_code:str}", include_in_schema=False, sync_to_thread=False)
def direct_link() -> Response[str]:
    """The participant page for one meeting: asks only for a name (the page reads the code from the URL)."""
    return _html("participant.html")


@get("/m/{join_code:str}/qr.svg", include_in_schema=False, sync_to_thread=False)
def direct_link_qr(request: Request[Any, Any, Any], join_code: str) -> Response[bytes]:
    """A QR code (SVG, drawn here: no outside service) of the direct link, for present mode.

    The link is built from the address this request came to, so it is the one the presenter's page
    shows; people scanning it from the room's screen must reach the server at that address.
    """
    code = join_code.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{1,20}", code):
        return Response(b"", status_code=404, media_type="image/svg+xml")
    return Response(
        _qr_svg(f"{str(request.base_url).rstrip('/')}/m/{code}"),
        media_type="image/svg+xml",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@lru_cache(maxsize=256)
def _qr_svg(text: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(
        buffer, kind="svg", border=2, xmldecl=False, omitsize=True, dark="#000", light="#fff"
    )
    # crisp module edges at any size; a meaningful name for screen readers
    return buffer.getvalue().replace(b"<svg ", b'<svg shape-rendering="crispEdges" role="img" ', 1)


@get("/present/{meeting_id:str}", include_in_schema=False, sync_to_thread=False)
def presenter_page() -> Response[str]:
    """The presenter page: sign-in, then moderation, the join code for the audience and present mode."""
    return _html("presenter.html")


@get("/account", include_in_schema=False, sync_to_thread=False)
def account_page() -> Response[str]:
    """The Account page: profile, password, where one is signed in, data export, deleting the account."""
    return _html("account.html")


@get("/reset", include_in_schema=False, sync_to_thread=False)
def reset_page() -> Response[str]:
    """Forgot password: ask for a reset mail, and (with `#token=...` from the mail) choose a new password."""
    return _html("reset.html")


@get("/calendar", include_in_schema=False, sync_to_thread=False)
def calendar_page() -> Response[str]:
    """Connected calendars: connect Google or Outlook, status and last sync, meetings from events."""
    return _html("calendar.html")


static = create_static_files_router(
    path="/static",
    directories=[PAGES / "static"],
    cache_control=CacheControlHeader(no_cache=True),
    name="web-static",
)
"""CSS and JS modules; `no-cache` makes browsers revalidate, so an upgrade never runs stale modules."""

SWAGGER_UI = "/vendor/swagger-ui"
"""Where Swagger UI's files are served from, out of the installed `openapi-ui-bundles` package."""

swagger_ui = create_static_files_router(
    path=SWAGGER_UI,
    directories=[swagger_ui_path],
    cache_control=CacheControlHeader(max_age=86400),
    name="swagger-ui",
    include_in_schema=False,
)


def api_docs_plugin() -> SwaggerRenderPlugin:
    """The REST API page at `/schema`: Swagger UI from this server, so it works without internet.

    Litestar's render plugins load their viewer (and a favicon) from CDNs by default, which left
    the page blank in a meeting room with no internet.
    """
    return SwaggerRenderPlugin(
        js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_UI}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_UI}/swagger-ui-standalone-preset.js",
        favicon="<link rel='icon' type='image/svg+xml' href='/static/favicon.svg'>",
    )


router = Router(
    path="/",
    route_handlers=[
        home_or_join,
        join_page,
        sign_in_page,
        direct_link,
        direct_link_qr,
        presenter_page,
        account_page,
        reset_page,
        calendar_page,
        static,
        swagger_ui,
    ],
)
