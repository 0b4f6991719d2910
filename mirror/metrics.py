"""The daemon's optional /metrics endpoint (Prometheus text format): the one prometheus_client user.

Off unless [daemon] metrics_listen is set (for example 127.0.0.1:9465).
"""

from __future__ import annotations

import time
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mirror.api import ApiStats
from mirror.store import Store


class _ApiCalls(Collector):
    """API calls by action and outcome, read from the client's own counters at scrape time."""

    def __init__(self, stats: ApiStats):
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("spmirror_api_calls", "Solar Proof API calls", labels=["action", "outcome"])
        for (action, outcome), count in sorted(self.stats.calls.items()):
            family.add_metric([action, outcome], count)
        yield family


class Metrics:
    def __init__(self, stats: ApiStats):
        self.registry = CollectorRegistry()
        self.runs = Counter("spmirror_runs", "Sync runs by result", ["result"], registry=self.registry)
        self.failures = Counter("spmirror_run_failures", "Sync runs that did not complete", registry=self.registry)
        self.duration = Gauge("spmirror_last_run_duration_seconds", "Length of the last run", registry=self.registry)
        self.last_success = Gauge("spmirror_last_success_timestamp_seconds", "When the last run succeeded",
                                  registry=self.registry)
        self.customers = Gauge("spmirror_customers", "Customers in the mirror", registry=self.registry)
        self.rows = Gauge("spmirror_rows", "Customer rows by sync_state", ["state"], registry=self.registry)
        self.registry.register(_ApiCalls(stats))

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def record_run(self, result: str, ok: bool, seconds: float) -> None:
        self.runs.labels(result=result).inc()
        self.duration.set(seconds)
        if ok:
            self.last_success.set(time.time())
        else:
            self.failures.inc()

    def record_rows(self, store: Store) -> None:
        counts = dict(store.db.execute("SELECT sync_state, count(*) FROM customers GROUP BY sync_state").fetchall())
        for state in ("synced", "pending", "conflict", "error"):
            self.rows.labels(state=state).set(counts.get(state, 0))
        self.customers.set(sum(counts.values()))
