"""The Litestar plugin: `/ws`, `/asyncapi.json` and the gateway's lifespan, wired like Litestar's own ChannelsPlugin.

Only infrastructure is a plugin; features stay plain modules composed by the application.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Litestar, Response, asgi, get
from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from channels.config import GatewayConfig
from channels.gateway import Gateway
from channels.wire import direct_path_available

log = logging.getLogger("roomcast.ws")


class GatewayPlugin(InitPluginProtocol):
    """Adds `/ws`, `/asyncapi.json` and the gateway's lifespan (pub/sub listener, presence refresh) to an app."""

    def __init__(self, config: GatewayConfig) -> None:
        self.gateway = Gateway(config)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        gateway = self.gateway

        async def ws(scope: Scope, receive: Receive, send: Send) -> None:
            await gateway.handle(scope, receive, send)

        handlers: list[Any] = [asgi(gateway.config.path, copy_scope=False, include_in_schema=False)(ws)]
        if gateway.config.asyncapi_path:

            @get(gateway.config.asyncapi_path, sync_to_thread=False, tags=["ops"], include_in_schema=False)
            def asyncapi_json() -> Response[bytes]:
                """The WebSocket protocol as an AsyncAPI 3.0 document, generated from the frame types."""
                return Response(gateway.asyncapi(), media_type="application/json")

            handlers.append(asyncapi_json)
        app_config.route_handlers.extend(handlers)
        app_config.lifespan.append(self._lifespan)
        return app_config

    def front(self, app: ASGIApp) -> ASGIApp:
        """`app` with WebSocket connections to `/ws` taken straight to the gateway, ahead of it.

        Litestar wraps the `send` of every route in its exception middleware, one more coroutine
        per frame per member; ahead of it the gateway gets the server's own `send`, and with it
        the direct write path. The route the plugin adds stays for servers that run `app` itself.
        """
        path, handle = self.gateway.config.path, self.gateway.handle

        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.WEBSOCKET and scope["path"] == path:
                await handle(scope, receive, send)
            else:
                await app(scope, receive, send)

        return front

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncGenerator[None, None]:
        log.info("ws.write_path", extra={"direct_available": direct_path_available(), "path": self.gateway.config.path})
        await self.gateway.start()
        try:
            yield
        finally:
            await self.gateway.stop()
