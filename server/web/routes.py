"""The pages served to browsers: the participant page and the presenter page, plus their static assets.

The pages are plain HTML with JavaScript modules under `static/` (no build step, nothing loaded
from another origin) and speak only the public protocol: REST for joining and signing in, `/ws`
for everything live. `static/roomcast.js` is the protocol client both pages share; it doubles as
the reference client for integrators.

Path parameters are read as plain strings: a mistyped join code or meeting id still gets the
page, which then says in words what is wrong instead of showing a JSON error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import MediaType, Response, Router, get
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


@get("/", include_in_schema=False, sync_to_thread=False)
def join_page() -> Response[str]:
    """The participant page: the join form (join code and name), then the meeting."""
    return _html("participant.html")


@get("/m/{join_code:str}", include_in_schema=False, sync_to_thread=False)
def direct_link() -> Response[str]:
    """The participant page for one meeting: asks only for a name (the page reads the code from the URL)."""
    return _html("participant.html")


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
    route_handlers=[join_page, direct_link, presenter_page, account_page, reset_page, static, swagger_ui],
)
