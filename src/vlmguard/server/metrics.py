"""Prometheus metrics of one proxy app, on a registry of its own (no global state).

With several worker processes on one port, prometheus_client's multiprocess mode adds the workers'
values up: every worker writes its values to files in one folder (``PROMETHEUS_MULTIPROC_DIR``, which
must be set before prometheus_client is imported in the worker) and ``/metrics``, whichever worker
answers it, reads them all. The in-flight gauge is summed over the live workers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class ProxyMetrics:
    """Requests, decisions, rewrite and upstream latency, and errors by type.

    ``multiprocess_dir``: the multiprocess folder of a server with several workers; ``render`` then
    returns the sum over every worker's values.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, multiprocess_dir: str | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir
        self.requests = Counter(
            "vlmguard_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "vlmguard_decisions",
            "Guard decisions (forward, reframe, refuse) and fallbacks",
            ["decision", "fallback"],
            registry=self.registry,
        )
        self.rewrite_seconds = Histogram(
            "vlmguard_rewrite_seconds",
            "Time spent in the rewriter",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "vlmguard_upstream_seconds",
            "Upstream call time (to the last byte for streams)",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter("vlmguard_errors", "Error responses by type", ["type"], registry=self.registry)
        self.in_flight = Gauge(
            "vlmguard_in_flight_requests",
            "Chat requests being handled",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Drop this process's live gauge values (a worker that stops no longer counts as in flight)."""
        if self.multiprocess_dir is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), self.multiprocess_dir)
