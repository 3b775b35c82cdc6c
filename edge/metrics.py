"""Prometheus metrics, in a registry of the app's own (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "http_request_duration_seconds",
            "Request latency by route",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.position = Gauge(
            "event_position", "Position of the read store (last applied event)", registry=self.registry
        )
        self.head = Gauge("event_log_head", "Newest position known on the primary", registry=self.registry)
        self.lag_events = Gauge(
            "replication_lag_events", "Events the read store is behind the primary", registry=self.registry
        )
        self.lag_seconds = Gauge(
            "replication_lag_seconds", "Age of the oldest unapplied event (edge)", registry=self.registry
        )
        self.feed_batch = Histogram(
            "replication_batch_events",
            "Events per applied feed batch",
            registry=self.registry,
            buckets=(1, 2, 5, 10, 50, 100, 500, 1000),
        )
        self.forwarded = Counter(
            "forwarded_requests_total", "Requests an edge forwarded to the primary", ["reason"], registry=self.registry
        )
        self.commands = Counter("commands_total", "Commands by outcome", ["outcome"], registry=self.registry)
