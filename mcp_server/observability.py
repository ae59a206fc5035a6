"""Counters and latency histograms, recorded where each thing happens, served at ``/metrics``.

Recording is a dict update on the event loop (no locks, no import of ``prometheus_client``, so
``kubegate serve`` starts and idles light); a scrape imports ``prometheus_client`` and renders
the current values through a custom collector in the Prometheus text format. Labels name doors,
tools, runtimes and outcomes, never a user, so their number stays bounded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
Labels = tuple[str, ...]


@dataclass(slots=True)
class Counter:
    name: str
    help: str
    labels: Labels
    values: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] += by


@dataclass(slots=True)
class Gauge:
    name: str
    help: str
    labels: Labels
    values: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, by: float, *labels: str) -> None:
        self.values[labels] += by


@dataclass(slots=True)
class Histogram:
    name: str
    help: str
    labels: Labels
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def observe(self, seconds: float, *labels: str) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
        counts[bisect_left(self.buckets, seconds)] += 1
        self.sums[labels] += seconds


class Metrics:
    """Every metric kubegate exports; one instance per process (``METRICS``)."""

    def __init__(self) -> None:
        self.requests = Counter("kubegate_http_requests_total", "HTTP requests answered, by door and status",
                                ("door", "status"))
        self.request_seconds = Histogram("kubegate_http_request_duration_seconds",
                                         "Time to answer an HTTP request (to the end of the response)", ("door",))
        self.tool_calls = Counter("kubegate_tool_calls_total", "Tool calls, by tool, door and outcome",
                                  ("tool", "door", "outcome"))
        self.tool_in_flight = Gauge("kubegate_tool_calls_in_flight", "Tool calls running now (waits included)",
                                    ("tool",))
        self.tool_seconds = Histogram("kubegate_tool_call_duration_seconds", "Time a tool call took", ("tool",))
        self.runs = Counter("kubegate_runs_total", "Runs started, finished and failed, by runtime and kind",
                            ("runtime", "kind", "event"))
        self.handoff_seconds = Histogram("kubegate_workflow_step_handoff_seconds",
                                         "From the last dependency ending to the step starting", ())
        self.held_back = Counter("kubegate_workflow_steps_held_back_total",
                                 "Times a ready step waited because its workflow was at its concurrency limit", ())
        self.rate_limited = Counter("kubegate_rate_limit_rejections_total", "Requests refused with 429",
                                    ("credential",))
        self.auth_failures = Counter("kubegate_auth_failures_total", "Requests refused with 401, by credential sent",
                                     ("credential",))

    def all(self) -> Iterator[Counter | Gauge | Histogram]:
        for value in vars(self).values():
            if isinstance(value, Counter | Gauge | Histogram):
                yield value


METRICS = Metrics()


def render(metrics: Metrics = METRICS) -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for metric in self.metrics.all():
            if isinstance(metric, Counter | Gauge):
                kind = CounterMetricFamily if isinstance(metric, Counter) else GaugeMetricFamily
                family: Any = kind(metric.name.removesuffix("_total"), metric.help, labels=metric.labels)
                for labels, value in sorted(metric.values.items()):
                    family.add_metric(list(labels), value)
            else:
                family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
                for labels, counts in sorted(metric.counts.items()):
                    family.add_metric(list(labels), _cumulative(metric.buckets, counts), metric.sums[labels])
            yield family


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        running += count
        out.append((bound, float(running)))
    return out
