"""Prometheus metrics for the server, through the well-kept ``prometheus_client``.

Each ``HeliosAPI`` owns its registry (no global state): request counts by route
and status, a latency histogram, and the database's own counters (commits,
log fsyncs and their time, checkpoints, branches, rows on main) collected at
scrape time.
"""
from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _DatabaseCollector:
    def __init__(self, db: Any) -> None:
        self.db = db

    def collect(self) -> Iterator[Any]:
        m = self.db.store.metrics()
        yield CounterMetricFamily("helios_commits", "Commits made since the server started", value=m["commits"])
        yield CounterMetricFamily("helios_log_fsyncs", "Write-ahead log fsyncs", value=m["fsyncs"])
        yield CounterMetricFamily("helios_log_fsync_seconds", "Time spent in log fsyncs", value=m["fsync_seconds"])
        yield CounterMetricFamily("helios_log_bytes", "Bytes appended to the write-ahead log", value=m["log_bytes"])
        yield CounterMetricFamily("helios_checkpoints", "Checkpoints completed", value=m["checkpoints"])
        yield GaugeMetricFamily("helios_last_checkpoint_seconds", "Duration of the last checkpoint",
                                value=m["last_checkpoint_seconds"])
        yield GaugeMetricFamily("helios_last_checkpoint_bytes", "Bytes written by the last checkpoint",
                                value=m["last_checkpoint_bytes"])
        yield GaugeMetricFamily("helios_branches", "Branches", value=m["branches"])
        yield GaugeMetricFamily("helios_storage_failed", "1 once storage refused a write (writes are off)",
                                value=m["failed"])
        rows = GaugeMetricFamily("helios_rows", "Rows over all tables of a branch", labels=["branch"])
        for info in self.db.list_branches():
            rows.add_metric([info.name], info.stats.total_keys)
        yield rows


class ApiMetrics:
    def __init__(self, db: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("helios_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("helios_http_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=_BUCKETS, registry=self.registry)
        self.registry.register(_DatabaseCollector(db))
        # Labelled children, looked up once: ``labels()`` re-validates and locks on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[route, method, status] = self.requests.labels(route, method, str(status))
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        counter.inc()
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
