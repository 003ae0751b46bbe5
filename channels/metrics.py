"""Prometheus metrics of the realtime core, in a registry owned by one app (never the global one).

A registry per app keeps two apps in one process (tests, benchmarks) from double-registering,
and lets the application add its own collectors next to these before serving `/metrics`.
Label values are only ever frame types the server knows (an unknown type from the network is
counted as `invalid`), so a client cannot blow up the number of series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds from `RedisStream.publish` being called to the event being written to the local sockets."""


class FrameCounter(Collector):
    """A counter by frame type kept as plain ints: it is bumped once per frame per member.

    A prometheus `Counter` child takes a lock on every `inc`; the fan-out counts hundreds of
    thousands of frames a second on the event loop's one thread, so this adds to a dict and
    builds the metric family only when `/metrics` is scraped.
    """

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.counts: dict[str, int] = {}

    def add(self, kind: str, count: int = 1) -> None:
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + count

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=["type"])
        for kind, count in sorted(self.counts.items()):
            family.add_metric([kind], count)
        yield family


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
        self.frames_in = FrameCounter("roomcast_ws_frames_in", "Frames received from clients, by type")
        self.frames_out = FrameCounter("roomcast_ws_frames_out", "Frames written to clients, by type")
        self.registry.register(self.frames_in)
        self.registry.register(self.frames_out)
        self.fanout_latency = Histogram(
            "roomcast_fanout_latency_seconds",
            "From publish to this process having written the event to every local member's socket"
            " (or queued it behind a slow one); one observation per event and process",
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
        self.frame_out = self.frames_out.add
        """Count frames written to clients: `frame_out(kind, count=1)`."""
        self.frame_in = self.frames_in.add
        """Count frames received: `frame_in(kind)`."""

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in `registry`."""
        return generate_latest(self.registry)
