"""The host's invocation metrics: recent samples per variant (what the rollback alarms evaluate), the
one-minute aggregates the local CloudWatch stores (``GetMetricStatistics``), and ``GET /metrics`` in the
Prometheus text format (``prometheus_client``): per-variant invocations, errors by class, model latency
percentiles, and the green fleet's traffic share per endpoint."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from infra.local.sagemaker.cloudwatch import Sample, add_to_minute

if TYPE_CHECKING:
    from infra.local.sagemaker.host.routing import LiveEndpoint

SAMPLES_PER_SERIES = 5000
#: the latency quantiles ``/metrics`` shows
QUANTILES = (0.5, 0.9, 0.99)
_LABELS = ["endpoint", "variant", "endpoint_config", "fleet"]


class Metrics:
    """Per (endpoint, endpoint config, variant) invocation samples and totals, and the one-minute
    aggregates per (endpoint, variant) that go to the local CloudWatch (``drain_minutes``)."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str, str], deque[Sample]] = {}
        self._totals: dict[tuple[str, str, str], dict[str, int]] = {}
        self._minutes: dict[tuple[str, str, int], dict[str, float]] = {}
        self._dirty: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()

    def record(self, endpoint: str, config: str, variant: str, sample: Sample) -> None:
        key = (endpoint, config, variant)
        minute = (endpoint, variant, int(sample.time // 60 * 60))
        with self._lock:
            self._samples.setdefault(key, deque(maxlen=SAMPLES_PER_SERIES)).append(sample)
            totals = self._totals.setdefault(key, {"ok": 0, "4xx": 0, "5xx": 0})
            totals[sample.outcome] += 1
            add_to_minute(self._minutes.setdefault(minute, {}), sample)
            self._dirty.add(minute)

    def drain_minutes(self) -> dict[tuple[str, str, int], dict[str, float]]:
        """The minute aggregates changed since the last drain (whole aggregates; older minutes are forgotten)."""
        with self._lock:
            out = {k: dict(self._minutes[k]) for k in self._dirty}
            self._dirty.clear()
            newest = max((m for _, _, m in self._minutes), default=0)
            for key in [k for k in self._minutes if k[2] < newest - 120]:
                del self._minutes[key]
            return out

    def samples(self, endpoint: str, config: str, variant: str | None, since: float) -> list[Sample]:
        with self._lock:
            return [s for (e, c, v), dq in self._samples.items()
                    if e == endpoint and c == config and (variant is None or v == variant)
                    for s in dq if s.time >= since]

    def snapshot(self) -> list[tuple[tuple[str, str, str], dict[str, int], list[float]]]:
        with self._lock:
            return [(key, dict(self._totals[key]), [s.latency_us for s in dq])
                    for key, dq in self._samples.items()]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))]


def exposition(metrics: Metrics, endpoints: Mapping[str, LiveEndpoint]) -> bytes:
    """``GET /metrics``: the Prometheus text format (0.0.4) of ``metrics`` and the endpoints' traffic shares."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics, endpoints))
    return generate_latest(registry)


class _Collector:
    """The host's metric families, built afresh at each scrape from its counters and endpoints."""

    def __init__(self, metrics: Metrics, endpoints: Mapping[str, LiveEndpoint]) -> None:
        self.metrics, self.endpoints = metrics, endpoints

    def collect(self) -> Iterator[Metric]:
        invocations = CounterMetricFamily("aircast_endpoint_invocations", "InvokeEndpoint calls served by a variant.",
                                          labels=_LABELS)
        errors = CounterMetricFamily("aircast_endpoint_invocation_errors", "Failed invocations by class (4xx, 5xx).",
                                     labels=[*_LABELS, "class"])
        latency = SummaryMetricFamily("aircast_endpoint_model_latency_ms",
                                      "Model latency percentiles over recent invocations.", labels=_LABELS)
        for (endpoint, config, variant), totals, latencies in sorted(self.metrics.snapshot()):
            values = [endpoint, variant, config, self._fleet(endpoint, config)]
            invocations.add_metric(values, sum(totals.values()))
            for cls in ("4xx", "5xx"):
                errors.add_metric([*values, cls], totals[cls])
            if latencies:
                labels = dict(zip(_LABELS, values, strict=True))
                for q in QUANTILES:
                    latency.add_sample(latency.name, {**labels, "quantile": str(q)}, percentile(latencies, q) / 1000.0)
                latency.add_metric(values, count_value=len(latencies), sum_value=sum(latencies) / 1000.0)
        share = GaugeMetricFamily("aircast_endpoint_green_traffic_share", "Share of traffic on the green fleet.",
                                  labels=["endpoint"])
        for name, live in sorted(self.endpoints.items()):
            share.add_metric([name], live.green_share)
        yield from (invocations, errors, latency, share)

    def _fleet(self, endpoint: str, config: str) -> str:
        """``blue``, ``green`` or ``retired``: which of the endpoint's fleets an endpoint config's variants are."""
        live = self.endpoints.get(endpoint)
        if live is not None and live.blue is not None and live.blue.config_name == config:
            return "blue"
        if live is not None and live.green is not None and live.green.config_name == config:
            return "green"
        return "retired"
