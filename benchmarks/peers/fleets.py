"""Start and stop the peers' server processes (see benchmarks/peers/__init__.py).

Each peer runs as `--servers` processes on loopback ports, all on one Redis (`BENCH_REDIS_URL`,
default the shared 127.0.0.1:6379) under a channel name or key prefix unique to the run
(`bench-peers-<stamp>-<peer>`). None of them stores keys: they only publish and subscribe, so
there is nothing to delete afterwards, and nothing is ever flushed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.servers import REDIS_URL, Fleet

NODE_DIR = Path(__file__).resolve().parent / "node"

PEERS: dict[str, str] = {
    "socketio-py": "python-socketio (ASGI under uvicorn, AsyncRedisManager)",
    "litestar": "Litestar ChannelsPlugin (RedisChannelsPubSubBackend, under uvicorn)",
    "socketio-node": "Node.js Socket.IO (@socket.io/redis-adapter)",
}
"""Target name -> what it is."""


class PeerFleet(Fleet):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.key = f"bench-peers-{time.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(3)}-{kind}"
        self.wire = "litestar" if kind == "litestar" else "socketio"

    def argv(self, port: int) -> list[str]:
        if self.kind == "socketio-py":
            module = ["-m", "benchmarks.peers.socketio_server", "--channel", self.key]
        elif self.kind == "litestar":
            module = ["-m", "benchmarks.peers.litestar_server", "--channel-prefix", self.key]
        else:
            node = shutil.which("node")
            if node is None or not (NODE_DIR / "node_modules").is_dir():
                raise RuntimeError(f"socketio-node needs node and `npm ci` in {NODE_DIR} (benchmarks/README.md)")
            return [node, str(NODE_DIR / "server.js"), "--port", str(port), "--redis", REDIS_URL, "--key", self.key]
        return [sys.executable, *module, "--port", str(port), "--redis", REDIS_URL]

    def start(self, count: int) -> None:
        path = "/ws" if self.wire == "litestar" else "/socket.io/?EIO=4&transport=websocket"
        env = dict(os.environ)
        for i in range(count):
            port = self.port()
            self.servers.append(self._spawn(f"{self.kind}{i}", port, self.argv(port), env, ws_path=path))
        self.wait_ready("/health")


def versions() -> dict[str, str]:
    """The versions of what each peer runs on, for the results and docs/benchmarks.md."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for dist in ("python-socketio", "python-engineio"):  # the rest: load.stack_versions()
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    lock = NODE_DIR / "node_modules" / ".package-lock.json"
    if lock.exists():
        packages = json.loads(lock.read_text()).get("packages", {})
        for name in ("socket.io", "@socket.io/redis-adapter", "redis", "ws", "engine.io", "bufferutil"):
            entry = packages.get(f"node_modules/{name}")
            out[f"npm {name}"] = entry.get("version", "?") if entry else "not installed"
    node = shutil.which("node")
    if node:
        out["node"] = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    return out
