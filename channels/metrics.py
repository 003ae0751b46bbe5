"""Prometheus metrics of the realtime core, in a registry owned by one app (never the global one).

A registry per app keeps two apps in one process (tests, benchmarks) from double-registering,
and lets the application add its own collectors next to these before serving `/metrics`.
Label values are only ever frame types the server knows (an unknown type from the network is
counted as `invalid`), so a client cannot blow up the number of series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds from `Broker.publish` being called to the frame being written to a socket."""


class Metrics:
    """The realtime core's metrics; `registry` is what `/metrics` renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.connections = Gauge(
            "roomcast_ws_connections", "Open WebSocket connections on this process", registry=self.registry
        )
        self.rooms = Gauge(
            "roomcast_rooms",
            "Rooms with at least one member on this process (one pub/sub subscription each)",
            registry=self.registry,
        )
        self.frames_in = Counter(
            "roomcast_ws_frames_in", "Frames received from clients, by type", ["type"], registry=self.registry
        )
        self.frames_out = Counter(
            "roomcast_ws_frames_out", "Frames written to clients, by type", ["type"], registry=self.registry
        )
        self.fanout_latency = Histogram(
            "roomcast_fanout_latency_seconds",
            "From publish to the event being written to a subscriber's socket",
            buckets=FANOUT_BUCKETS,
            registry=self.registry,
        )
        self.queue_overflows = Counter(
            "roomcast_ws_queue_overflows",
            "Connections closed with 4008 because their send queue overflowed",
            registry=self.registry,
        )
        self.published = Counter(
            "roomcast_events_published",
            "Room events published from this process, by type",
            ["type"],
            registry=self.registry,
        )
        self.resyncs = Counter(
            "roomcast_room_resyncs",
            "Rooms whose local members got an unsolicited `joined` (pub/sub reconnect, epoch change, gap)",
            registry=self.registry,
        )
        self.pubsub_reconnects = Counter(
            "roomcast_pubsub_reconnects",
            "Times this process re-established its Redis pub/sub connection",
            registry=self.registry,
        )
        self._out: dict[str, Counter] = {}
        self._in: dict[str, Counter] = {}

    def frame_out(self, kind: str, count: int = 1) -> None:
        """Count frames written; the labelled child is cached because this runs once per frame."""
        child = self._out.get(kind)
        if child is None:
            child = self._out[kind] = self.frames_out.labels(kind)
        child.inc(count)

    def frame_in(self, kind: str) -> None:
        child = self._in.get(kind)
        if child is None:
            child = self._in[kind] = self.frames_in.labels(kind)
        child.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in `registry`."""
        return generate_latest(self.registry)
