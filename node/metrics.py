"""Prometheus metrics, in a registry of the app's own (tests build many apps in one process)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BUCKET_LABELS = [*(str(bound) for bound in REQUEST_BUCKETS), "+Inf"]  # as prometheus-client writes them


class RequestDurations:
    """`http_request_duration_seconds` by method, route and status, counted without a lock.

    prometheus-client's Histogram takes a lock for each of the two counters an observation touches;
    here every request on the event loop pays one `bisect` and two list increments, and the counts
    become a histogram family only when /api/health/metrics is scraped (on the same loop thread).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        # per series: one count per bucket (the last is +Inf, not cumulative), then the sum of seconds
        self._series: dict[tuple[str, str, int], list[float]] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(REQUEST_BUCKETS) + 2)
        series[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "http_request_duration_seconds", "Request latency by route", labels=["method", "route", "status"]
        )
        for (method, route, status), series in list(self._series.items()):
            cumulative, buckets = 0.0, []
            for label, count in zip(BUCKET_LABELS, series[:-1], strict=True):
                cumulative += count
                buckets.append((label, cumulative))
            family.add_metric([method, route, str(status)], buckets, series[-1])
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestDurations(self.registry)
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
        self.backup_lag_seconds = Gauge(
            "backup_lag_seconds", "Age of the oldest commit not yet in the S3 backup (primary)", registry=self.registry
        )
        self.backup_last_success = Gauge(
            "backup_last_success_timestamp",
            "Unix time of Litestream's last successful sync to S3 (primary; 0 before the first)",
            registry=self.registry,
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
        self.mail_sent = Counter(
            "mail_sent_total", "Messages the mailer handed to its transport", registry=self.registry
        )
        self.mail_failures = Counter(
            "mail_send_failures_total", "Send attempts that failed (each is retried)", registry=self.registry
        )
        self.mail_pending = Gauge("mail_outbox_pending", "Queued messages not sent yet", registry=self.registry)
        self.mail_lag_events = Gauge(
            "mail_outbox_lag_events", "Events the mailer's checkpoint is behind the log", registry=self.registry
        )
        self.mail_oldest_pending_seconds = Gauge(
            "mail_outbox_oldest_pending_seconds", "Age of the oldest unsent message", registry=self.registry
        )
