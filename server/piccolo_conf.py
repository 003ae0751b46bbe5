"""Piccolo's configuration module (found through `PICCOLO_CONF=server.piccolo_conf`).

Piccolo's migration runner and tables look up `DB` here. It reads nothing from the environment:
`server.db.Database` points `DB` at the engine it built from Settings.
"""

from __future__ import annotations

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB: PostgresEngine | None = None

APP_REGISTRY = AppRegistry(apps=["server.piccolo_app"])
