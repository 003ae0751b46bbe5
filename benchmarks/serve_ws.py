"""`roomcast serve --no-migrate` with another uvicorn WebSocket implementation, for comparison only.

    python -m benchmarks.serve_ws --ws wsproto --port 8001

The load generator's `--uvicorn-ws IMPL` starts servers with this instead of `roomcast serve`, to
answer issue 8's question of which of uvicorn's `websockets`, `websockets-sansio` and `wsproto`
is fastest here. The options mirror `server/cli.py`'s `serve` (keep them in step); only `ws`
changes. Production always runs `roomcast serve`.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ws", choices=["websockets", "websockets-sansio", "wsproto"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        ws=args.ws,
        ws_max_size=64 * 1024,
        ws_ping_interval=float(settings.heartbeat_s),
        ws_ping_timeout=float(settings.heartbeat_s),
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=8,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
