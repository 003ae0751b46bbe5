"""The pages served to browsers. They speak only the public protocol."""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Router, get

PAGES = Path(__file__).parent


@get("/", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False)
def index() -> str:
    return (PAGES / "index.html").read_text()


router = Router(path="/", route_handlers=[index])
