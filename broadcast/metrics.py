"""Prometheus metrics, one registry per app (no process-global state, so tests can run many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.clients_connected = Gauge(
            "sapha_clients_connected", "Live clients by transport", ["transport"], registry=self.registry
        )
        self.events_published = Counter(
            "sapha_events_published", "Events published, by type", ["type"], registry=self.registry
        )
        self.slow_consumers = Counter(
            "sapha_slow_consumers", "Connections cut because their buffer overflowed", registry=self.registry
        )
        self.connections_refused = Counter(
            "sapha_connections_refused",
            "WebSocket/SSE connections refused because their address had too many open, by transport",
            ["transport"],
            registry=self.registry,
        )
        self.caption_latency = Histogram(
            "sapha_caption_latency_seconds",
            "End of speech to caption published, by kind",
            ["kind"],
            buckets=(0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 6, 10, 20),
            registry=self.registry,
        )
        self.realtime_factor = Gauge(
            "sapha_realtime_factor", "Decode time over audio time, by sitting", ["sitting"], registry=self.registry
        )
        self.lag = Gauge(
            "sapha_lag_seconds",
            "How far captioning runs behind live audio, by sitting",
            ["sitting"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
